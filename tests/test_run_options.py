"""`run`'s model names, timm-compatible options and device logic, checked on the CPU.

Typos are refused before torch is imported (asserted on ``sys.modules``, not on seconds) and leave
nothing stored; the options are recorded in the run and part of its fingerprint.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError

REPO = Path(__file__).resolve().parent.parent

# main() in a fresh interpreter; prints the exit status, then whether torch was imported.
NO_TORCH = ("import sys, contextlib; from harness.cli import main\n"
            "code = main(sys.argv[1:])\n"
            "print(code, 'torch' in sys.modules, 'timm' in sys.modules)")


def harness_without_torch(store_dir: Path, *args: str) -> tuple[str, str]:
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, "--store", str(store_dir), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1], proc.stderr


@pytest.mark.parametrize("model, expected", [
    ("efficientnet-lte0", "unknown model 'efficientnet-lte0': neither an alias of `python -m harness models` nor "
                          "a timm 1.0.31 model name; did you mean 'efficientnet-lite0', 'efficientnet_lite0'"),
    ("resnet-18", "unknown model 'resnet-18'"),
    ("resnet18.nosuchtag", "timm has no weights tagged 'nosuchtag' for resnet18; its tags: a1_in1k,"),
    ("efficientnet-lite*x", "no model matches 'efficientnet-lite*x'"),
    ("bit-l", "bit-l: BiT-L (JFT-300M pretraining, Kolesnikov et al. 2020) was never released by Google"),
])
def test_a_model_that_cannot_run_is_one_line_before_torch_and_stores_nothing(tmp_path, model, expected):
    status, stderr = harness_without_torch(tmp_path / "store", "run", "--model", model, "--suite", "real")
    assert status == "2 False False"  # exit status 2, neither torch nor timm imported
    assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert expected in stderr
    if model == "resnet-18":
        assert "did you mean 'resnet18'" in stderr
    if model == "bit-l":  # said once: what it is and what to do
        assert stderr.count("bit-l") == 1 and "--checkpoint FILE" in stderr and "bit-m" in stderr
    assert not (tmp_path / "store").exists()


def test_a_models_file_is_checked_whole_before_the_first_model(tmp_path):
    listing = tmp_path / "models.txt"
    listing.write_text("efficientnet-lite0\nefficientnet-lite1\nefficientnet-lite3  # a typo: there is no such alias\n"
                       "resnet50 missing.pth\n")
    status, stderr = harness_without_torch(tmp_path / "store", "run", "--models-file", str(listing),
                                           "--suite", "real")
    assert status == "2 False False"
    assert stderr.startswith("error: 2 models cannot run, so none was run: ")
    assert f"{listing}:3: unknown model 'efficientnet-lite3'" in stderr
    assert "did you mean 'efficientnet-lite0'" in stderr or "did you mean 'efficientnet_lite3'" in stderr
    assert f"{listing}:4: checkpoint {tmp_path / 'missing.pth'} for model resnet50 does not exist" in stderr
    assert not (tmp_path / "store").exists()


def test_unknown_suite_run_and_label_set_suggest_the_near_name(tmp_path, shared_data):
    status, stderr = harness_without_torch(tmp_path / "store", "run", "--model", "efficientnet-lite0",
                                           "--suite", "rael")
    assert status == "2 False False" and "unknown suite 'rael'; did you mean 'real'?" in stderr

    from harness.store import Store
    from harness.suites import get_suite

    store = Store(tmp_path / "store")
    get_suite("real").import_predictions(store, shared_data / "imagenet/model_predictions/ResNet50.csv", "ResNet50")
    status, stderr = harness_without_torch(store.root, "score", "--run", "ResNet5")
    assert status == "2 False False" and "no run 'ResNet5'" in stderr and "did you mean 'ResNet50'?" in stderr
    status, stderr = harness_without_torch(store.root, "score", "--run", "ResNet50", "--labels", "rael")
    assert status == "2 False False" and "no label set 'rael'" in stderr and "did you mean 'real'?" in stderr
    assert len(store.list_runs()) == 1


def test_wildcards_expand_over_aliases_and_timm_names():
    from harness.bulk import ModelRequest, read_model_requests

    assert read_model_requests("efficientnet-lite*", None) == [
        ModelRequest(f"efficientnet-lite{i}") for i in range(3)]
    assert read_model_requests("tf_efficientnet_lite*", None) == [
        ModelRequest(f"tf_efficientnet_lite{i}.in1k") for i in range(5)]
    # as timm's validate.py --model 'efficientnet_lite*': the pretrained names (lite1-4 have no weights)
    assert read_model_requests("efficientnet_lite*,efficientnet-lite0", None) == [
        ModelRequest("efficientnet_lite0.ra_in1k"), ModelRequest("efficientnet-lite0")]


def test_shipped_timm_names_are_those_of_the_installed_timm():
    import timm

    from harness.models import timm_names

    names = timm_names()
    if names["timm_version"] != timm.__version__:
        pytest.fail(f"harness/timm_names.json is from timm {names['timm_version']} but timm {timm.__version__} is "
                    "installed; regenerate it with harness.models.write_timm_names()")
    assert names["architectures"] == sorted(timm.list_models())
    assert names["pretrained"] == sorted(timm.list_pretrained())


def test_a_results_file_must_be_csv_or_json_and_fp16_is_refused_on_the_cpu(tmp_path):
    status, stderr = harness_without_torch(tmp_path / "store", "run", "--model", "efficientnet-lite0", "--suite",
                                           "real", "--results-file", str(tmp_path / "out.txt"))
    assert status == "2 False False" and "expected a .csv or .json file name" in stderr
    status, stderr = harness_without_torch(tmp_path / "store", "run", "--model", "efficientnet-lite0", "--suite",
                                           "real", "--crop-pct", "1.5")
    assert status == "2 False False" and "--crop-pct 1.5: expected a fraction in (0, 1]" in stderr
    status, stderr = harness_without_torch(tmp_path / "store", "run", "--model", "efficientnet-lite0", "--suite",
                                           "real", "--amp", "--precision", "bf16")
    assert status == "2 False False" and "--amp is --precision fp16" in stderr
    status, stderr = harness_without_torch(tmp_path / "store", "run", "--model", "efficientnet-lite0", "--suite",
                                           "real", "--amp", "--device", "cpu")
    assert status.startswith("2 ") and "on the CPU use --precision bf16 or fp32" in stderr
    assert not (tmp_path / "store").exists()


# ----- device logic, on the CPU ----------------------------------------------------------------------------
def test_device_choice_and_precision_are_checked():
    import torch

    from harness.distributed import Shard
    from harness.inference import InferenceOptions, device_type, pick_device
    from harness.runner import shard_device

    if not torch.cuda.is_available():
        with pytest.raises(HarnessError, match="'cuda' was asked for but no CUDA GPU is available"):
            pick_device("cuda")
        with pytest.raises(HarnessError, match="no CUDA GPU"):
            pick_device("cuda:1")
        assert pick_device(None) == "cpu"
    with pytest.raises(HarnessError, match="expected cpu, cuda or cuda:N"):
        pick_device("tpu")
    assert pick_device("cpu") == "cpu"
    assert shard_device("cpu", Shard(rank=1, world_size=2, local_rank=1)) == "cpu"
    assert device_type("cuda:3") == "cuda"

    default = InferenceOptions()
    assert default.precision_on("cpu") == "fp32" and default.precision_on("cuda:0") == "fp16"
    assert InferenceOptions(precision="bf16").precision_on("cpu") == "bf16"
    with pytest.raises(HarnessError, match="on the CPU use --precision bf16 or fp32"):
        InferenceOptions(precision="fp16").precision_on("cpu")
    with pytest.raises(HarnessError, match="expected one of fp32, fp16, bf16"):
        InferenceOptions(precision="fp8")
    # The device class, precision and memory format are part of the configuration: a CPU run and a GPU run of
    # the same model never resume or skip each other; two GPUs of one machine are the same configuration.
    cpu, gpu = default.config("cpu", "eager"), default.config("cuda:0", "eager")
    assert cpu["device_type"] == "cpu" and gpu["device_type"] == "cuda" and cpu["precision"] != gpu["precision"]
    assert default.config("cuda:0", "eager") == default.config("cuda:1", "eager")
    assert InferenceOptions(channels_last=False).config("cpu", "eager") != cpu


def test_out_of_memory_is_told_apart_from_other_errors():
    import torch

    from harness.inference import is_out_of_memory

    with pytest.raises(RuntimeError) as cpu_failure:
        torch.empty(2 ** 60, dtype=torch.uint8)  # the CPU allocator's real failure
    assert is_out_of_memory(cpu_failure.value)
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("Given groups=1, weight of size [32, 3, 3, 3], expected input"))
    assert not is_out_of_memory(ValueError("out of memory"))


def lite0_batch(shared_data, n: int):
    import torch
    from PIL import Image
    from timm.data import create_transform

    from harness.models import load_model

    loaded = load_model("efficientnet-lite0")
    cfg = loaded.preprocessing
    transform = create_transform(input_size=tuple(cfg["input_size"]), interpolation=cfg["interpolation"],
                                 mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), crop_pct=cfg["crop_pct"],
                                 crop_mode=cfg["crop_mode"], is_training=False)
    files = sorted((shared_data / "imagenet-val-subset").iterdir())[:n]
    return loaded, torch.stack([transform(Image.open(f).convert("RGB")) for f in files])


def test_the_cpu_fast_form_predicts_what_the_plain_model_does(shared_data):
    """channels_last + TorchScript freezing (batch norm folded) vs the eager NCHW model, image by image."""
    import torch

    from harness.inference import InferenceOptions, prepare_model

    loaded, x = lite0_batch(shared_data, 32)
    with torch.inference_mode():
        plain = loaded.model.eval()(x)
    fast, graph = prepare_model(loaded.model, "cpu", InferenceOptions(), [3, 224, 224])
    assert graph == "torchscript-frozen"
    with torch.no_grad():
        out = fast(x.contiguous(memory_format=torch.channels_last))
    assert torch.equal(out.argmax(1), plain.argmax(1))
    assert torch.equal(out.topk(5).indices, plain.topk(5).indices)
    assert (out - plain).abs().max() < 1e-3
    eager, graph = prepare_model(loaded.model, "cpu", InferenceOptions(precision="bf16"), [3, 224, 224])
    assert graph == "eager"  # autocast runs the eager model


@pytest.mark.slow
def test_run_options_are_recorded_and_make_a_different_run(store):
    from harness.inference import InferenceOptions
    from harness.runner import run_classification
    from harness.suites import get_suite

    suite = get_suite("real")
    run = (lambda **kw: run_classification(store, suite, "efficientnet-lite0", limit=4, batch_size=4, workers=0,
                                           quiet=True, skip_complete=True, **kw))
    first = run()
    meta = store.run_meta(first)
    assert {k: meta[k] for k in ("precision", "channels_last", "graph", "device_type", "decode")} == {
        "precision": "fp32", "channels_last": True, "graph": "torchscript-frozen", "device_type": "cpu",
        "decode": "pil"}
    assert meta["param_count"] == 4_652_008 and meta["preprocessing"]["crop_pct"] == 0.875
    assert run() == first  # the same configuration: skipped
    resized = run(inference=InferenceOptions(img_size=256, crop_pct=0.95, interpolation="bilinear"))
    other = store.run_meta(resized)
    assert resized != first and other["fingerprint"] != meta["fingerprint"]
    assert other["preprocessing"]["input_size"] == [3, 256, 256] and other["preprocessing"]["crop_pct"] == 0.95
    assert other["preprocessing"]["interpolation"] == "bilinear"
    bf16 = run(inference=InferenceOptions(precision="bf16"))
    assert bf16 not in (first, resized) and store.run_meta(bf16)["precision"] == "bf16"
    nchw = run(inference=InferenceOptions(channels_last=False))
    assert nchw not in (first, resized, bf16) and store.run_meta(nchw)["channels_last"] is False
    same = store.sql(f"""SELECT count(*) AS n, sum((a.top_classes[1] = b.top_classes[1])::INT) AS equal FROM predictions a
                         JOIN predictions b USING (key) WHERE a.run_id = '{first}' AND b.run_id = '{nchw}'""").iloc[0]
    assert (same["n"], same["equal"]) == (4, 4)


@pytest.mark.slow
def test_results_file_has_timms_columns_and_the_stored_scores(store, tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, "-m", "harness", "--store", str(store.root), "run", "--model",
                           "efficientnet-lite0", "--suite", "real", "--limit", "8", "--batch-size", "8", "--workers",
                           "0", "--quiet", "--results-file", str(out)], capture_output=True, text=True, cwd=REPO,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads(out.read_text())
    assert list(row)[:9] == ["model", "top1", "top1_err", "top5", "top5_err", "param_count", "img_size",
                             "crop_pct", "interpolation"]
    from harness.suites import get_suite

    [meta] = store.list_runs()
    real = get_suite("real").score(store, meta["run_id"], "real")
    original = get_suite("real").score(store, meta["run_id"], "imagenet-original")
    assert row["model"] == "efficientnet-lite0" and row["label_set"] == "real" and row["n"] == real["n"]
    assert row["top1"] == round(100 * real["top1"], 4) and row["top1_err"] == round(100 - row["top1"], 4)
    assert row["top1_imagenet-original"] == round(100 * original["top1"], 4)
    assert (row["param_count"], row["img_size"], row["crop_pct"], row["interpolation"]) == (4.65, 224, 0.875,
                                                                                            "bicubic")


@pytest.mark.slow
def test_decoding_on_the_device_falls_back_to_pil_and_agrees_with_it(store, tmp_path, shared_data):
    """--decode device exercised on the CPU (torchvision's decode_jpeg there): the same images, an unreadable
    one as an error row, a PNG through the PIL fallback, and the same top-1 as the PIL run on these images."""
    from PIL import Image

    from harness.inference import InferenceOptions
    from harness.runner import run_classification
    from harness.suites import get_suite

    files = sorted((shared_data / "imagenet-val-subset").iterdir())[:12]
    folder = tmp_path / "images"
    folder.mkdir()
    for f in files[:10]:
        os.symlink(f, folder / f.name)
    (folder / files[10].name).write_bytes(files[10].read_bytes()[:400])  # truncated: neither decoder reads it
    Image.open(files[11]).save(folder / f"{files[11].stem}.png")
    suite = get_suite("imagenet")
    runs = {decode: run_classification(store, suite, "efficientnet-lite0", data_dir=folder, batch_size=6,
                                       workers=0, quiet=True, inference=InferenceOptions(decode=decode))
            for decode in ("pil", "device")}
    assert runs["pil"] != runs["device"] and store.run_meta(runs["device"])["decode"] == "device"
    rows = store.sql(f"""SELECT a.key, a.top_classes[1] AS pil, b.top_classes[1] AS device, a.error AS pil_error,
                                b.error AS device_error
                         FROM predictions a JOIN predictions b USING (key)
                         WHERE a.run_id = '{runs["pil"]}' AND b.run_id = '{runs["device"]}'""")
    assert len(rows) == 12
    bad = rows[rows["key"] == files[10].stem].iloc[0]
    assert bad["pil_error"] and bad["device_error"]
    good = rows[rows["pil_error"].isna()]
    assert len(good) == 11 and good["device_error"].isna().all()
    assert (good["pil"] == good["device"]).all()  # tensor resizing is close to PIL's: same class on these


def test_detection_runs_take_torchvision_names_and_check_their_label_set(tmp_path):
    # Detection suites run torchvision's detectors: their names are not refused as unknown timm models.
    status, stderr = harness_without_torch(tmp_path / "store", "run", "--model", "fasterrcnn_resnet50_fpn",
                                           "--suite", "coco", "--labels", "coco-val2017-tny")
    assert status == "2 False False"
    assert "no label set 'coco-val2017-tny' for suite coco; did you mean 'coco-val2017-tiny'" in stderr
    status, stderr = harness_without_torch(tmp_path / "store", "run", "--model", "fasterrcnn_resnet50_fpn",
                                           "--suite", "coco", "--checkpoint", str(tmp_path / "none.pth"))
    assert status == "2 False False" and f"checkpoint {tmp_path / 'none.pth'} for model fasterrcnn_resnet50_fpn" \
        " does not exist" in stderr


def test_a_model_torchscript_cannot_reproduce_runs_eager():
    import torch

    from harness.inference import InferenceOptions, prepare_model

    class ShapeDependent(torch.nn.Module):
        def forward(self, x):  # tracing at batch 2 bakes in the first branch
            return x.mean((2, 3)) if x.shape[0] > 1 else x.amax((2, 3))

    assert prepare_model(ShapeDependent(), "cpu", InferenceOptions(), [3, 8, 8])[1] == "eager"
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4).eval(), torch.nn.ReLU())
    assert prepare_model(conv, "cpu", InferenceOptions(), [3, 8, 8])[1] == "torchscript-frozen"
