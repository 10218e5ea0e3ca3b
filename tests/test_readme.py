"""Every command of README.md is accounted for: run here as written (after the tour's set-up line, against a
scratch store), run by a named test, or not runnable on this machine for a stated reason. A command added to
the README without a line here fails the test, so the README cannot drift from what works."""
from __future__ import annotations

import re
import shlex

from harness.cli import main

from readmes import REPO, commands

# (pattern, how): "here" = run below, in this order; anything else says where it runs or why it cannot.
ACCOUNTED = [
    (r"^bash scripts/setup.sh && REALBENCH_MIRROR=\S+ \.venv/bin/python -m harness run --model efficientnet-lite0 "
     r"--suite real$", "the main job: .ci/run runs setup.sh; tests/test_run.py runs the model on the 1,300 images"),
    (r"^\.venv/bin/python -m pytest -q$", "what .ci/run runs"),
    (r'^\.venv/bin/python -m pytest -q -m "not slow"$', "the quick run, a subset of the above"),
    (r"^\.venv/bin/python scripts/mutate\.py", "tests/test_mutants.py runs scripts/mutate.py"),
    (r"^\.venv/bin/pip install '\.\[mutation\]'", "an optional extra of pyproject.toml; scripts/mutation.py "
                                                     "was run with it (benchmarks/results/mutation.md)"),
    (r"^\.venv/bin/python scripts/mutation\.py tests harness/store\.py$", "run by hand before the stop: it prints the test files (fast, needs no cosmic-ray)"),
    (r"^nice -n 10 \.venv/bin/python scripts/mutation\.py run", "hours on this machine: its latest results are "
                                                               "benchmarks/results/mutation.md"),
    (r"^source \.venv/bin/activate && export REALBENCH_MIRROR=\.\./shared/data$",
     "the tour's set-up line: this test runs with the venv's Python and REALBENCH_MIRROR set by conftest.py"),
    (r"--data-dir /data/", "needs a dataset folder that is not on this machine (tests/test_shift.py and "
                           "tests/test_run.py run the same suites on stand-ins made from the shipped JPEGs)"),
    (r"--checkpoint r50\.pth", "needs a weights file of the reader's"),
    (r"--model efficientnet-lite0,efficientnet-lite1 --suite real$", "two models on 1,300 images: "
                                                                      "tests/test_faults_bulk.py runs model lists"),
    (r"--results-file lite0\.csv", "tests/test_run_options.py writes and checks --results-file"),
    (r"^python -m harness run --suite real --models-file leaderboard\.txt", "needs the reader's model list; tests/test_faults_bulk.py runs one"),
    (r"^torchrun ", "needs several GPUs or machines; tests/test_scale_distributed.py runs two CPU ranks"),
    (r"harness score --run MDVC,MDVC-val_2 --per-split", "three minutes of METEOR; "
                                                          "tests/test_anet_captions.py scores the same protocol"),
    (r"^python -m harness score --run MDVC$", "a minute of METEOR; tests/test_anet_captions.py scores it"),
    (r"^python -m harness import --suite real --name ResNet50 ", "here"),
    (r"^python -m harness score --run ResNet50 --labels imagenet-original", "here"),
    (r'^python -m harness sql "\n\s*SELECT r\.name', "here"),
    (r"^python -m harness sql --format markdown", "here"),
    (r"^python -m harness runs --suite real --name 'ResNet\*'", "here"),
    (r"^python -m harness import --suite coco --name fake-bbox ", "here"),
    (r"^python -m harness import-labels --suite coco --name tiny2017 ", "here"),
    (r"^python -m harness import --suite coco --name yolov2 ", "here"),
    (r"^python -m harness import --suite anet-captions --name MDVC ", "here"),
    (r"^python -m harness import --suite anet-captions --name MDVC-val_2 ", "here"),
    (r"^python -m harness import --suite cifar10 --name r56 ", "here"),
    (r"^python -m harness import --suite cifar10\.1-v6 --name r56 ", "here"),
    (r"^python -m harness score --run r56 --labels cifar10-original", "here"),
    (r"^python -m harness rm r56 --dataset cifar10\.1-v6", "here"),
    (r"^for m in ResNet50 ViT DINO SimCLR label_errors_resnet50_cv; do python -m harness import --suite real ",
     "tests/test_relabel_errors_imagenet.py imports the same five files"),
    (r"^python -m relabel errors --dataset imagenet-val ", "tests/test_relabel_errors_imagenet.py runs both, "
                                                          "with and without --learn-from real"),
    (r"^python -m reports serve", "a server: tests/test_app.py and tests/test_app_review.py start it on a free port "
                                  "and drive it with Chromium"),
    (r"^python -m reports run-report resnet_basic_56 --json$",
     "tests/test_app.py::test_run_report_prints_what_the_run_page_shows"),
    (r"^python -m reports robustness --run efficientnet-lite0 ", "needs a full ImageNetV2 run (its images are not on "
     "this machine): tests/test_integrity_robustness.py places a full 10,000-row run and refuses a subset"),
]

# What the commands run here print, checked against the numbers the README states.
EXPECTED = {
    "score --run ResNet50": r"top-1 76\.13%",
    "sql --format markdown": r"\| ResNet50 +\| real +\|",
    "runs --suite real": r"ResNet50",
    "score --run r56": r"top-1 93\.30%",
    "rm r56": r"harness rm --undo ",
}


def bare(command: str) -> str:
    """The command without its trailing comments (none of the README's quoted arguments holds a `#`)."""
    return "\n".join(re.sub(r"\s+#.*$", "", line) for line in command.splitlines())


def how(command: str) -> str:
    matches = [h for pattern, h in ACCOUNTED if re.search(pattern, bare(command))]
    assert len(matches) == 1, f"README.md command not accounted for exactly once in {__file__}: {command!r}"
    return matches[0]


def test_every_readme_command_is_accounted_for():
    found = commands("README.md", ("bash", "sh"))
    assert len(found) > 20
    for command in found:
        how(command)
    unused = [p for p, _ in ACCOUNTED if not any(re.search(p, bare(c)) for c in found)]
    assert not unused, f"patterns matching no README command (remove them): {unused}"


def test_the_readme_commands_run_as_written(store, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    ran = []
    for command in commands("README.md", ("bash", "sh")):
        if how(command) != "here":
            continue
        words = shlex.split(command, comments=True)
        assert words[:3] == ["python", "-m", "harness"], command
        code = main(["--store", str(store.root), *words[3:]])
        out = capsys.readouterr()
        assert code == 0, f"{command}\n{out.out}\n{out.err}"
        for key, pattern in EXPECTED.items():
            if key in command:
                assert re.search(pattern, out.out), f"{command}\n{out.out}"
        ran.append(command)
    assert len(ran) == 14
    # the r56 run on CIFAR-10.1 was moved aside by `rm`
    assert sorted(m["name"] for m in store.list_runs()) == ["MDVC", "MDVC-val_2", "ResNet50", "fake-bbox", "r56",
                                                            "yolov2"]


def test_measured_numbers_carry_their_date_and_load():
    """Every paragraph of README.md that reports a measurement says when and at what load it was taken."""
    paragraphs = [p for p in (REPO / "README.md").read_text().split("\n\n") if re.search(r"\bMeasured\b", p)]
    assert paragraphs
    for paragraph in paragraphs:
        assert re.search(r"20\d\d-\d\d-\d\d", paragraph) and "load" in paragraph, paragraph
