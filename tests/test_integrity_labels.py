"""Nothing wrong gets in through label sets and sources (issue 22, items 1-3 and 10).

Sources are read by their own metadata (a Hugging Face ``ClassLabel``'s names), label sets are
facts about a dataset that no run creates or grows, coverage is judged against the dataset's
published size, and a label-set name held by another dataset is not silently taken over. Real
EfficientNet-Lite0 and CIFAR ResNet-20 runs on the shipped JPEGs laid out as the test sets are.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.runner import run_classification
from harness.suites import get_suite

REPO = Path(__file__).resolve().parent.parent
V2 = "imagenetv2-matched-frequency"


def _folder_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder)}\n".encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def v2_folder(tmp_path_factory, shared_data):
    """10 shipped validation JPEGs in ImageNetV2's layout (folders named by class index, 4 classes), as
    ImageNetV2 ships them: copies, so that ``load_dataset("imagefolder")`` reads the same bytes."""
    from harness.imagenet import original_labels

    table = original_labels()[1]
    label = {k: v[0] for k, v in zip(table["key"], table["labels"])}
    files = sorted((shared_data / "imagenet-val-subset").iterdir())
    by_class: dict[int, list[Path]] = {}
    for f in files:
        by_class.setdefault(label[f.stem], []).append(f)
    chosen = [f for c in sorted(by_class, key=lambda c: (-len(by_class[c]), c))[:4] for f in by_class[c][:3]][:10]
    root = tmp_path_factory.mktemp("v2") / "imagenetv2-matched-frequency-format-val"
    for i, f in enumerate(chosen):
        target = root / str(label[f.stem]) / f"{i:02d}{f.stem[-4:]}.jpeg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    assert len({p.parent.name for p in root.rglob("*.jpeg")}) == 4
    return root


def _rows(store, run_id):
    rows = store.sql("SELECT key, top_classes, top_scores, error FROM predictions WHERE run_id = ? ORDER BY key",
                     [run_id])
    return [(k, list(c), [round(float(s), 6) for s in sc]) for k, c, sc in
            zip(rows["key"], rows["top_classes"], rows["top_scores"])]


def _imagefolder_dataset(folder: Path, out: Path) -> Path:
    """``load_dataset("imagefolder", data_dir=folder)`` saved with ``save_to_disk``, offline."""
    import datasets

    ds = datasets.load_dataset("imagefolder", data_dir=str(folder), cache_dir=str(out / "cache"), split="train")
    assert isinstance(ds.features["label"], datasets.ClassLabel)
    assert ds.features["label"].names == sorted(p.name for p in folder.iterdir())  # ids 0..3, not class indices
    ds.save_to_disk(str(out / "saved"))
    return out / "saved"


def test_an_imagefolder_dataset_is_keyed_like_its_folder(v2_folder, tmp_path):
    """``ClassLabel`` ids 0..3 are not ImageNet classes: its names are the folders."""
    from harness.hfsource import list_dataset_images
    from harness.runner import list_suite_images

    suite = get_suite(V2)
    dataset = _imagefolder_dataset(v2_folder, tmp_path)
    folder = list_suite_images(suite, v2_folder)[0]
    _, items, layout, _ = list_dataset_images(dataset, suite)
    assert layout == "hf-dataset" and [k for k, _ in items] == [k for k, _ in folder.items]
    assert [k.split("/")[0] for k, _ in items] == [p.parent.name for _, p in folder.items]
    assert [image.open_image().getvalue() for _, image in items] == [p.read_bytes() for _, p in folder.items]


@pytest.mark.slow
def test_an_imagefolder_dataset_gives_the_rows_of_the_folder_run(v2_folder, store, tmp_path):
    suite = get_suite(V2)
    dataset = _imagefolder_dataset(v2_folder, tmp_path)
    folder_run = run_classification(store, suite, "efficientnet-lite0", data_dir=v2_folder, batch_size=10,
                                    quiet=True, workers=1)
    hf_run = run_classification(store, suite, "efficientnet-lite0", data_dir=dataset, batch_size=10, quiet=True,
                                workers=1)
    expected = sorted(str(p.relative_to(v2_folder)) for p in v2_folder.rglob("*.jpeg"))
    assert [r[0] for r in _rows(store, folder_run)] == expected
    assert _rows(store, hf_run) == _rows(store, folder_run)
    folder_score, hf_score = suite.score(store, folder_run), suite.score(store, hf_run)
    assert hf_score["top1"] == folder_score["top1"] and folder_score["top1"] >= 0.5  # Lite0: ~83% on these


def test_labels_that_cannot_be_mapped_are_refused_naming_the_columns(tmp_path):
    import datasets
    from harness.hfsource import list_dataset_images

    image = datasets.Image()
    feature = datasets.Features({"image": image, "label": datasets.ClassLabel(names=["cat", "dog"])})
    jpeg = sorted((Path(os.environ["REALBENCH_MIRROR"]) / "imagenet-val-subset").iterdir())[0]
    datasets.Dataset.from_dict({"image": [str(jpeg)] * 2, "label": [0, 1]}, features=feature).save_to_disk(
        str(tmp_path / "pets"))
    with pytest.raises(HarnessError) as info:
        list_dataset_images(tmp_path / "pets", get_suite(V2))
    message = str(info.value)
    assert "names of ClassLabel column 'label' (cat, dog) are not class folders of imagenetv2-matched-frequency" \
        in message and "columns found: image (Image), label (ClassLabel)" in message and "\n" not in message
    datasets.Dataset.from_dict({"image": [str(jpeg)], "label": ["x"]}).cast_column("image", image).save_to_disk(
        str(tmp_path / "text-labels"))
    with pytest.raises(HarnessError, match=r"column 'label' is neither a ClassLabel nor an integer class index "
                                           r"\(columns found: image \(Image\), label \(Value\)\)"):
        list_dataset_images(tmp_path / "text-labels", get_suite(V2))


def _v2_predictions(folder: Path, out: Path, n: int) -> Path:
    """An import file for the first ``n`` images of ``folder``: every image predicted as its own class."""
    keys = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.jpeg"))[:n]
    out.write_text("file_name,predicted_class\n" + "".join(f"{k},{k.split('/')[0]}\n" for k in keys))
    return out


def test_an_import_never_grows_a_label_set_and_a_part_is_partial_everywhere(v2_folder, store, tmp_path):

    def harness(*args):
        return subprocess.run([sys.executable, "-m", "harness", "--store", str(store.root), *args],
                              capture_output=True, text=True, cwd=REPO, timeout=300)

    first = harness("import", "--suite", V2, "--name", "half", str(_v2_predictions(v2_folder, tmp_path / "h.csv", 5)))
    assert first.returncode == 0, first.stderr
    label_set = _folder_digest(store.label_set_dir(V2))
    assert "PARTIAL run: top-1 100.00%, n=5 of 10,000 labelled" in first.stdout
    other = harness("import", "--suite", V2, "--name", "all", str(_v2_predictions(v2_folder, tmp_path / "a.csv", 10)))
    assert other.returncode == 0 and "n=10 of 10,000 labelled" in other.stdout
    assert _folder_digest(store.label_set_dir(V2)) == label_set  # the second import changed nothing in it
    score = harness("score", "--run", "half", "--json")
    assert json.loads(score.stdout)["partial"] is True and json.loads(score.stdout)["n_labelled_in_label_set"] == 10_000
    runs = harness("runs", "--format", "json")
    assert sorted((r["name"], r["n"], r["coverage_%"], r["score_%"]) for r in json.loads(runs.stdout)) == [
        ("all", 10, 0.1, 100.0), ("half", 5, 0.05, 100.0)]
    # every reader takes a key's class from its folder: the per-class and calibration arrays too
    from harness.calibration import run_arrays

    arrays = run_arrays(store, json.loads(score.stdout)["run_id"], V2)
    assert arrays["y_true"].tolist() == [int(k.split("/")[0]) for k in arrays["key"]] and len(arrays["key"]) == 5


@pytest.mark.slow
def test_no_run_changes_a_label_set_and_a_half_folder_is_partial(v2_folder, store, tmp_path):
    from reports.external import import_timm
    from reports.leaderboard import build
    from reports.spec import load_spec

    suite = get_suite(V2)
    suite.ensure_label_sets(store)
    label_set = store.label_set_dir(V2)
    before = _folder_digest(label_set)
    meta = store.label_set_meta(V2)
    assert meta["n_samples"] == 10_000 and meta["archive_sha256"].startswith("f0c37fdf")
    half = tmp_path / "half"
    for path in sorted(v2_folder.rglob("*.jpeg"))[:5]:
        (half / path.parent.name).mkdir(parents=True, exist_ok=True)
        os.symlink(path, half / path.parent.name / path.name)
    half_run = run_classification(store, suite, "efficientnet-lite0", data_dir=half, batch_size=5, quiet=True)
    full_run = run_classification(store, suite, "efficientnet-lite0", data_dir=v2_folder, batch_size=10, quiet=True)
    for run_id, n in ((half_run, 5), (full_run, 10)):
        result = suite.score(store, run_id)
        assert (result["n"], result["n_labelled_in_label_set"], result["partial"]) == (n, 10_000, True)
        assert "PARTIAL run" in suite.describe(result) and f"n={n} of 10,000 labelled" in suite.describe(result)
    assert _folder_digest(label_set) == before  # neither run grew or rewrote it
    assert [m["name"] for m in store.list_label_sets()] == [V2]
    # the committed timm-only page's axes still read the published 10,000, not the own runs' keys
    import_timm(store)
    board = build(store, load_spec("imagenetv2"))
    assert (board.relabelled.n_labelled, board.relabelled.description) == (10_000, suite.description)
    assert all(r.relabelled.n == 10_000 for r in board.rows)
    runs = subprocess.run([sys.executable, "-m", "harness", "--store", str(store.root), "runs", "--suite", V2,
                           "--format", "csv"], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert ",5,0.05," in runs and ",10,0.1," in runs  # coverage in percent of the published 10,000


def test_an_image_folder_is_named_by_its_content(store, tmp_path, shared_data):
    from harness.cifar import CIFAR10_CLASSES

    classes = tmp_path / "classes.txt"
    classes.write_text("\n".join(CIFAR10_CLASSES) + "\n")
    jpeg = shared_data / "cifar" / "cifar10-test-jpeg"

    def folder(where: str, start: int) -> Path:
        root = tmp_path / where / "myset"
        for name in ("cat", "ship"):
            (root / name).mkdir(parents=True)
            for f in sorted((jpeg / name).iterdir())[start:start + 4]:
                shutil.copyfile(f, root / name / f.name)
        return root

    first, same, other = folder("a", 0), folder("b", 0), folder("c", 4)
    entry = get_suite("image-folder")
    suites = [entry.configure(f, classes=classes) for f in (first, same, other)]
    assert suites[0].dataset == suites[1].dataset != suites[2].dataset
    assert all(s.dataset.startswith("image-folder-myset-") for s in suites)
    run_id = run_classification(store, suites[0], "resnet20-cifar", data_dir=first, batch_size=8, quiet=True,
                                limit=4)
    run_other = run_classification(store, suites[2], "resnet20-cifar", data_dir=other, batch_size=8, quiet=True)
    result = entry.score(store, run_id)  # re-scored from the store: the run records its class list and dataset
    assert (result["n"], result["n_labelled_in_label_set"], result["partial"]) == (4, 8, True)
    full = entry.score(store, run_other)
    assert (full["n"], full["partial"], full["dataset"]) == (8, False, suites[2].dataset)
    assert sorted(m["name"] for m in store.list_label_sets()) == sorted({suites[0].dataset, suites[2].dataset})
    assert store.sql("SELECT count(*) AS n FROM labels WHERE label_set = ?", [suites[0].dataset])["n"][0] == 8


def test_a_label_set_name_of_another_dataset_is_not_taken_over(store, shared_data):
    from harness.imagenet import REAL

    REAL.ensure_label_sets(store, ["real"])
    coco = shared_data / "coco" / "instances_val2014_100.json"

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "harness", "--store", str(store.root), *args],
                              capture_output=True, text=True, cwd=REPO, timeout=300)

    refused = cli("import-labels", "--suite", "coco", "--name", "real", str(coco))
    assert refused.returncode != 0 and refused.stderr.strip().count("\n") == 0
    assert "label set name 'real' is taken by a label set of dataset 'imagenet-val'" in refused.stderr
    assert store.label_set_meta("real")["dataset"] == "imagenet-val"
    replaced = cli("import-labels", "--suite", "coco", "--name", "real", "--replace", str(coco))
    assert replaced.returncode == 0, replaced.stderr
    assert store.label_set_meta("real")["dataset"] == "coco"
    kept = list((store.root / "removed" / "labelsets").iterdir())  # the old one moved aside, not deleted
    assert len(kept) == 1 and kept[0].name.startswith("label_set=real.")
    # the same name on the same dataset: the same file again is nothing to do, another file is refused
    again = cli("import-labels", "--suite", "coco", "--name", "real", str(coco))
    assert again.returncode == 0 and "already holds" in again.stdout
    tiny = shared_data / "coco" / "val2017-tiny" / "instances_val2017.json"
    other = cli("import-labels", "--suite", "coco", "--name", "real", str(tiny))
    assert other.returncode == 2 and "label set name 'real' is taken by a label set of dataset 'coco'" in other.stderr
    assert store.label_set_meta("real")["source_file"] == coco.name
