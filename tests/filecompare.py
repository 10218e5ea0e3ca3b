"""Byte comparisons of generated files that fail with a short, readable message: the file and its first
differing line on each side, not a diff of the whole file (a leaderboard page is megabytes)."""
from __future__ import annotations


def first_difference(fresh: bytes, committed: bytes, name: str, context: int = 160) -> str | None:
    """None when the two are equal, else one message naming ``name``, the first differing line (1-based)
    and a window of ``context`` characters around the first differing byte on each side."""
    if fresh == committed:
        return None
    at = next((i for i, (a, b) in enumerate(zip(fresh, committed)) if a != b), min(len(fresh), len(committed)))
    line = fresh.count(b"\n", 0, at) + 1
    start = max(0, at - context // 2)

    def window(data: bytes) -> str:
        return data[start:at + context // 2].decode("utf-8", "replace")

    return (f"{name} differs from the committed file at line {line}, byte {at:,} "
            f"(regenerated {len(fresh):,} bytes, committed {len(committed):,}):\n"
            f"  regenerated: ...{window(fresh)!r}...\n  committed:   ...{window(committed)!r}...")
