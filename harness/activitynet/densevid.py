"""Dense video captioning scores, as the official ``densevid_eval`` computes them.

The reference is the Python 3 ``evaluate.py`` of ranjaykrishna/densevid_eval
(commit 9d4045a) that MDVC and BMT ship and report with.  For each tIoU
threshold:

* every predicted segment is paired with every ground-truth segment of every
  reference file whose tIoU with it is >= the threshold; a prediction that
  overlaps none is paired with a random lower-case string, so it counts and
  scores 0;
* sentences lose non-ASCII characters (replaced by spaces) and are PTB
  tokenized; BLEU@1-4, METEOR, ROUGE-L and CIDEr-D are computed per video over
  that video's pairs (pycocoevalcap's scorers);
* each metric is the mean over all reference videos, a video without
  predictions scoring 0;
* localisation: a video's recall is the share of its ground-truth segments
  hit by some prediction with tIoU strictly above the threshold, its
  precision the share of its predictions that hit one; each is the best over
  the reference files that hold the video, then averaged over videos.

Scores are averaged over thresholds; F1 is computed from the averaged
precision and recall.  The official tool starts a tokenizer JVM per metric
and threshold and waits on METEOR line by line; here every distinct sentence
is tokenized once, one METEOR process gets every distinct pair (and one
EVAL per video) streamed to it, a video's pair list that repeats across
thresholds is scored once, ROUGE-L uses a bit-parallel LCS (same integer),
and BLEU/CIDEr-D (pycocoevalcap's own scorers, per video) run in worker
processes while the JVM works.  On the shipped MDVC/BMT outputs every printed
average equals the official tool's to 4 decimals (benchmarks/results/anet.md).

Known differences, none of which changes a score:
* garbage references come from a seeded generator (the official one is
  unseeded); a random word matches nothing, so the scores do not depend on it;
* a video whose prediction list is empty counts as a video without
  predictions (the official tool crashes on the first such video or reuses the
  previous video's count for precision).
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import string
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..metrics import CAPTION_METRICS, DENSEVID_VERSION
from .cocotext import MeteorSession, ptb_tokenize

TIOUS = (0.3, 0.5, 0.7, 0.9)
MAX_PROPOSALS = 1000
METRICS = CAPTION_METRICS
METRIC_VERSION = DENSEVID_VERSION


@dataclass(frozen=True)
class Segments:
    """One video's segments: (n, 2) float64 [start, end] and a sentence each."""

    timestamps: np.ndarray
    sentences: tuple[str, ...]


def remove_nonascii(text: str) -> str:
    return "".join(c if ord(c) < 128 else " " for c in text)


