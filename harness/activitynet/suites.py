"""The ``anet-captions`` and ``anet-detection`` suites: label sets, imports, scoring from stored rows."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Mapping

import numpy as np
import pandas as pd

from ..data import resolve_file, sha256_file
from ..errors import HarnessError
from ..identity import stored_import
from ..store import Store
from ..suites import Suite, declared
from . import densevid, formats, temporal
from .cocotext import MeteorSession

MANIFEST = "activitynet-captions"
AVAILABLE_LIST = "activitynet/available_mp4.txt"
CAPTIONS_FORMAT = "activitynet-captions"
V13_FORMAT = "activitynet-v1.3"


@dataclass(frozen=True)
class CaptionReference:
    path: str
    available_only: bool
    description: str


CAPTION_LABEL_SETS = {
    "anet-captions-val_1": CaptionReference(
        "activitynet/captions_val_1.json", False, "ActivityNet Captions val_1 (4,917 videos)"),
    "anet-captions-val_2": CaptionReference(
        "activitynet/captions_val_2.json", False, "ActivityNet Captions val_2 (4,885 videos)"),
    "anet-captions-val_1-available": CaptionReference(
        "activitynet/captions_val_1.json", True,
        "ActivityNet Captions val_1, videos still downloadable (available_mp4.txt; 4,483 videos): "
        "MDVC/BMT's val_1_no_missings.json"),
    "anet-captions-val_2-available": CaptionReference(
        "activitynet/captions_val_2.json", True,
        "ActivityNet Captions val_2, videos still downloadable (available_mp4.txt; 4,453 videos): "
        "MDVC/BMT's val_2_no_missings.json"),
}


def _video_id(key: str) -> str:
    """YouTube id without the ``v_`` prefix that ActivityNet Captions adds (v1.3 files have none)."""
    return key[2:] if len(key) == 13 and key.startswith("v_") else key


def ensure_caption_label_sets(store: Store, names=None) -> None:
    """Register the shipped ActivityNet Captions ground truth (idempotent)."""
    for name in names or CAPTION_LABEL_SETS:
        if store.has_label_set(name):
            continue
        ref = CAPTION_LABEL_SETS[name]
        path = resolve_file(MANIFEST, ref.path)
        rows = formats.read_caption_ground_truth(path)
        meta = {"dataset": "activitynet-captions", "format": CAPTIONS_FORMAT, "description": ref.description,
                "manifest": MANIFEST, "source_file": ref.path, "source_sha256": sha256_file(path)}
        if ref.available_only:
            available_path = resolve_file(MANIFEST, AVAILABLE_LIST)
            available = set(available_path.read_text().split())
            rows = rows[rows["key"].isin(available)].reset_index(drop=True)
            meta["filter"] = AVAILABLE_LIST
        store.put_label_set(name, meta, {"caption_segments": rows})


def _label_set_names(label_set: str | None, default: str) -> list[str]:
    return [n for n in (label_set or default).split("+") if n]


def _check_label_set(store: Store, name: str, formats_ok: tuple[str, ...], suite: str) -> dict:
    if name in CAPTION_LABEL_SETS:
        ensure_caption_label_sets(store, [name])
    meta = store.label_set_meta(name)
    if meta.get("format") not in formats_ok:
        raise HarnessError(f"label set {name!r} holds {meta.get('format', 'labels')!r} ground truth; suite "
                           f"{suite} expects {' or '.join(formats_ok)} ground truth, e.g. "
                           f"{', '.join(CAPTION_LABEL_SETS)}")
    return meta


def _run_meta(store: Store, run_id: str, suite: str) -> dict:
    run = store.run_meta(run_id)
    if run.get("suite") != suite:
        raise HarnessError(f"run {run_id} belongs to suite {run.get('suite')!r}, not {suite}; "
                           f"expected a run imported with --suite {suite}")
    if run.get("status") != "complete":
        raise HarnessError(f"run {run_id} is {run.get('status')}, not complete; expected a finished import")
    store.complete_run(run_id)  # a chunk missing or cut short is an error naming it, never a score of 0.00
    return run


def _refuse_unknown_videos(store: Store, rows: pd.DataFrame, path: Path) -> None:
    """Predictions for videos that no stored caption label set holds (a typo, another dataset) are refused,
    not stored to score as nothing; a store without caption label sets has nothing to check against."""
    stored = [n for n in CAPTION_LABEL_SETS if store.has_label_set(n)]
    if not stored or rows.empty:
        return
    known = set(store.sql("SELECT DISTINCT key FROM caption_segments WHERE list_contains(?, label_set)",
                          [stored])["key"])
    unknown = sorted(set(rows["key"]) - known)
    if unknown:
        raise HarnessError(f"{path}: {len(unknown)} of {rows['key'].nunique()} videos are in none of the label sets "
                           f"{', '.join(stored)}; the first is {unknown[0][:60]!r}; expected ActivityNet Captions "
                           "validation video ids such as 'v_uqiMw7tQ1Cc'. Nothing was stored.")


def _segments(frame: pd.DataFrame) -> dict[str, densevid.Segments]:
    stamps = frame[["start", "end"]].to_numpy(dtype=float)
    sentences = frame["sentence"].tolist()
    return {k: densevid.Segments(stamps[rows], tuple(sentences[i] for i in rows))
            for k, rows in temporal.rows_by_key(frame["key"]).items()}


class ActivityNetSuite(Suite):
    """What both ActivityNet suites share: the caption label sets, video keys, submission imports."""
    metric_version: str
    import_formats: ClassVar[tuple[str, ...]] = (".json",)
    label_sets: ClassVar[Mapping[str, CaptionReference]] = CAPTION_LABEL_SETS

    def ensure_label_sets(self, store: Store, names: list[str] | None = None) -> None:
        ensure_caption_label_sets(store, names)

    def key_of(self, name: str) -> str | None:
        """A video's key is its YouTube id as the label set writes it (``v_`` + 11 characters for Captions)."""
        stem = Path(str(name)).name.rsplit(".", 1)[0]
        return stem if len(_video_id(stem)) == 11 else None

    def sample_keys(self, store: Store, label_set: str | None = None) -> list[str]:
        names = _label_set_names(label_set, self.default_label_set)
        for n in names:
            if n in CAPTION_LABEL_SETS:
                ensure_caption_label_sets(store, [n])
        table = "temporal_segments" if all(store.label_set_meta(n).get("format") == V13_FORMAT for n in names) \
            else "caption_segments"
        return store.sql(f"SELECT DISTINCT key FROM {table} WHERE list_contains(?, label_set) ORDER BY key",
                         [names])["key"].tolist()

    def _import(self, store: Store, path: Path, name: str, model: str | None,
                reader, table: str, header_fields: tuple[str, ...] = ()) -> str:
        existing = stored_import(store, self.dataset, path)
        if existing:
            return existing
        rows, header = reader(path)
        if table == "dense_captions":
            _refuse_unknown_videos(store, rows, path)
        meta = {"name": name, "model": model or name, "suite": self.name, "dataset": self.dataset,
                "kind": "import", "metric_version": self.metric_version, "source_file": str(path.resolve()),
                "source_sha256": sha256_file(path), "submission_version": header.get("version"),
                "external_data": header.get("external_data"), "n_segments": len(rows),
                "n_videos": int(rows["key"].nunique()), **{k: header[k] for k in header_fields}}
        return store.write_run(meta, {table: rows})


