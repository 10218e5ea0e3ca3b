"""Data manifests: every shipped file described, verified by sha256, clear errors for missing or corrupt files."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from harness import data
from harness.errors import HarnessError


def test_every_manifest_matches_the_shared_data(shared_data, monkeypatch):
    monkeypatch.setenv("REALBENCH_MIRROR", str(shared_data))
    names = data.manifest_names()
    assert {"imagenet-real", "imagenet-val-labels", "imagenet-predictions", "imagenet-val-subset",
            "imagenet-sample"} <= set(names)
    for name in names:
        manifest = data.load_manifest(name)
        assert manifest.license and (manifest.files or manifest.archives), name
        if not manifest.files:  # a published archive realbench does not fetch (ImageNetV2, -Sketch, -A, -R)
            for archive in manifest.archives:
                assert archive.url.startswith("https://") and archive.images > 0 and archive.folder, name
                assert archive.sha256 is None or len(archive.sha256) == 64, name
            with pytest.raises(HarnessError, match=f"pass --data-dir <where>/{manifest.archives[0].folder}"):
                data.resolve(name, download=False)
            continue
        for entry in manifest.files:
            assert entry.url.startswith(("https://", "http://")), entry
            assert (shared_data / entry.path).stat().st_size == entry.size, entry.path
        root = data.resolve(name, download=False)
        assert root == shared_data


def test_resolve_file_returns_the_verified_file(shared_data):
    path = data.resolve_file("imagenet-real", "imagenet/real.json")
    assert path == shared_data / "imagenet/real.json"
    assert len(json.loads(path.read_text())) == 50_000


def _mirror_with(tmp_path: Path, shared_data: Path, rel: str, content: bytes | None) -> Path:
    """A mirror holding the files of imagenet-val-labels, with ``rel`` replaced (or missing if None)."""
    mirror = tmp_path / "mirror"
    for entry in data.load_manifest("imagenet-val-labels").files:
        target = mirror / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if entry.path == rel:
            if content is not None:
                target.write_bytes(content)
        else:
            shutil.copy(shared_data / entry.path, target)
    return mirror


def test_corrupt_file_is_named_with_the_fix(tmp_path, shared_data, monkeypatch):
    rel = "imagenet/imagenet_synsets.txt"
    original = (shared_data / rel).read_bytes()
    mirror = _mirror_with(tmp_path, shared_data, rel, original.replace(b"n01440764", b"n01440765"))
    monkeypatch.setenv("REALBENCH_MIRROR", str(mirror))
    monkeypatch.setenv("REALBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(HarnessError) as err:
        data.resolve("imagenet-val-labels", download=False)
    message = str(err.value)
    assert str(mirror / rel) in message and "sha256" in message and "python -m harness data fetch" in message
    ok, problems = data.verify("imagenet-val-labels")
    assert ok == 2 and len(problems) == 1 and rel in problems[0]


def test_truncated_file_is_caught_by_size(tmp_path, shared_data, monkeypatch):
    rel = "imagenet/LOC_val_solution.csv"
    mirror = _mirror_with(tmp_path, shared_data, rel, (shared_data / rel).read_bytes()[:1000])
    monkeypatch.setenv("REALBENCH_MIRROR", str(mirror))
    monkeypatch.setenv("REALBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(HarnessError, match="has 1000 bytes but the manifest expects"):
        data.resolve_file("imagenet-val-labels", rel, download=False)


def test_missing_file_offline_says_what_and_how(tmp_path, shared_data, monkeypatch):
    rel = "imagenet/imagenet_class_names.tsv"
    mirror = _mirror_with(tmp_path, shared_data, rel, None)
    monkeypatch.setenv("REALBENCH_MIRROR", str(mirror))
    monkeypatch.setenv("REALBENCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(HarnessError) as err:
        data.resolve("imagenet-val-labels", download=False)
    assert rel in str(err.value) and "REALBENCH_MIRROR" in str(err.value)


def test_fetch_downloads_verifies_and_caches(tmp_path, shared_data, monkeypatch):
    """The download path for real: a file:// URL stands in for the public one (no network here)."""
    entry = data.load_manifest("imagenet-val-labels").entry("imagenet/imagenet_synsets.txt")
    monkeypatch.setenv("REALBENCH_CACHE", str(tmp_path / "cache"))
    good = data.FileEntry(entry.path, (shared_data / entry.path).as_uri(), entry.sha256, entry.size)
    data.fetch_entries([good])
    cached = tmp_path / "cache" / entry.path
    assert data.sha256_file(cached) == entry.sha256
    bad = data.FileEntry("imagenet/other.txt", (shared_data / "imagenet/LOC_val_solution.csv").as_uri(),
                         entry.sha256, entry.size)
    with pytest.raises(HarnessError, match="bytes but the manifest expects"):
        data.fetch_entries([bad])
    assert not (tmp_path / "cache" / "imagenet/other.txt").exists()
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".")]
    unreachable = data.FileEntry("imagenet/x.txt", "http://127.0.0.1:9/nothing", entry.sha256, entry.size)
    with pytest.raises(HarnessError, match="could not download imagenet/x.txt"):
        data.fetch_entries([unreachable])


@pytest.fixture
def http_folder(tmp_path):
    """A real HTTP server (the standard library's, on a free local port) serving a folder; yields (folder, url)."""
    import functools
    import http.server
    import threading

    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_download_of_a_same_size_wrong_file_fails_on_sha256(tmp_path, shared_data, monkeypatch, http_folder):
    folder, url = http_folder
    entry = data.load_manifest("imagenet-val-labels").entry("imagenet/imagenet_synsets.txt")
    original = (shared_data / entry.path).read_bytes()
    (folder / "good.txt").write_bytes(original)
    wrong = original.replace(b"n01440764", b"n01440765")  # one digit: the same size, another file
    assert len(wrong) == entry.size and wrong != original
    (folder / "wrong.txt").write_bytes(wrong)
    monkeypatch.setenv("REALBENCH_CACHE", str(tmp_path / "cache"))

    data.fetch_entries([data.FileEntry(entry.path, f"{url}/good.txt", entry.sha256, entry.size)])
    assert (tmp_path / "cache" / entry.path).read_bytes() == original

    target = "imagenet/other.txt"
    with pytest.raises(HarnessError, match=f"sha256 {data.sha256_file(folder / 'wrong.txt')} but the manifest "
                                           f"expects {entry.sha256} .{target}."):
        data.fetch_entries([data.FileEntry(target, f"{url}/wrong.txt", entry.sha256, entry.size)])
    assert not (tmp_path / "cache" / target).exists()
    assert not [p for p in (tmp_path / "cache" / "imagenet").iterdir() if p.name.startswith(".")]
    with pytest.raises(HarnessError, match=f"could not download {target} from {url}/missing.txt: HTTP Error 404"):
        data.fetch_entries([data.FileEntry(target, f"{url}/missing.txt", entry.sha256, entry.size)])


def test_cli_data_verify_and_list(shared_data):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "REALBENCH_MIRROR": str(shared_data)}
    proc = subprocess.run([sys.executable, "-m", "harness", "data", "verify", "imagenet-real"],
                          capture_output=True, text=True, cwd=repo, env=env, timeout=300)
    assert proc.returncode == 0 and "imagenet-real: 5 files verified" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "harness", "data", "list"], capture_output=True, text=True,
                          cwd=repo, env=env, timeout=300)
    assert "imagenet-val-subset" in proc.stdout and "1300 files" in proc.stdout
