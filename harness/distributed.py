"""Sharded runs on torch.distributed: what each process of a ``torchrun`` launch knows and agrees on.

``torchrun --nproc_per_node N -m harness run ...`` starts N copies of the CLI with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set. Each rank predicts its own shard of the images and writes its
own Parquet chunks into the shared run folder; the only traffic between ranks is small Python
objects (the run id, each rank's outcome) over a gloo process group, so the same code runs on
CPUs and GPUs and across machines. Rank 0 owns ``run.json``: it claims the run and marks it
complete only once every rank has finished its shard and every image has a stored row.

A rank that dies is torchrun's business (``--max-restarts`` restarts the whole group, which then
resumes the run); a rank whose Python code fails tells the others through :meth:`Shard.agree`,
so no rank ever waits for a partner that has given up.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Callable, TypeVar

from .errors import HarnessError

T = TypeVar("T")

# Ranks that finish early wait for the slowest shard in the final agreement, which for a large model
# can take hours; a dead rank is detected by torchrun, not by this timeout.
COLLECTIVE_TIMEOUT = _dt.timedelta(hours=12)


class ShardFailed(HarnessError):
    """One or more ranks failed a step that all ranks take together."""


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.world_size > 1

    def take(self, items: list[T]) -> list[T]:
        """This rank's share of a list that every rank holds in the same order (strided, so that
        slow and fast regions of a folder spread over all ranks)."""
        return items[self.rank::self.world_size]

    def agree(self, step: Callable[[], T]) -> T:
        """Run ``step`` on every rank and return this rank's result, or raise on every rank when any
        rank failed (the message names the failing ranks)."""
        if not self.sharded:
            return step()
        try:
            result, mine = step(), None
        except Exception as exc:  # noqa: BLE001 - every failure must reach the other ranks
            result, mine = None, describe_error(exc)
        failures = [(rank, message) for rank, message in enumerate(self.gather(mine)) if message is not None]
        if failures:
            raise ShardFailed(_merge(failures, self.world_size))
        return result

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value`` (a small picklable object), in rank order, on every rank."""
        if not self.sharded:
            return [value]
        import torch.distributed as dist

        everyone: list = [None] * self.world_size
        dist.all_gather_object(everyone, value)
        return everyone

    def from_leader(self, step: Callable[[], T]) -> T:
        """Run ``step`` on rank 0 only and hand its result (or its failure) to every rank."""
        if not self.sharded:
            return step()
        import torch.distributed as dist

        box: list = [None]
        if self.is_leader:
            try:
                box[0] = (True, step())
            except Exception as exc:  # noqa: BLE001 - the other ranks must hear about it
                box[0] = (False, describe_error(exc))
                dist.broadcast_object_list(box, src=0)
                raise
        dist.broadcast_object_list(box, src=0)
        ok, value = box[0]
        if not ok:
            raise ShardFailed(value)
        return value


def describe_error(exc: BaseException) -> str:
    """One line for a stored or printed error: a HarnessError's own message, else the type and message."""
    return str(exc) if isinstance(exc, HarnessError) else f"{type(exc).__name__}: {exc}"


def _merge(failures: list[tuple[int, str]], world_size: int) -> str:
    messages = {message for _, message in failures}
    if len(messages) == 1 and len(failures) == world_size:
        return messages.pop()  # the same error everywhere (a bad argument): say it once
    return "; ".join(f"rank {rank}: {message}" for rank, message in failures)


def from_environment() -> Shard:
    """The shard of this process: from torchrun's variables, or the whole job when not launched by it.

    Joins the gloo process group when there is more than one rank.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Shard()
    missing = [v for v in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise HarnessError(f"WORLD_SIZE={world_size} but {', '.join(missing)} not set: launch sharded runs "
                           "with torchrun --nproc_per_node N -m harness run ...")
    import torch.distributed as dist

    if not dist.is_initialized():
        store, rank, size = next(dist.rendezvous("env://"))
        # torchrun keeps one TCP store across restarts of a worker group (--max-restarts): without a key
        # prefix per attempt, restarted ranks read the dead ranks' addresses and wait for them forever.
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        store = dist.PrefixStore(f"realbench/attempt-{attempt}", store)
        # gloo for the control messages even on GPUs: they are a few small Python objects per model,
        # and gloo needs no device set up before it can talk.
        dist.init_process_group("gloo", store=store, rank=rank, world_size=size, timeout=COLLECTIVE_TIMEOUT)
    return Shard(dist.get_rank(), dist.get_world_size(), int(os.environ["LOCAL_RANK"]))


def shutdown(shard: Shard) -> None:
    if shard.sharded:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
