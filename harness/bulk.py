"""Bulk runs: many models on one suite, one model at a time, each failure recorded and the rest carried on.

A leaderboard is hundreds of models; over such a list some model always fails (weights that do
not load, memory that runs out at any batch size). That model's run is stored as ``failed`` with
its error and traceback, its memory is released, and the next model starts. Models whose run of
the same configuration is already complete are skipped, and an unfinished run is resumed, so the
same command can simply be run again after a crash: it picks up where the list stopped.
"""
from __future__ import annotations

import gc
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .distributed import Shard, describe_error
from .errors import HarnessError
from .store import Store


@dataclass(frozen=True)
class ModelRequest:
    model: str
    checkpoint: str | None = None


@dataclass(frozen=True)
class BulkResult:
    request: ModelRequest
    status: str  # "complete", "skipped" (complete before) or "failed"
    run_id: str | None = None
    n_images: int = 0
    n_errors: int = 0
    error: str | None = None


def read_model_requests(models: str | None, models_file: str | Path | None,
                        checkpoint: str | None = None) -> list[ModelRequest]:
    """The models to run, from ``--model a,b,c`` and/or a list file, in order, each once.

    The list file has one model per line, optionally followed by its checkpoint file (else
    ``checkpoint``, which also applies to every model of ``models``); blank lines and ``#`` comments
    are ignored.
    """
    requests = [ModelRequest(m.strip(), checkpoint) for m in (models or "").split(",") if m.strip()]
    if models_file is not None:
        path = Path(models_file)
        if not path.is_file():
            raise HarnessError(f"model list {path} does not exist")
        for number, line in enumerate(path.read_text().splitlines(), 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) > 2:
                raise HarnessError(f"{path}:{number}: expected 'MODEL [CHECKPOINT]', found {line.strip()!r}")
            ckpt = fields[1] if len(fields) == 2 else None
            if ckpt is not None and not Path(ckpt).is_absolute():
                ckpt = str(path.parent / ckpt)  # relative to the list, so the list can travel with its files
            requests.append(ModelRequest(fields[0], ckpt or checkpoint))
    if not requests:
        raise HarnessError("no model to run: pass --model NAME[,NAME...] or --models-file FILE")
    return list(dict.fromkeys(requests))


def run_bulk(store: Store, suite, requests: list[ModelRequest], shard: Shard | None = None,
             on_result: Callable[[BulkResult], None] | None = None, **options) -> list[BulkResult]:
    """Run each requested model with :func:`harness.runner.evaluate_classification` (``options`` are its
    keyword arguments); returns one result per request, in order."""
    from .runner import evaluate_classification, list_suite_images

    # A folder of the wrong layout is wrong for every model: say so once, before any work.
    list_suite_images(suite, options.get("data_dir"), options.get("quiet", True))
    results = []
    for number, request in enumerate(requests, 1):
        if len(requests) > 1 and not options.get("quiet") and (shard is None or shard.is_leader):
            print(f"model {number} of {len(requests)}: {request.model}", file=sys.stderr)
        try:
            outcome = evaluate_classification(store, suite, request.model, checkpoint=request.checkpoint,
                                              shard=shard, skip_complete=True, record_failures=True, **options)
            result = BulkResult(request, "skipped" if outcome.skipped else "complete", outcome.run_id,
                                outcome.n_images, outcome.n_errors)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the others
            result = BulkResult(request, "failed", error=describe_error(exc))
        release_memory()
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def release_memory() -> None:
    """Give the last model's memory back before the next one loads (its exception may have held it)."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
