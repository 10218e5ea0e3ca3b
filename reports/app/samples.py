"""Samples and their images: the sample page, galleries of keys, and image files with cached thumbnails.

An image is found only through a data manifest (``harness.data``: the mirror, ``REALBENCH_MIRROR``, or the
cache), by a path built from a key the manifest lists: a URL can name a key, never a path, so no request
reads outside the dataset folders. Where a dataset's images are not on this machine the page shows the key
and says how to point realbench at them. Thumbnails (JPEG, at most ``THUMB`` pixels a side) are cached
under the data cache, written atomically."""
from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

import numpy as np

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from harness import data
from harness.errors import HarnessError
from harness.store import Store, atomic_write_bytes

from .classes import class_names
from .context import Context, NotFound
from .pages import esc, page, table, url

THUMB = 160
PAGE_SIZE = 60
# Datasets whose images a manifest lists: (manifest, path of a key's file) for keys named by file.
_NAMED = {"imagenet-val": ("imagenet-val-subset", "imagenet-val-subset/{key}.JPEG"),
          "imagenet-sample": ("imagenet-sample", "imagenet-sample/{key}.JPEG")}


@functools.lru_cache(maxsize=None)
def _listed(manifest: str) -> frozenset[str]:
    return frozenset(e.path for e in data.load_manifest(manifest).files)


@functools.lru_cache(maxsize=1)
def _cifar10_paths() -> tuple[str, ...]:
    """The JPEG of each CIFAR-10 test index: ``<class>/<rank within the class in test-set order>.jpg``."""
    from harness.cifar import CIFAR10_CLASSES, cifar10_labels

    seen = [0] * len(CIFAR10_CLASSES)
    paths = []
    for c in cifar10_labels():
        paths.append(f"cifar/cifar10-test-jpeg/{CIFAR10_CLASSES[c]}/{seen[c]:04d}.jpg")
        seen[c] += 1
    return tuple(paths)


def image_source(dataset: str, key: str) -> tuple[str, str] | None:
    """(manifest, path) of a sample's image, or None when no manifest lists one for this key."""
    if dataset == "cifar10-test":
        if key.isdigit() and int(key) < 10_000 and str(int(key)) == key:
            return "cifar10-test-jpeg", _cifar10_paths()[int(key)]
        return None
    if dataset in _NAMED:
        manifest, pattern = _NAMED[dataset]
        path = pattern.format(key=key)
        return (manifest, path) if path in _listed(manifest) else None
    return None


def image_file(dataset: str, key: str) -> tuple[Path | None, str]:
    """The image file of a sample, or None and the sentence saying why it is not here."""
    source = image_source(dataset, key)
    if source is None:
        return None, (f"realbench knows no image file for key {key!r} of dataset {dataset!r} (images ship for "
                      "the CIFAR-10 test set, the 1,300-image ImageNet validation subset and the ImageNet sample)")
    try:
        return data.resolve_file(*source, download=False), ""
    except HarnessError as exc:
        return None, str(exc)


def thumbnail(dataset: str, key: str, path: Path) -> Path:
    """A cached JPEG of at most THUMB pixels a side."""
    digest = hashlib.sha256(f"{dataset}\0{key}\0{THUMB}".encode()).hexdigest()[:32]
    target = data.cache_dir() / "thumbnails" / dataset / f"{digest}.jpg"
    if not target.exists():
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB, THUMB))
            if im.width < THUMB // 2:  # CIFAR's 32 px: enlarged, so that a person sees something
                factor = THUMB // max(im.width, im.height)
                im = im.resize((im.width * factor, im.height * factor), Image.NEAREST)
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=90)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, buf.getvalue())
    return target


def image(context: Context, request: Request) -> Response:
    dataset, key = request.path_params["dataset"], request.path_params["key"]
    size = request.query_params.get("size", "full")
    if size not in ("full", "thumb"):
        raise HarnessError(f"size={size!r}: expected 'full' or 'thumb'")
    path, why = image_file(dataset, key)
    if path is None:
        raise NotFound(why)
    served = thumbnail(dataset, key, path) if size == "thumb" else path
    return FileResponse(served, headers={"Cache-Control": "public, max-age=86400"})


