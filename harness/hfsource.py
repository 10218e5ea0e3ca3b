"""Hugging Face ``datasets`` as an image source: a suite's images from a dataset instead of a folder.

``--data-dir`` takes, besides a folder of images:

- a local dataset saved with ``Dataset.save_to_disk`` (a folder holding ``state.json``);
- Parquet files with an image column (one ``.parquet`` file, or a folder of them and no images),
  as the Hub stores datasets (``datasets.Image`` columns: a struct of ``bytes`` and ``path``);
- ``hf:<repository id>[:<config>]:<split>`` (online): a dataset on the Hub, read through
  ``datasets.load_dataset``.

The image column is the first column of feature type ``Image``. A sample's key is, in order: the
value of a ``key`` column; else, for a suite labelled by class folders (ImageNetV2, -Sketch, -A,
-R, image-folder), ``<class folder>/<file name>`` from a ``label`` column (read by its own metadata:
a ``ClassLabel``'s ``names`` are the folders, a plain integer is the suite's class index) and the
image's stored file name, which is the key the same images get in a folder (``0/7e2a.jpeg``); else the stored
file name. A run through a dataset therefore stores the same rows as a run through the folder the
dataset was built from. Images are decoded by Pillow from the stored bytes, exactly as from files;
an image stored by path only (``Dataset.to_parquet`` keeps paths) is read from that path, taken
relative to the dataset's folder when it is relative.
"""
from __future__ import annotations

import functools
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from .errors import HarnessError

HUB_PREFIX = "hf:"


def is_dataset_source(data_dir: str | Path) -> bool:
    """Whether ``--data-dir`` names a datasets source rather than a folder of images."""
    text = str(data_dir)
    if text.startswith(HUB_PREFIX):
        return True
    path = Path(text)
    if path.is_file():
        return path.suffix == ".parquet"
    if (path / "state.json").is_file() and (path / "dataset_info.json").is_file():
        return True
    return path.is_dir() and any(path.glob("*.parquet")) and not any(p.is_dir() for p in path.iterdir())


