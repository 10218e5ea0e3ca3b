"""The numbers a model run takes, checked before anything runs (no store opened, no model loaded).

``--limit 0`` used to run every image, ``--limit -5`` every image but the last five, ``--batch-size 0``
the default batch, ``--topk 0`` a complete run with empty predictions: each is now one sentence.
"""
from __future__ import annotations

from .errors import HarnessError

# option -> (its flag, the least value it takes, what it counts)
RUN_NUMBERS = {
    "limit": ("--limit", 1, "images"),
    "batch_size": ("--batch-size", 1, "images per batch"),
    "topk": ("--topk", 1, "classes stored per image"),
    "chunk_images": ("--chunk-images", 1, "images per stored chunk"),
    "workers": ("--workers", 0, "decoding processes (0: decode in the main process)"),
}


def check_run_options(**options) -> None:
    """Refuse a run option outside its range (``None`` means the default and passes)."""
    for name, value in options.items():
        if name not in RUN_NUMBERS or value is None:
            continue
        flag, least, what = RUN_NUMBERS[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise HarnessError(f"{flag} {value!r}: expected a whole number of {what}, at least {least}; "
                               "nothing was run")
