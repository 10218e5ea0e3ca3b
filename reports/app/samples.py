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
import pandas as pd

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from harness import data
from harness.errors import HarnessError
from harness.store import Store, atomic_write_bytes

from .classes import class_names
from .context import Context, NotFound
from .pages import esc, page, table, url
from .raters import FAILED, LOADING, answers_of

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


@functools.lru_cache(maxsize=65536)
def image_file(dataset: str, key: str) -> tuple[Path | None, str]:
    """The image file of a sample, or None and the sentence saying why it is not here (found and verified
    once per process)."""
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


class _ByKey:
    """A table's rows looked up by key (sorted once, then a binary search per lookup)."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame.sort_values("key", kind="stable").reset_index(drop=True)
        self.keys = self.frame["key"].astype(str).to_numpy()

    def rows(self, key: str) -> pd.DataFrame:
        lo, hi = np.searchsorted(self.keys, key, "left"), np.searchsorted(self.keys, key, "right")
        return self.frame.iloc[lo:hi]


def _dataset_tables(context: Context, dataset: str) -> dict:
    """Every complete run's predictions, every label set's labels and every ranking of a dataset, by key; kept
    while the store stays the same."""
    from relabel.errors import ERRORS_TABLE

    def build() -> dict:
        store = context.store
        predictions = store.sql("SELECT r.run_id, r.name, p.key, p.top_classes, p.top_scores FROM predictions p "
                                "JOIN runs r USING (run_id) WHERE r.dataset = ? ORDER BY r.name, r.run_id", [dataset])
        labels = store.sql("SELECT l.label_set, l.key, l.labels FROM labels l JOIN label_sets s ON s.name = "
                           "l.label_set WHERE s.dataset = ? ORDER BY l.label_set", [dataset])
        rankings = {}
        for meta in store.list_label_sets():
            if meta.get("kind") == "label-errors" and meta.get("dataset") == dataset:
                table = store.read_label_table(meta["name"], ERRORS_TABLE).to_pandas()
                rankings[meta["name"]] = (_ByKey(table.assign(key=table["key"].astype(str))), len(table))
        return {"predictions": _ByKey(predictions), "labels": _ByKey(labels), "rankings": rankings,
                "reviews": [m["run_id"] for m in store.list_runs()
                            if m.get("kind") == "review" and m.get("dataset") == dataset]}
    return context.memo(("dataset-tables", dataset), build)


def sample_page(context: Context, request: Request) -> Response:
    dataset, key = request.path_params["dataset"], request.path_params["key"]
    names = context.class_names(dataset)
    tables = _dataset_tables(context, dataset)
    labels, predictions = tables["labels"].rows(key), tables["predictions"].rows(key)
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
            f"<h2>Predictions (top-5)</h2>{table(['run', 'top-5 with scores'], pred_rows, raw=True, table_id='predictions')}"
            + _suspicion(tables["rankings"], key, named) + _review_history(context, tables["reviews"], key, named)
            + (_real_raters(context, key, named) if dataset == "imagenet-val" else ""))
    return page(f"{dataset} / {key}", body)


def _real_raters(context: Context, key: str, named) -> str:
    """ReaL's raw answers for an ImageNet validation image: each rater's yes / maybe / no per proposed label."""
    index = context.real_raters.get()
    if index is LOADING:
        return ('<h2>ReaL raters</h2><p class="note" id="raters-loading">Loading the raw ReaL answers (raters.npz, '
                "once per server); reload the page in half a minute.</p>")
    if index is FAILED:
        return f'<h2>ReaL raters</h2><p class="note">The raw ReaL answers could not be read: {esc(context.real_raters.error)}</p>'
    answers = answers_of(index, key)
    if not len(answers):
        return '<h2>ReaL raters</h2><p class="note">No ReaL rater judged this image.</p>'
    return "<h2>ReaL raters</h2>" + table(["rater", "label", "answer"],
                                          [(str(r.rater), named([r.label]), r.answer) for r in answers.itertuples()],
                                          table_id="raters")


def _suspicion(rankings: dict, key: str, named) -> str:
    """The sample in every label-error ranking of its dataset (rank, posterior that its label is wrong)."""
    rows = []
    for name, (ranking, size) in sorted(rankings.items()):
        for r in ranking.rows(key).itertuples():
            rows.append((f'<a href="{url("/suspects/" + name)}">{esc(name)}</a>', f"{r.rank:,} of {size:,}",
                         f"{r.p_wrong:.4f}", esc(named([r.given])), esc(named([r.likely])),
                         f"{r.models_likely}/{r.raters}"))
    if not rows:
        return ""
    return "<h2>Suspicion</h2>" + table(["ranking", "rank", "p(label wrong)", "given", "likely", "runs for likely"],
                                        rows, raw=True, table_id="suspicion")


def _review_history(context: Context, reviews: list[str], key: str, named) -> str:
    """Every answer given to this sample in the app's reviews, oldest first: the reviews open in this server
    from memory, others from the store."""
    open_reviews = {r.run_id: r for r in context.reviews.values()}
    frames = [r.answer_rows().assign(run_id=run_id) for run_id, r in open_reviews.items() if run_id in reviews]
    closed = [r for r in reviews if r not in open_reviews]
    if closed:
        frames.append(context.store.sql("SELECT * FROM review_answers_all WHERE key = ? AND run_id IN "
                                        "(SELECT unnest(?))", [key, closed]))
    if not frames:
        return ""
    answers = pd.concat(frames, ignore_index=True)
    answers = answers[answers["key"] == key].sort_values(["answered_at", "reviewer", "label"], kind="stable")
    if not len(answers):
        return ""
    return "<h2>Review history</h2>" + table(
        ["review", "reviewer", "label", "answer", "time"],
        [(r.run_id, r.reviewer, named([r.label]), r.answer, r.answered_at) for r in answers.itertuples()],
        table_id="reviews")


def suspects_page(context: Context, request: Request) -> Response:
    """A ``relabel errors`` ranking as a gallery, most suspect first: given label, likely label, votes; paged;
    ``?class=N`` keeps the suspects given or likely to be class N."""
    from relabel.errors import ERRORS_TABLE

    store = context.store
    ranking = request.path_params["ranking"]
    try:
        meta = store.label_set_meta(ranking)
    except HarnessError as exc:
        raise NotFound(str(exc)) from None
    if meta.get("kind") != "label-errors":
        raise NotFound(f"label set {ranking!r} is not a label-error ranking (python -m relabel errors stores one)")
    dataset = meta["dataset"]
    table = store.read_label_table(ranking, ERRORS_TABLE).to_pandas()
    names = class_names(store, dataset)
    chosen = request.query_params.get("class")
    if chosen is not None:
        if not chosen.isdigit():
            raise HarnessError(f"class={chosen!r} must be a class index (an integer)")
        table = table[(table["given"] == int(chosen)) | (table["likely"] == int(chosen))]
    captions = {str(r.key): f"#{r.rank} {names.get(int(r.given), r.given)} → {names.get(int(r.likely), r.likely)} "
                            f"({r.models_likely}/{r.raters} runs)" for r in table.itertuples()}
    options = "".join(f'<option value="{i}"{" selected" if chosen == str(i) else ""}>{esc(n)}</option>'
                      for i, n in sorted(names.items()))
    body = (f'<p>{len(table):,} samples of {esc(meta.get("label_set"))} ranked by {esc(meta.get("aggregator"))} over '
            f'{len(meta.get("raters", []))} runs, most suspect first.</p>'
            f'<form class="filters"><label>class <select name="class" onchange="this.form.submit()">'
            f'<option value="">any</option>{options}</select></label></form>'
            + gallery(store, dataset, [str(k) for k in table["key"]], request, captions))
    return page(f"Suspects of {meta.get('label_set')}", body)


def query_gallery(context: Context, request: Request) -> Response:
    """Any read-only SQL over the store's views that returns a ``key`` column, as a gallery of ``dataset``."""
    dataset, query = request.query_params.get("dataset"), request.query_params.get("sql")
    if not dataset or not query:
        raise HarnessError("a gallery needs the query parameters dataset and sql (a query returning a key column)")
    keys = context.store.sql(query)
    if "key" not in keys.columns:
        raise HarnessError(f"the query returns the columns {list(keys.columns)}; a gallery needs a column named key")
    return page(f"{dataset}: query", f"<pre>{esc(query)}</pre>"
                + gallery(context.store, dataset, [str(k) for k in keys["key"]], request))
