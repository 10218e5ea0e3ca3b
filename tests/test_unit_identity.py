"""Run identity as a table of cases, in the quick run: with the real CIFAR ResNet-20 on 4 of 5 test images
(about 2 s a run), every run option changed alone makes a new run, and every cosmetic one (the run's name,
batch size, workers, the suite of the same dataset) finds the run already stored."""
from __future__ import annotations

import pytest

from harness.identity import fingerprint
from harness.inference import InferenceOptions
from harness.runner import run_classification
from harness.store import Store
from harness.suites import get_suite

MODEL = "resnet20-cifar"


@pytest.fixture(scope="module")
def base(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("identity")
    images = root / "images"  # 5 test images in the class-folder layout (no 10,000-file manifest check)
    for cls in ("airplane", "cat"):
        (images / cls).mkdir(parents=True)
    for cls, n in (("airplane", 3), ("cat", 2)):
        for i in range(n):
            (images / cls / f"{i:04d}.jpg").symlink_to(shared_data / "cifar" / "cifar10-test-jpeg" / cls / f"{i:04d}.jpg")
    store = Store(root / "store")
    return store, run(store, images), images


def run(store, images, suite: str = "cifar10", **kwargs) -> str:
    options = {"data_dir": images, "limit": 4, "batch_size": 4, "workers": 0, "quiet": True,
               "skip_complete": True, **kwargs}
    return run_classification(store, get_suite(suite), MODEL, **options)


NEW_RUN = [
    pytest.param({"inference": InferenceOptions(img_size=40)}, id="img_size"),
    pytest.param({"inference": InferenceOptions(crop_pct=0.9)}, id="crop_pct"),
    pytest.param({"inference": InferenceOptions(interpolation="bicubic")}, id="interpolation"),
    pytest.param({"inference": InferenceOptions(precision="bf16")}, id="precision"),
    pytest.param({"inference": InferenceOptions(channels_last=False)}, id="channels_last"),
    pytest.param({"limit": 3}, id="limit"),
    pytest.param({"topk": 3}, id="topk"),
    pytest.param({"save_logits": True}, id="save_logits"),
]
SAME_RUN = [
    pytest.param({"name": "another-name"}, id="name"),
    pytest.param({"batch_size": 2}, id="batch_size"),
    pytest.param({"chunk_images": 2}, id="chunk_images"),
    pytest.param({"suite": "cifar10h"}, id="another suite of the same dataset"),
    pytest.param({"inference": InferenceOptions()}, id="default options spelled out"),
]


@pytest.mark.parametrize("change", NEW_RUN)
def test_each_run_option_alone_makes_a_new_run(base, change):
    store, first, images = base
    other = run(store, images, **change)
    assert other != first
    assert store.run_meta(other)["fingerprint"] != store.run_meta(first)["fingerprint"]
    assert run(store, images, **change) == other  # and that run is found again


@pytest.mark.parametrize("change", SAME_RUN)
def test_a_cosmetic_option_finds_the_stored_run(base, change):
    store, first, images = base
    assert run(store, images, **change) == first


def test_the_fingerprint_reads_values_not_key_order():
    a = {"model": "m", "preprocessing": {"crop_pct": 0.875, "input_size": [3, 32, 32]}, "limit": None}
    b = {"limit": None, "preprocessing": {"input_size": [3, 32, 32], "crop_pct": 0.875}, "model": "m"}
    assert fingerprint(a) == fingerprint(b) and len(fingerprint(a)) == 16
    assert int(fingerprint(a), 16) >= 0
    for key, value in (("model", "n"), ("limit", 4), ("preprocessing", {"crop_pct": 0.9, "input_size": [3, 32, 32]})):
        assert fingerprint({**a, key: value}) != fingerprint(a), key