def official_tiou(preds: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """tIoU matrix (predictions x references) in densevid_eval's arithmetic.

    The operations and their order follow ``ANETcaptions.iou`` element by
    element, so that segments sitting exactly on a threshold fall on the same
    side as in the official tool.
    """
    start_i, end_i = preds[:, :1], preds[:, 1:]
    start, end = refs[None, :, 0], refs[None, :, 1]
    intersection = np.maximum(0.0, np.minimum(end, end_i) - np.maximum(start, start_i))
    union = np.minimum(np.maximum(end, end_i) - np.minimum(start, start_i),
                       end - start + end_i - start_i)
    return intersection / (union + 1e-8)


def _garbage_words(seed: int = 0):
    rng = random.Random(seed)
    letters = string.ascii_lowercase
    while True:
        yield "".join(rng.choice(letters) for _ in range(rng.randint(10, 20)))


def _matches(predictions, references, videos):
    """Per video, per reference file holding it: (tIoU matrix, reference segments)."""
    out = {}
    for vid in videos:
        pred = predictions.get(vid)
        per_ref = []
        for ref in references:
            seg = ref.get(vid)
            if seg is None:
                continue
            tiou = (official_tiou(pred.timestamps, seg.timestamps) if pred is not None
                    else np.zeros((0, len(seg.sentences))))
            per_ref.append((tiou, seg))
        out[vid] = per_ref
    return out


def _pairs(pred: Segments | None, matches, tiou: float) -> list[tuple[str, str | None]]:
    """A video's (prediction, reference) sentence pairs in the official order; None = garbage."""
    pairs: list[tuple[str, str | None]] = []
    if pred is None:
        return pairs
    for p, sentence in enumerate(pred.sentences):
        added = False
        for matrix, seg in matches:
            for r in np.nonzero(matrix[p] >= tiou)[0]:
                pairs.append((sentence, seg.sentences[r]))
                added = True
        if not added:
            pairs.append((sentence, None))
    return pairs


def localisation(matches, n_predictions: int, tiou: float) -> tuple[float, float]:
    """A video's precision and recall at one threshold (strict tIoU > threshold), best over reference files."""
    best_p = best_r = 0.0
    for matrix, seg in matches:
        if n_predictions:
            hit = matrix > tiou
            best_p = max(best_p, float(hit.any(axis=1).sum()) / n_predictions)
            best_r = max(best_r, float(hit.any(axis=0).sum()) / len(seg.sentences))
    return best_p, best_r


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists (bit-parallel, Allison-Dix)."""
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - bin(v).count("1")


def rouge_l(candidate: str, reference: str, beta: float = 1.2) -> float:
    """pycocoevalcap's ``Rouge.calc_score`` for one reference, with a faster LCS (same integer, same arithmetic)."""
    token_c, token_r = candidate.split(" "), reference.split(" ")
    lcs = lcs_length(token_r, token_c)
    prec_max, rec_max = lcs / float(len(token_c)), lcs / float(len(token_r))
    if prec_max != 0 and rec_max != 0:
        return ((1 + beta**2) * prec_max * rec_max) / float(rec_max + beta**2 * prec_max)
    return 0.0


class _CaptionMetrics:
    """BLEU@1-4, ROUGE-L and CIDEr-D of one video's pairs with pycocoevalcap's scorers.

    The per-sentence n-gram counting (the same for a pair wherever it occurs)
    is cached; the scorers' corpus-level arithmetic runs per video as usual.
    """

    def __init__(self, garbage) -> None:
        from pycocoevalcap.bleu import bleu_scorer
        from pycocoevalcap.cider import cider_scorer

        self._bleu, self._cider = bleu_scorer, cider_scorer
        self._garbage = garbage
        self._bleu_cooked: dict = {}
        self._cider_counts: dict = {}
        self._rouge_scores: dict = {}

    def _cider_cook(self, sentence: str):
        counts = self._cider_counts.get(sentence)
        if counts is None:
            counts = self._cider_counts[sentence] = self._cider.precook(sentence, 4)
        return counts

    def __call__(self, pairs: list[tuple[str, str]]) -> list[float]:
        bleu = self._bleu.BleuScorer(n=4)
        cider = self._cider.CiderScorer(n=4, sigma=6.0)
        rouge = []
        for pair in pairs:
            hyp, ref = pair
            if ref is None:  # a fresh random word, exactly like the official garbage reference
                ref = next(self._garbage)
                pair = (hyp, ref)
            cooked = self._bleu_cooked.get(pair)
            if cooked is None:
                crefs = self._bleu.cook_refs([ref])
                cooked = self._bleu_cooked[pair] = (crefs, self._bleu.cook_test(hyp, crefs))
            bleu.crefs.append(cooked[0])
            bleu.ctest.append(cooked[1])
            cider.crefs.append([self._cider_cook(ref)])
            cider.ctest.append(self._cider_cook(hyp))
            score = self._rouge_scores.get(pair)
            if score is None:
                score = self._rouge_scores[pair] = rouge_l(hyp, ref)
            rouge.append(score)
        b, _ = bleu.compute_score(option="closest", verbose=0)
        c, _ = cider.compute_score()
        return [*b, float(np.mean(np.array(rouge))), float(c)]


def _score_chunk(signatures: list) -> list[list[float]]:
    metrics = _CaptionMetrics(_garbage_words())
    return [metrics(list(sig)) for sig in signatures]


def _meteor_scores(meteor: MeteorSession, signatures: list, garbage_word: str) -> list[float]:
    """METEOR of each video's pairs: distinct pairs are scored once, then one EVAL per video."""
    distinct = sorted({(h, garbage_word if r is None else r) for sig in signatures for h, r in sig})
    stats = dict(zip(distinct, meteor.stats(distinct)))
    groups = [[stats[(h, garbage_word if r is None else r)] for h, r in sig] for sig in signatures]
    return meteor.corpus_scores(groups)


@contextlib.contextmanager
def _pool(workers: int | None):
    """Worker processes for the Python metrics; None when one process is all there is."""
    n = workers if workers is not None else min(4, os.cpu_count() or 1)
    if n <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) as pool:
        yield pool


