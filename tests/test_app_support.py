"""What the app's tests share: a store of real imports, the server started on a free port, and Debian's
Chromium driven by Playwright (no browser download). Under ``CI`` a missing browser fails; elsewhere the
browser tests skip."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
R56 = "cifar/cifar10_1_model_predictions/original_predictions/resnet_basic_56_predictions.json"


def fill_store(store, shared_data: Path) -> dict:
    """timm's four published tables, ResNet50's 50,000 ImageNet predictions (with top-1 probabilities),
    ResNet-56's 10,000 CIFAR-10 predictions and the cross-validated CIFAR-10 probabilities of the label-errors
    study (``label_errors_cv``), with the label sets they are scored on."""
    from harness.suites import get_suite
    from reports.external import import_timm

    import_timm(store)
    get_suite("imagenet").ensure_label_sets(store)
    get_suite("cifar10").ensure_label_sets(store, ["cifar10-original"])
    return {"resnet50": get_suite("real").import_predictions(
                store, shared_data / "imagenet/model_predictions/ResNet50.csv", "ResNet50"),
            "r56": get_suite("cifar10").import_predictions(store, shared_data / R56, "resnet_basic_56"),
            "cv": get_suite("cifar10").import_predictions(store, shared_data / "cifar/cifar10_test_pyx.npy",
                                                          "label_errors_cv")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m reports serve`` in a child process, on a free loopback port."""

    def __init__(self, store_root: Path, *extra: str):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.log = open(Path(store_root).parent / f"serve-{self.port}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reports", "--store", str(store_root), "serve", "--port", str(self.port), "--quiet",
             *extra], cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(self.base + "/boards", timeout=5).close()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the app did not start: {Path(self.log.name).read_text()}")
                time.sleep(0.2)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=60) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def browser_or_skip():
    """A launched Chromium (the caller closes it), or a skip (a failure under CI) when it cannot start."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _missing(f"playwright is not installed ({exc})")
    if not Path(CHROMIUM).exists():
        _missing(f"{CHROMIUM} is missing (scripts/setup.sh installs Debian's chromium)")
    manager = sync_playwright().start()
    try:
        return manager, manager.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as exc:  # noqa: BLE001  (Playwright raises its own error types)
        manager.stop()
        _missing(f"chromium at {CHROMIUM} did not start: {exc}")


def _missing(why: str):
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


def screenshot(page, name: str) -> None:
    """Save a screenshot for the README when ``REALBENCH_SCREENSHOTS`` names a folder (docs/img)."""
    folder = os.environ.get("REALBENCH_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=False)