@functools.lru_cache(maxsize=4)
def open_dataset(source: str):
    """The dataset (image column not decoded), once per process: decoding workers each open it once."""
    try:
        import datasets
    except ImportError:
        raise HarnessError("reading images from a Hugging Face dataset needs the package datasets "
                           "(pip install datasets)") from None
    datasets.disable_progress_bars()
    try:
        if source.startswith(HUB_PREFIX):
            parts = source[len(HUB_PREFIX):].split(":")
            if len(parts) not in (2, 3) or not all(parts):
                raise HarnessError(f"{source!r}: expected hf:<repository id>:<split> or hf:<id>:<config>:<split>")
            repo, config, split = parts[0], (parts[1] if len(parts) == 3 else None), parts[-1]
            ds = datasets.load_dataset(repo, config, split=split)
        elif Path(source).is_file() or not (Path(source) / "state.json").is_file():
            files = [source] if Path(source).is_file() else sorted(str(p) for p in Path(source).glob("*.parquet"))
            ds = datasets.Dataset.from_parquet(files)
        else:
            ds = datasets.load_from_disk(source)
    except HarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises many types; one sentence for all
        raise HarnessError(f"could not open {source} as a Hugging Face dataset: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if isinstance(ds, datasets.DatasetDict):
        raise HarnessError(f"{source} holds several splits ({', '.join(ds)}); name one (hf:<id>:<split>, or the "
                           "split's folder)")
    column = image_column(ds, source)
    return ds.cast_column(column, datasets.Image(decode=False)), column


def image_column(ds, source: str) -> str:
    import datasets

    for name, feature in ds.features.items():
        if isinstance(feature, datasets.Image):
            return name
    for name, feature in ds.features.items():  # Parquet without datasets' metadata: a bytes/path struct
        if isinstance(feature, dict) and "bytes" in feature:
            return name
    raise HarnessError(f"{source} has no image column (columns: {', '.join(ds.column_names)}); expected a column "
                       "of feature type datasets.Image")


def label_folders(ds, source: str, suite) -> dict[int, str]:
    """The class folder of each value of the ``label`` column, read by the dataset's own metadata.

    A ``ClassLabel`` column (what ``load_dataset("imagefolder")`` makes) holds ids 0..K-1 over the folders
    it found, and its ``names`` are those folders (``['114', '133', ...]`` for ImageNetV2): a name must be a
    class folder of the suite. A plain integer column holds the suite's class index. Anything else is refused
    in one sentence naming the columns found."""
    import datasets

    feature = ds.features["label"]
    index = suite.class_index()
    columns = ", ".join(f"{n} ({type(f).__name__})" for n, f in ds.features.items())
    expected = f"expected {suite.layout_hint}" if suite.layout_hint else "expected its class folders"
    if isinstance(feature, datasets.ClassLabel):
        unknown = [n for n in feature.names if n not in index]
        if unknown:
            raise HarnessError(f"{source}: the names of ClassLabel column 'label' ({', '.join(feature.names[:3])}"
                               f"{', ...' if len(feature.names) > 3 else ''}) are not class folders of {suite.name} "
                               f"(first unknown: {unknown[0]!r}; columns found: {columns}); {expected}")
        return dict(enumerate(feature.names))
    if not (isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint"))):
        raise HarnessError(f"{source}: column 'label' is neither a ClassLabel nor an integer class index (columns "
                           f"found: {columns}); {expected}")
    folder_of = {c: f for f, c in index.items()}
    missing = sorted({int(c) for c in ds["label"] if int(c) not in folder_of})
    if missing:
        raise HarnessError(f"{source}: integer labels {missing[:5]} of column 'label' are not class indices of "
                           f"{suite.name} (columns found: {columns}); {expected}")
    return folder_of


@dataclass(frozen=True)
class DatasetImage:
    """One image of a dataset, opened lazily in the decoding worker."""
    source: str
    index: int
    suffix = ""  # not a file: the device decoder's JPEG path leaves it to Pillow

    def open_image(self):
        ds, column = open_dataset(self.source)
        value = ds[self.index][column]
        if value.get("bytes"):
            return io.BytesIO(value["bytes"])
        if value.get("path"):  # an image stored by path only: relative paths are relative to the dataset
            path = Path(value["path"])
            if not path.is_absolute() and not self.source.startswith(HUB_PREFIX):
                base = Path(self.source)
                path = (base.parent if base.is_file() else base) / path
            return str(path)
        raise OSError(f"row {self.index} of {self.source} holds no image")

    def __str__(self) -> str:
        return f"{self.source}[{self.index}]"


def list_dataset_images(source: str | Path, suite) -> tuple[Path, list[tuple[str, DatasetImage]], str, str]:
    """A datasets source's images for ``suite``, keyed as the same images are in a folder: (root, sorted
    (key, image) items, layout ``hf-dataset``, listing sha256), the fields of ``runner.ImageList``."""
    source = str(source) if str(source).startswith(HUB_PREFIX) else str(Path(source).resolve())
    ds, column = open_dataset(source)
    if len(ds) == 0:
        raise HarnessError(f"{source} holds no rows")
    paths = [(v or {}).get("path") or "" for v in ds.data.column(column).to_pylist()] \
        if "key" not in ds.column_names else None
    if "key" in ds.column_names:
        raw_keys = [str(k) for k in ds["key"]]
    elif suite.layout_hint and "label" in ds.column_names:
        folder_of = label_folders(ds, source, suite)
        labels = ds["label"]
        raw_keys = [f"{folder_of[int(c)]}/{Path(p).name or f'{i:08d}'}" for i, (c, p) in enumerate(zip(labels, paths))]
    else:
        if not all(paths):
            raise HarnessError(f"{source}: images without a stored file name and no 'key' column; add a key column")
        raw_keys = [Path(p).name for p in paths]
    items, foreign = [], []
    for i, raw in enumerate(raw_keys):
        key = suite.key_of(raw)
        if key is None:
            foreign.append(raw)
        else:
            items.append((key, DatasetImage(source, i)))
    if foreign:
        raise HarnessError(f"{source}: {len(foreign)} rows are not samples of dataset {suite.dataset} "
                           f"(first: {foreign[0]!r}; columns found: {', '.join(ds.column_names)}); expected a "
                           f"'key' column or a 'label' column of {suite.layout_hint or 'its classes'}")
    keys = [k for k, _ in items]
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise HarnessError(f"{source}: image {dup!r} appears more than once")
    items.sort(key=lambda item: item[0])
    digest = hashlib.sha256(f"{getattr(ds, '_fingerprint', '')}\n".encode())
    for key, _ in items:
        digest.update(f"{key}\n".encode())
    return Path(source), items, "hf-dataset", digest.hexdigest()