@dataclass(repr=False)
class CaptionsSuite(ActivityNetSuite):
    name: str
    dataset: str
    description: str
    default_label_set: str

    task: ClassVar[str] = "dense-captioning"
    metric_version: str = densevid.METRIC_VERSION
    options: ClassVar[dict[str, tuple[str, ...]]] = {
        "import": ("model",), "score": ("tious", "max_proposals", "progress", "meteor"),
        "score-per-split": ("tious", "max_proposals", "progress", "meteor")}

    def _import_predictions(self, store: Store, path: Path, name: str, model: str | None = None) -> str:
        """Import a densevid_eval submission JSON: one row per predicted segment; returns the run id."""
        return self._import(store, path, name, model, formats.read_caption_submission, "dense_captions")

    def predictions(self, store: Store, run_id: str) -> pd.DataFrame:
        _run_meta(store, run_id, self.name)
        return store.sql('SELECT key, rank, start, "end", sentence FROM dense_captions WHERE run_id = ? '
                         "ORDER BY key, rank", [run_id])

    def references(self, store: Store, label_set: str) -> pd.DataFrame:
        return store.sql('SELECT key, idx, start, "end", sentence FROM caption_segments WHERE label_set = ? '
                         "ORDER BY key, idx", [label_set])

    def _score(self, store: Store, run_id: str, label_set: str | None = None,
               tious=densevid.TIOUS, max_proposals: int = densevid.MAX_PROPOSALS, progress: bool = True,
               meteor: MeteorSession | None = None) -> dict:
        """densevid_eval scores of a run against one label set or several joined by ``+``.

        ``anet-captions-val_1+anet-captions-val_2`` (the default) is the official tool's
        default, two reference files at once; for the ground-truth-proposal protocol see
        :func:`score_per_split`.  Metrics are fractions (the official tool prints percent).
        """
        names = _label_set_names(label_set, self.default_label_set)
        for n in names:
            _check_label_set(store, n, (CAPTIONS_FORMAT,), self.name)
        preds = self.predictions(store, run_id)
        with contextlib.ExitStack() as stack:
            if meteor is None:  # start the JVM (its slow start-up) while the rows are read
                meteor = stack.enter_context(MeteorSession())
            refs = [_segments(self.references(store, n)) for n in names]
            result = densevid.evaluate(_segments(preds), refs, tious=tious, max_proposals=max_proposals,
                                       progress=progress, meteor=meteor)
        known = set().union(*[r.keys() for r in refs])
        predicted = set(preds["key"])
        result.update(suite=self.name, run_id=run_id, label_set="+".join(names),
                      metric_version=self.metric_version, max_proposals=max_proposals,
                      n_videos_predicted=len(predicted & known), n_unknown_videos=len(predicted - known))
        return result

    def _score_per_split(self, store: Store, runs: Mapping[str, str], meteor: MeteorSession | None = None,
                         **kwargs) -> dict:
        """The ground-truth-proposal protocol: each run against its own label set, metrics averaged.

        ``runs`` maps label set to run, e.g. ``{"anet-captions-val_1": r1, "anet-captions-val_2": r2}``.
        """
        if not runs:
            raise HarnessError("score_per_split needs at least one {label set: run} pair")
        with contextlib.ExitStack() as stack:
            if meteor is None:  # one METEOR process for all splits
                meteor = stack.enter_context(MeteorSession())
            parts = {ls: self.score(store, run, ls, meteor=meteor, **kwargs) for ls, run in runs.items()}
        return self.per_split_mean(parts)

    def per_split_mean(self, parts: Mapping[str, dict]) -> dict:
        """Per-split scores (label set -> :meth:`score` result) averaged, metric by metric."""
        metrics = [*densevid.METRICS, "Precision", "Recall", "F1"]
        out = {m: float(np.mean([p[m] for p in parts.values()])) for m in metrics}
        out.update(suite=self.name, label_set="|".join(parts), protocol="per-split mean",
                   n=sum(p["n"] for p in parts.values()), metric_version=self.metric_version, splits=dict(parts))
        return out

    def describe(self, result: dict) -> str:
        """A table a person reads: each metric in percent per tIoU and averaged (per split for --per-split)."""
        columns = [*densevid.METRICS, "Precision", "Recall"]
        if "splits" in result:
            # the first column as wide as the longest label set's name: never cut (val_1 and val_2 differ at the end)
            width = max(14, *(len(name) + 1 for name in result["splits"]))
            head = f"{'':<{width}}" + "".join(f"{c:>10}" for c in columns)
            lines = [f"{result['label_set']}: per-split mean (ground-truth-proposal protocol), n={result['n']:,} "
                     f"videos, percent ({result['metric_version']})", head]
            for name, part in result["splits"].items():
                lines.append(f"{name:<{width}}" + "".join(f"{100 * part[c]:>10.2f}" for c in columns))
            lines.append(f"{'mean':<{width}}" + "".join(f"{100 * result[c]:>10.2f}" for c in columns))
            lines.append(f"F1 {100 * result['F1']:.2f}")
            return "\n".join(lines)
        head = f"{'':<14}" + "".join(f"{c:>10}" for c in columns)
        lines = [f"run {result['run_id']} on {result['label_set']}: n={result['n']:,} videos "
                 f"({result['n_videos_predicted']:,} predicted, {result['n_unknown_videos']:,} unknown), "
                 f"at most {result['max_proposals']} segments per video, percent ({result['metric_version']})", head]
        for i, t in enumerate(result["tious"]):
            lines.append(f"{'tIoU ' + format(t, '.2f'):<14}" + "".join(
                f"{100 * result['per_tiou'][c][i]:>10.2f}" for c in columns))
        lines.append(f"{'mean':<14}" + "".join(f"{100 * result[c]:>10.2f}" for c in columns))
        lines.append(f"F1 {100 * result['F1']:.2f}")
        return "\n".join(lines)


