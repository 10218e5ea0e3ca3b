"""Fault injection at named points of the code's own progress, for the fault tests; off by default.

A test that must crash, stop or starve a process at a given moment sets ``REALBENCH_FAULT`` in that
process's environment instead of watching the clock from outside::

    REALBENCH_FAULT="at=chunk-stored,count=2,action=SIGKILL"

``at``
    the point: ``parquet-written`` (a chunk's temporary file is written and synced, not yet visible),
    ``parquet-linked`` (the chunk is visible, its temporary file not yet removed), ``chunk-stored`` (a
    run's chunk is in place) or ``forward`` (a model is about to run on a slice of a batch).
``count``
    fire at the n-th passage of the point only (counted per process); without it, at every passage.
``action``
    a signal name the process sends itself (``SIGKILL``: a crash without any clean-up; ``SIGSEGV``;
    ``SIGSTOP``: the process pauses, and its parent sees that with ``os.waitpid(pid, os.WUNTRACED)``),
    or ``oom``: the device allocator's own out-of-memory error, raised by a real allocation of 2**62 bytes.
``above``
    fire only when the point's size (the slice of ``forward``) is larger than this.
``rank``
    fire only in the process whose ``RANK`` (set by torchrun) is this.
``once``
    a file: fire only if it does not exist yet, and create it first, so that a restarted process or the
    next child of a bulk run goes through.

Without ``REALBENCH_FAULT`` a point costs one dictionary lookup.
"""
from __future__ import annotations

import os
import signal

from .errors import HarnessError

FAULT_ENV = "REALBENCH_FAULT"
POINTS = ("parquet-written", "parquet-linked", "chunk-stored", "forward")
_passed: dict[str, int] = {}


def _plan() -> dict[str, str] | None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    try:
        plan = dict(item.split("=", 1) for item in spec.split(","))
    except ValueError:
        raise HarnessError(f"{FAULT_ENV}={spec!r} is malformed; expected key=value pairs separated by commas, "
                           "e.g. at=chunk-stored,count=2,action=SIGKILL") from None
    if plan.get("at") not in POINTS or "action" not in plan:
        raise HarnessError(f"{FAULT_ENV}={spec!r} needs at= one of {', '.join(POINTS)} and an action=")
    return plan


def reached(point: str, size: int | None = None, device: str = "cpu") -> None:
    """The code passes ``point``; inject the planned fault if this is its moment."""
    plan = _plan()
    if plan is None or plan["at"] != point:
        return
    _passed[point] = _passed.get(point, 0) + 1
    if "count" in plan and _passed[point] != int(plan["count"]):
        return
    if "above" in plan and (size is None or size <= int(plan["above"])):
        return
    if "rank" in plan and os.environ.get("RANK") != plan["rank"]:
        return
    if "once" in plan:
        try:
            os.close(os.open(plan["once"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    action = plan["action"]
    if action == "oom":
        import torch

        torch.empty(2**62, dtype=torch.uint8, device=device)
        raise HarnessError(f"{FAULT_ENV}: allocating 2**62 bytes on {device} did not fail")
    try:
        sig = signal.Signals[action]
    except KeyError:
        raise HarnessError(f"{FAULT_ENV}: unknown action {action!r}; expected a signal name or oom") from None
    os.kill(os.getpid(), sig)
