"""The images a run reads, with their sample keys: what a folder (``harness.runner.list_images``) and a
Hugging Face dataset (``harness.hfsource``) both give the runner."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImageList:
    root: Path
    items: list[tuple[str, Path]]  # (key, file), sorted by key
    layout: str  # "flat", "class-folders" or "hf-dataset"
    listing_sha256: str