@dataclass(repr=False)
class DetectionSuite(ActivityNetSuite):
    name: str
    dataset: str
    description: str
    default_label_set: str

    task: ClassVar[str] = "temporal-detection"
    metric_version: str = temporal.METRIC_VERSION
    options: ClassVar[dict[str, tuple[str, ...]]] = {
        "import": ("model",), "import-labels": ("subset",),
        "score": ("tious", "max_avg_nr_proposals", "progress")}

    def _import_ground_truth(self, store: Store, path: Path, name: str, subset: str = "validation") -> str:
        """Register an ActivityNet v1.3 ground truth file (activity_net.v1-3.min.json) as a label set."""
        rows = formats.read_v13_ground_truth(path, subset)
        store.put_label_set(name, {
            "dataset": self.dataset, "format": V13_FORMAT, "subset": subset,
            "description": f"ActivityNet v1.3 {subset} ground truth from {path.name}",
            "source_file": str(path.resolve()), "source_sha256": sha256_file(path)},
            {"temporal_segments": rows})
        return name

    def _import_predictions(self, store: Store, path: Path, name: str, model: str | None = None) -> str:
        """Import an ActivityNet detection or proposal submission; returns the run id."""
        return self._import(store, path, name, model, formats.read_detection_submission,
                            "temporal_detections", header_fields=("task",))

    def ground_truth(self, store: Store, label_set: str) -> pd.DataFrame:
        meta = _check_label_set(store, label_set, (CAPTIONS_FORMAT, V13_FORMAT), self.name)
        if meta["format"] == V13_FORMAT:
            frame = store.sql('SELECT key, label, start, "end" FROM temporal_segments WHERE label_set = ? '
                              "ORDER BY key, idx", [label_set])
        else:  # caption segments are class-agnostic proposals ground truth
            frame = store.sql('SELECT key, NULL::VARCHAR AS label, start, "end" FROM caption_segments '
                              "WHERE label_set = ? ORDER BY key, idx", [label_set])
        return frame.assign(key=frame["key"].map(_video_id))

    def _score(self, store: Store, run_id: str, label_set: str | None = None,
               tious=temporal.TIOUS, max_avg_nr_proposals: int = temporal.MAX_AVG_NR_PROPOSALS,
               progress: bool = True) -> dict:
        """Detection runs: mAP; proposal runs: AR@AN and its AUC (percent, as the official tool prints)."""
        run = _run_meta(store, run_id, self.name)
        names = _label_set_names(label_set, self.default_label_set)
        if len(names) != 1:
            raise HarnessError(f"suite {self.name} scores against one label set, got {names}")
        gt = self.ground_truth(store, names[0])
        rows = store.sql('SELECT key, rank, label, score, start, "end" FROM temporal_detections '
                         "WHERE run_id = ? ORDER BY key, rank", [run_id])
        rows = rows.assign(key=rows["key"].map(_video_id))
        if run.get("task") == "proposals":
            result = temporal.evaluate_proposals(gt, rows, tious, max_avg_nr_proposals)
        else:
            result = temporal.evaluate_detection(gt, rows, tious, progress=progress)
        result.update(suite=self.name, run_id=run_id, label_set=names[0], task=run.get("task"),
                      metric_version=self.metric_version,
                      n_unknown_videos=len(set(rows["key"]) - set(gt["key"])))
        return result

    def describe(self, result: dict) -> str:
        """mAP per tIoU and its average (detections), or AR@AN and AUC (proposals), in percent."""
        head = (f"run {result['run_id']} on {result['label_set']}: n={result['n']:,} videos, "
                f"{result['n_unknown_videos']:,} unknown ({result['metric_version']})")
        if "AUC" in result:
            ars = [k for k in ("AR@1", "AR@5", "AR@10", "AR@50", "AR@100") if k in result]
            return "\n".join([head, "".join(f"{k:>10}" for k in [*ars, "AUC"]),
                              "".join(f"{100 * result[k]:>10.2f}" for k in ars) + f"{result['AUC']:>10.2f}"])
        tious = result.get("tious") or list(temporal.TIOUS)
        return "\n".join([head, "tIoU " + "".join(f"{t:>7.2f}" for t in tious) + f"{'average':>9}",
                          "mAP  " + "".join(f"{100 * v:>7.2f}" for v in result["mAP"])
                          + f"{100 * result['average_mAP']:>9.2f}"])


ANET_CAPTIONS = CaptionsSuite(**declared("anet-captions"))
ANET_DETECTION = DetectionSuite(**declared("anet-detection"))