def gallery(store: Store, dataset: str, keys: list[str], request: Request, captions: dict | None = None) -> str:
    """Thumbnails of ``keys`` (a page of PAGE_SIZE, ``?page=N``), each a link to its sample page."""
    try:
        number = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        raise HarnessError(f"page={request.query_params.get('page')!r} must be a page number") from None
    shown = keys[(number - 1) * PAGE_SIZE:number * PAGE_SIZE]
    items = []
    for key in shown:
        caption = esc(key) + (f"<br>{esc(captions[key])}" if captions and key in captions else "")
        items.append(f'<a class="tile" href="{url(f"/samples/{dataset}/{key}")}">'
                     f'<img loading="lazy" alt="{esc(key)}" src="{url(f"/images/{dataset}/{key}", size="thumb")}" '
                     f'onerror="this.replaceWith(document.createTextNode(\'(no image here)\'))">'
                     f"<span>{caption}</span></a>")
    pages = max(1, -(-len(keys) // PAGE_SIZE))
    params = dict(request.query_params)
    nav = []
    if number > 1:
        nav.append(f'<a href="{url(request.url.path, **{**params, "page": number - 1})}">previous</a>')
    nav.append(f"page {number} of {pages}")
    if number < pages:
        nav.append(f'<a href="{url(request.url.path, **{**params, "page": number + 1})}">next</a>')
    return f'<div class="gallery">{"".join(items)}</div><p class="pager">{" · ".join(nav)}</p>'


def _listed_values(value) -> list:
    """A list column's value as a list (an error row's null reads as pandas' NA: no values)."""
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else []


def sample_page(context: Context, request: Request) -> Response:
    store = context.store
    dataset, key = request.path_params["dataset"], request.path_params["key"]
    names = class_names(store, dataset)
    labels = store.sql("SELECT l.label_set, l.labels FROM labels l JOIN label_sets s ON s.name = l.label_set "
                       "WHERE s.dataset = ? AND l.key = ? ORDER BY l.label_set", [dataset, key])
    predictions = store.sql("SELECT r.run_id, r.name, p.top_classes, p.top_scores FROM predictions p JOIN runs r "
                            "USING (run_id) WHERE r.dataset = ? AND p.key = ? ORDER BY r.name, r.run_id",
                            [dataset, key])
    if not len(labels) and not len(predictions):
        raise NotFound(f"no label set or run of dataset {dataset!r} holds key {key!r}")

    def named(classes) -> str:
        return ", ".join(f"{c} {names.get(int(c), '')}".strip() for c in classes) if classes is not None else ""

    path, why = image_file(dataset, key)
    if path is None:
        picture = f'<p class="note">{esc(why)}</p>'
    else:
        full = url(f"/images/{dataset}/{key}")
        picture = (f'<a href="{full}"><img class="sample" alt="{esc(key)}" src="{url(f"/images/{dataset}/{key}", size="thumb")}">'
                   "</a>")
    label_rows = [(r.label_set, named(r.labels) or "(excluded)") for r in labels.itertuples()]
    pred_rows = []
    for r in predictions.itertuples():
        scores = _listed_values(r.top_scores)
        top = [f"{c} {names.get(int(c), '')}".strip() + (f" ({scores[i]:.3f})" if i < len(scores) else "")
               for i, c in enumerate(_listed_values(r.top_classes)[:5])]
        pred_rows.append((f'<a href="{url("/runs/" + r.run_id)}">{esc(r.name)}</a>', esc("; ".join(top))))
    body = (f"{picture}<h2>Labels</h2>{table(['label set', 'classes'], label_rows, table_id='labels')}"
            f"<h2>Predictions (top-5)</h2>{table(['run', 'top-5 with scores'], pred_rows, raw=True, table_id='predictions')}")
    return page(f"{dataset} / {key}", body)
