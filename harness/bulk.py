"""Bulk runs: many models on one suite (classification or detection), one model at a time, each failure recorded and the rest carried on.

A leaderboard is hundreds of models; over such a list some model always fails (weights that do
not load, memory that runs out at any batch size, a crash in native code). Each model of a list
runs in a child process of its own, so not even a segfault or a CUDA error that poisons the
process reaches the next model: a model that raises is stored by its child as a ``failed`` run
with its error and traceback, and a child that dies is recorded so by this process, naming the
signal. Models whose run of the same configuration is already complete are skipped, and an
unfinished run is resumed, so the same command can simply be run again after a crash: it picks up
where the list stopped.

Under torchrun the models run in the rank processes themselves: the process group lives there, and
a rank that dies is torchrun's to restart.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .distributed import Shard, describe_error
from .errors import HarnessError
from .runoptions import RUN_NUMBERS, check_run_options
from .store import RunWriter, Store


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
                        checkpoint: str | None = None, registry: bool = True) -> list[ModelRequest]:
    """The models to run, from ``--model a,b,c`` and/or a list file, in order, each once.

    The list file has one model per line, optionally followed by its checkpoint file (else
    ``checkpoint``, which also applies to every model of ``models``); blank lines and ``#`` comments
    are ignored. The whole list is checked before it is returned (checkpoint files; with ``registry``, the
    classification models' names, whose wildcards expand over the aliases and timm's names), so a typo on
    its last line stops it before any model runs. Detection suites name torchvision models: ``registry=False``.
    """
    from .models import checkpoint_problem, expand_model_names, model_problem

    requests = [ModelRequest(m.strip(), checkpoint) for m in (models or "").split(",") if m.strip()]
    origins = ["--model"] * len(requests)
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
            origins.append(f"{path}:{number}")
    if not requests:
        raise HarnessError("no model to run: pass --model NAME[,NAME...] or --models-file FILE")
    expanded, problems = [], []
    for request, origin in zip(requests, origins):
        try:
            names = expand_model_names(request.model) if registry else [request.model]
        except HarnessError as exc:
            problems.append((origin, str(exc)))
            continue
        for name in names:
            problem = (model_problem if registry else checkpoint_problem)(name, request.checkpoint)
            if problem:
                problems.append((origin, problem))
            expanded.append(ModelRequest(name, request.checkpoint))
    if problems:
        lines = [problem if origin == "--model" else f"{origin}: {problem}" for origin, problem in problems]
        raise HarnessError(lines[0] if len(lines) == 1 else
                           f"{len(lines)} models cannot run, so none was run: " + " | ".join(lines))
    return list(dict.fromkeys(expanded))


def run_bulk(store: Store, suite, requests: list[ModelRequest], shard: Shard | None = None,
             on_result: Callable[[BulkResult], None] | None = None, **options) -> list[BulkResult]:
    """Run each requested model with the suite's task function (:func:`evaluator`; ``options`` are its
    keyword arguments); returns one result per request, in order."""
    check_run_options(**{name: options.get(name) for name in RUN_NUMBERS})
    evaluator(suite)  # a suite that runs no models: say so before any work
    if suite.task == "classification":
        from .runner import list_suite_images

        # A folder of the wrong layout is wrong for every model: say so once, before any work.
        list_suite_images(suite, options.get("data_dir"), options.get("quiet", True))
    isolate = len(requests) > 1 and not (shard is not None and shard.sharded)
    results = []
    for number, request in enumerate(requests, 1):
        if len(requests) > 1 and not options.get("quiet") and (shard is None or shard.is_leader):
            print(f"model {number} of {len(requests)}: {request.model}", file=sys.stderr)
        if isolate:
            result = run_in_child(store, suite, request, options)
        else:
            result = run_one(store, suite, request, shard, options)
            release_memory()
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def evaluator(suite) -> Callable:
    """The function that runs a model on ``suite``'s samples through the run engine, by the suite's task."""
    if suite.task == "classification":
        from .runner import evaluate_classification

        return evaluate_classification
    if suite.task == "detection":
        from .detection.runner import evaluate_detection

        return evaluate_detection
    raise HarnessError(f"suite {suite.name} cannot run models, only import their predictions")


def run_one(store: Store, suite, request: ModelRequest, shard: Shard | None, options: dict,
            on_claim: Callable[[str], None] | None = None) -> BulkResult:
    """One model in this process; a failure (already stored as a failed run) becomes a failed result."""
    try:
        outcome = evaluator(suite)(store, suite, request.model, checkpoint=request.checkpoint, shard=shard,
                                   skip_complete=True, record_failures=True, on_claim=on_claim, **options)
        return BulkResult(request, "skipped" if outcome.skipped else "complete", outcome.run_id,
                          outcome.n_images, outcome.n_errors)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the others
        return BulkResult(request, "failed", error=describe_error(exc))


def run_in_child(store: Store, suite, request: ModelRequest, options: dict) -> BulkResult:
    """One model in a child process; a child that dies without an answer is recorded as a failed run."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no CUDA state, no threads inherited
    answers, answer = context.Pipe(duplex=False)
    child = context.Process(target=_child_main, args=(answer, str(store.root), suite.name, request, options),
                            name=f"realbench {request.model}")
    child.start()
    answer.close()  # the child holds the only writing end now: its death ends the reading below
    claimed, result = None, None
    try:
        while True:
            try:
                kind, value = answers.recv()
            except EOFError:
                break
            if kind == "claimed":
                claimed = value
            else:
                result = value
        child.join()
    except KeyboardInterrupt:  # the child marks its run interrupted, then this process stops too
        if child.is_alive():
            os.kill(child.pid, signal.SIGINT)
        child.join()
        raise
    finally:
        answers.close()
    if result is not None:
        return result
    code = child.exitcode
    error = (f"the process running {request.model} died from signal {signal.Signals(-code).name}"
             + (" (the system may have run out of memory)" if code == -signal.SIGKILL else "")
             if code < 0 else f"the process running {request.model} exited with status {code} without a result")
    return BulkResult(request, "failed", run_id=record_death(store, suite, request, options, claimed, error),
                      error=error)


def record_death(store: Store, suite, request: ModelRequest, options: dict, claimed: str | None,
                 error: str) -> str:
    """Mark the run a dead child had claimed as failed, or store a failed run when it had claimed none."""
    from .runner import record_failed_run

    if claimed is not None:
        lock = store.lock_run(claimed)
        try:
            meta = store.run_meta(claimed)
            if lock.try_acquire() and meta.get("status") == "running":
                RunWriter(store, claimed, meta).fail(error)
                return claimed
        finally:
            lock.release()
    return record_failed_run(store, suite, request.model, options.get("name"), request.checkpoint, Shard(), error)


def _child_main(answer, store_root: str, suite_name: str, request: ModelRequest, options: dict) -> None:
    from .suites import get_suite

    _die_with_parent()
    try:
        result = run_one(Store(store_root), get_suite(suite_name), request, None, options,
                         on_claim=lambda run_id: answer.send(("claimed", run_id)))
    except KeyboardInterrupt:
        return
    answer.send(("result", result))


def _die_with_parent() -> None:
    """Ask Linux to stop this child when its parent dies (kill -9 of a bulk run stops its model too)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: an orphaned child finishes its model and exits


def release_memory() -> None:
    """Give the last model's memory back before the next one loads (its exception may have held it)."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
