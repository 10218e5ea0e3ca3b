"""Reading ActivityNet files into rows, refusing what the official tools would mis-handle.

Dense-captioning submission (densevid_eval)::

    {"version": ..., "external_data": ..., "results": {"v_<id>": [{"sentence": str, "timestamp": [start, end]}]}}

Detection / proposal submission (ActivityNet v1.3)::

    {"version": ..., "external_data": ..., "results": {"<id>": [{"label": str, "score": num, "segment": [start, end]}]}}

Ground truth: ActivityNet Captions ``{"v_<id>": {"duration", "timestamps", "sentences"}}`` and
ActivityNet v1.3 ``{"database": {"<id>": {"subset", "duration", "annotations": [{"segment", "label"}]}}}``.

How bad input is handled (the official tools' behaviour where it is well defined):

* missing ``results``/``version``/``external_data``, an entry without its keys, a time
  that is not a finite number (NaN, inf, a string), a sentence that is not a string:
  refused, naming the file, the video and the entry;
* a sentence holding ``\\r``, ``\\v`` or ``\\f``: refused, because the PTB tokenizer
  breaks lines there and the official tool then pairs every later sentence with the
  wrong tokens;
* non-ASCII characters: kept as given; scoring replaces each by a space (densevid_eval);
* reversed captioning timestamps (start > end) and zero-length ones: kept; their tIoU
  with anything is 0 in densevid_eval's arithmetic, so they count as unmatched
  predictions, as in the official tool; a reversed detection segment is refused (the
  official arithmetic gives it a negative or undefined tIoU);
* times beyond the video's duration or below 0: kept unclipped, as both official tools do;
* videos that no reference holds: stored; densevid_eval ignores them, the detection
  evaluation counts their detections as false positives;
* integers too large for a float and JSON nested too deeply: refused when the file is read
  (``harness/jsonfile.py``).

The same for users, with the ground-truth cases: ``README.md`` beside this file.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import HarnessError
from ..jsonfile import is_finite_number, read_json
from ..storecheck import printable_text

SUBMISSION_KEYS = ("results", "version", "external_data")
_LINE_BREAKERS = ("\r", "\x0b", "\x0c")


def _segment(value, where: str, path: Path, allow_reversed: bool) -> tuple[float, float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(is_finite_number(v) for v in value)):
        raise HarnessError(f"{path}: {where} has segment {value!r}; expected [start, end] as two finite "
                           "numbers of seconds")
    start, end = float(value[0]), float(value[1])
    if start > end and not allow_reversed:
        raise HarnessError(f"{path}: {where} has segment [{start}, {end}] that ends before it starts; "
                           "expected start <= end")
    return start, end


def _sentence(value, where: str, path: Path) -> str:
    if not isinstance(value, str):
        raise HarnessError(f"{path}: {where} has sentence {value!r}; expected a string")
    if any(c in value for c in _LINE_BREAKERS):
        raise HarnessError(f"{path}: {where} has a sentence with a \\r, \\v or \\f character, which the PTB "
                           "tokenizer treats as a line break; expected one line of text")
    if not _storable(value):
        raise HarnessError(f"{path}: {where} has sentence {value[:60]!r} with a lone surrogate or a NUL character; "
                           "expected text UTF-8 can store")
    return value


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _check_videos(path: Path, videos: dict, where: str, problem, expected: str) -> None:
    """Refuse a ground truth file whose per-video records are malformed: ``problem(video)`` names what is
    wrong with one (or None); the error names the first bad video and how many are bad."""
    bad = [(vid, why) for vid, video in videos.items() if (why := problem(video))]
    if bad:
        vid, why = bad[0]
        raise HarnessError(f"{path}: {len(bad)} of {len(videos)} videos are invalid; the first is "
                           f"{where}[{vid!r}]: {why}; expected {expected}. Nothing was stored.")


def _type(v) -> str:
    return "null" if v is None else type(v).__name__


def _caption_video_problem(video) -> str | None:
    if not isinstance(video, dict):
        return f"it is a {_type(video)}"
    if not {"timestamps", "sentences"} <= video.keys():
        return "it lacks \"timestamps\" or \"sentences\""
    stamps, sentences = video["timestamps"], video["sentences"]
    if not isinstance(stamps, list) or not isinstance(sentences, list):
        return f"its timestamps are a {_type(stamps)} and its sentences a {_type(sentences)}, not lists"
    if len(stamps) != len(sentences):
        return f"it has {len(stamps)} timestamps and {len(sentences)} sentences"
    return None


def _v13_video_problem(video) -> str | None:
    if not isinstance(video, dict):
        return f"it is a {_type(video)}"
    if "subset" in video and not isinstance(video["subset"], str):
        return f"its \"subset\" is a {_type(video['subset'])}, not a string"
    if "annotations" in video and not isinstance(video["annotations"], list):
        return f"its \"annotations\" are a {_type(video['annotations'])}, not a list"
    return None


def _submission(path: Path, what: str) -> dict:
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise HarnessError(f"{what} {path} holds a {type(data).__name__}; expected an object with keys "
                           f"{list(SUBMISSION_KEYS)}")
    missing = [k for k in SUBMISSION_KEYS if k not in data]
    if missing:
        raise HarnessError(f"{what} {path} lacks the keys {missing}; the official ActivityNet tools require "
                           f"{list(SUBMISSION_KEYS)} (\"version\" and \"external_data\" may hold anything)")
    if not isinstance(data["results"], dict):
        raise HarnessError(f"{what} {path}: \"results\" is a {type(data['results']).__name__}; expected an "
                           "object mapping video ids to lists of predictions")
    for vid, entries in data["results"].items():
        if not printable_text(vid) or not vid:
            raise HarnessError(f"{path}: video id {vid[:60]!r} is not printable text (a lone surrogate, NUL or "
                               "another control character); expected an id such as 'v_uqiMw7tQ1Cc'")
        if not isinstance(entries, list):
            raise HarnessError(f"{path}: video {vid!r} maps to a {type(entries).__name__}; expected a list "
                               "of predictions")
    return data


def _entries(data: dict, path: Path, required: tuple[str, ...], expected: str):
    """(video, rank, entry, where) of every prediction, each checked for its required keys."""
    for vid, entries in data["results"].items():
        for rank, entry in enumerate(entries):
            where = f"video {vid!r} entry {rank}"
            if not isinstance(entry, dict) or any(k not in entry for k in required):
                raise HarnessError(f"{path}: {where} is {entry!r:.120}; expected an object with keys {expected}")
            yield vid, rank, entry, where


def read_caption_submission(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """A densevid_eval submission as rows (key, rank, start, end, sentence) and its header."""
    path = Path(path)
    data = _submission(path, "dense-captioning submission")
    keys, ranks, starts, ends, sentences = [], [], [], [], []
    for vid, rank, entry, where in _entries(data, path, ("sentence", "timestamp"),
                                            "\"sentence\" and \"timestamp\""):
        start, end = _segment(entry["timestamp"], where, path, allow_reversed=True)
        keys.append(vid)
        ranks.append(rank)
        starts.append(start)
        ends.append(end)
        sentences.append(_sentence(entry["sentence"], where, path))
    rows = pd.DataFrame({"key": keys, "rank": ranks, "start": starts, "end": ends, "sentence": sentences})
    return rows, {"version": data["version"], "external_data": data["external_data"]}


def read_caption_ground_truth(path: str | Path) -> pd.DataFrame:
    """ActivityNet Captions ground truth as rows (key, duration, idx, start, end, sentence)."""
    path = Path(path)
    data = read_json(path, "ActivityNet Captions ground truth")
    if not isinstance(data, dict):
        raise HarnessError(f"{path} holds a {type(data).__name__}; expected an object mapping video ids to "
                           "{duration, timestamps, sentences}")
    _check_videos(path, data, "video", _caption_video_problem,
                  "{duration, timestamps: [[start, end], ...], sentences: [str, ...]} with one timestamp per sentence")
    rows = {"key": [], "duration": [], "idx": [], "start": [], "end": [], "sentence": []}
    for vid, video in data.items():
        stamps, sentences = video["timestamps"], video["sentences"]
        duration = video.get("duration")
        for i, (stamp, sentence) in enumerate(zip(stamps, sentences)):
            where = f"video {vid!r} segment {i}"
            start, end = _segment(stamp, where, path, allow_reversed=True)
            rows["key"].append(vid)
            rows["duration"].append(float(duration) if is_finite_number(duration) else None)
            rows["idx"].append(i)
            rows["start"].append(start)
            rows["end"].append(end)
            rows["sentence"].append(_sentence(sentence, where, path))
    return pd.DataFrame(rows)


def read_detection_submission(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """An ActivityNet detection or proposal submission as rows (key, rank, label, score, start, end).

    ``label`` is None for every row of a proposal file (entries without "label").
    """
    path = Path(path)
    data = _submission(path, "ActivityNet detection/proposal submission")
    rows = {"key": [], "rank": [], "label": [], "score": [], "start": [], "end": []}
    labelled = None
    for vid, rank, entry, where in _entries(data, path, ("segment", "score"),
                                            "\"segment\", \"score\" and, for detection, \"label\""):
        has_label = "label" in entry
        if labelled is None:
            labelled = has_label
        elif labelled != has_label:
            raise HarnessError(f"{path}: {where} {'has' if has_label else 'lacks'} a \"label\" unlike the "
                               "entries before it; expected all detections (labelled) or all proposals")
        if has_label and not isinstance(entry["label"], str):
            raise HarnessError(f"{path}: {where} has label {entry['label']!r}; expected a class name")
        if not is_finite_number(entry["score"]):
            raise HarnessError(f"{path}: {where} has score {entry['score']!r}; expected a finite number")
        start, end = _segment(entry["segment"], where, path, allow_reversed=False)
        rows["key"].append(vid)
        rows["rank"].append(rank)
        rows["label"].append(entry["label"] if has_label else None)
        rows["score"].append(float(entry["score"]))
        rows["start"].append(start)
        rows["end"].append(end)
    frame = pd.DataFrame(rows).astype({"label": object})
    return frame, {"version": data["version"], "external_data": data["external_data"],
                   "task": "detection" if labelled else "proposals"}


def read_v13_ground_truth(path: str | Path, subset: str = "validation") -> pd.DataFrame:
    """ActivityNet v1.3 ground truth (``activity_net.v1-3.min.json``) of one subset as rows."""
    path = Path(path)
    data = read_json(path, "ActivityNet v1.3 ground truth")
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise HarnessError(f"{path} has no \"database\" object; expected the ActivityNet v1.3 ground truth "
                           "(activity_net.v1-3.min.json)")
    _check_videos(path, data["database"], "database", _v13_video_problem,
                  '{"subset": str, "duration": seconds, "annotations": [{"segment", "label"}, ...]} per video')
    rows = {"key": [], "duration": [], "idx": [], "label": [], "start": [], "end": []}
    subsets = set()
    for vid, video in data["database"].items():
        subsets.add(video.get("subset"))
        if video.get("subset") != subset:
            continue
        for i, ann in enumerate(video.get("annotations", [])):
            where = f"video {vid!r} annotation {i}"
            if not isinstance(ann, dict) or not isinstance(ann.get("label"), str):
                raise HarnessError(f"{path}: {where} has no class name in \"label\"")
            start, end = _segment(ann.get("segment"), where, path, allow_reversed=False)
            duration = video.get("duration")
            rows["key"].append(vid)
            rows["duration"].append(float(duration) if is_finite_number(duration) else None)
            rows["idx"].append(i)
            rows["label"].append(ann["label"])
            rows["start"].append(start)
            rows["end"].append(end)
    if not rows["key"]:
        raise HarnessError(f"{path} has no annotated video in subset {subset!r}; subsets present: "
                           f"{sorted(s for s in subsets if isinstance(s, str))}")
    return pd.DataFrame(rows)