def evaluate(predictions: Mapping[str, Segments], references: Sequence[Mapping[str, Segments]],
             tious: Sequence[float] = TIOUS, max_proposals: int = MAX_PROPOSALS,
             progress: bool = True, workers: int | None = None,
             meteor: MeteorSession | None = None) -> dict:
    """Scores of ``predictions`` against one or more reference files (fractions, not percent).

    Returns ``{metric: mean over thresholds, ..., "F1": ..., "per_tiou": {metric: [...]},
    "tious": [...], "n": number of reference videos}``.  Pass an open ``meteor`` session
    to share one METEOR process (its start-up is the largest fixed cost) between calls.
    """
    from tqdm import tqdm

    videos = sorted(set().union(*[r.keys() for r in references]))
    predictions = {v: Segments(p.timestamps[:max_proposals], p.sentences[:max_proposals])
                   for v, p in predictions.items() if v in videos}
    own_meteor = meteor is None
    if own_meteor:
        meteor = MeteorSession()  # the JVM starts while the rest is prepared
    try:
        matches = _matches(predictions, references, videos)
        raw = {s for p in predictions.values() for s in p.sentences}
        raw |= {s for ms in matches.values() for _, seg in ms for s in seg.sentences}
        raw = sorted(raw)
        tokens = dict(zip(raw, ptb_tokenize([remove_nonascii(s) for s in raw])))

        # A video's scores depend only on its list of tokenized pairs (a garbage
        # reference matches nothing, whatever its letters), and that list is often
        # the same at several thresholds: score each distinct list once.
        signatures = [{v: tuple((tokens[h], None if r is None else tokens[r])
                                for h, r in _pairs(predictions.get(v), matches[v], t))
                       for v in videos} for t in tious]
        distinct = list(dict.fromkeys(sig for per_video in signatures for sig in per_video.values() if sig))
        garbage = _garbage_words()
        meteor_result: dict = {}

        def run_meteor() -> None:
            try:
                meteor_result["scores"] = _meteor_scores(meteor, distinct, next(garbage))
            except BaseException as exc:
                meteor_result["error"] = exc

        # BLEU, ROUGE-L and CIDEr-D are pure Python: spread the videos over worker
        # processes (forked before the METEOR thread starts) while the JVM works.
        chunks = [distinct[i:i + 200] for i in range(0, len(distinct), 200)]
        other = {}
        with _pool(workers if len(chunks) > 1 else 1) as pool:
            futures = [pool.submit(_score_chunk, c) for c in chunks] if pool else []
            worker = threading.Thread(target=run_meteor, daemon=True)
            worker.start()
            bar = tqdm(total=len(distinct), desc="densevid", unit="video", disable=not progress,
                       file=sys.stderr, smoothing=0.1)
            for chunk, future in zip(chunks, futures) if pool else ((c, None) for c in chunks):
                scores = future.result() if future else _score_chunk(chunk)
                other.update(zip(chunk, scores))
                bar.update(len(chunk))
            bar.close()
        worker.join()
    finally:
        if own_meteor:
            meteor.close()
    if "error" in meteor_result:
        raise meteor_result["error"]
    meteor_by_sig = dict(zip(distinct, meteor_result["scores"]))

    per_tiou: dict[str, list[float]] = {m: [] for m in (*METRICS, "Precision", "Recall")}
    zeros = [0.0] * 7
    for t, per_video in zip(tious, signatures):
        rows = []
        for vid in videos:
            sig = per_video[vid]
            if not sig:
                rows.append(zeros)
                continue
            b1, b2, b3, b4, rouge, cider = other[sig]
            rows.append([b1, b2, b3, b4, meteor_by_sig[sig], rouge, cider])
        for m, value in zip(METRICS, np.mean(np.array(rows, dtype=float), axis=0)):
            per_tiou[m].append(float(value))
        loc = [localisation(matches[v], len(predictions[v].sentences) if v in predictions else 0, t)
               for v in videos]
        per_tiou["Precision"].append(sum(p for p, _ in loc) / len(loc))
        per_tiou["Recall"].append(sum(r for _, r in loc) / len(loc))

    result = {m: sum(v) / len(v) for m, v in per_tiou.items()}
    p, r = result["Precision"], result["Recall"]
    result["F1"] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    result["per_tiou"] = per_tiou
    result["tious"] = list(tious)
    result["n"] = len(videos)
    return result
