"""ActivityNet helpers on random inputs against independent implementations: the two tIoU arithmetics
and a hand formula, VOC interpolated AP against a loop over recall levels, the bit-parallel LCS against
textbook dynamic programming, ROUGE-L against pycocoevalcap, keys grouped against pandas."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocoevalcap.rouge.rouge import Rouge

from harness.activitynet.densevid import lcs_length, localisation, official_tiou, rouge_l, Segments
from harness.activitynet.temporal import interpolated_ap, rows_by_key, segment_iou

PROPS = settings(max_examples=60, deadline=None, database=None, derandomize=True)
times = st.integers(0, 400).map(lambda v: v / 4)  # quarter seconds: segments meet exactly, as in real files


@st.composite
def segments(draw, min_size=1, max_size=8):
    n = draw(st.integers(min_size, max_size))
    out = []
    for _ in range(n):
        a, b = draw(times), draw(times)
        if a == b:
            b = a + 0.25
        out.append(sorted((a, b)))
    return np.array(out, dtype=float)


@PROPS
@given(target=segments(1, 1), candidates=segments())
def test_segment_iou_is_the_hand_formula_and_the_captions_tools(target, candidates):
    t = target[0]
    iou = segment_iou(t, candidates)
    for (s, e), v in zip(candidates, iou):
        inter = max(0.0, min(e, t[1]) - max(s, t[0]))
        assert v == pytest.approx(inter / ((e - s) + (t[1] - t[0]) - inter), abs=1e-12)
    assert official_tiou(candidates, target)[:, 0] == pytest.approx(iou, abs=1e-6)
    assert ((0 <= iou) & (iou <= 1)).all()
    assert segment_iou(t, target)[0] == 1.0


@PROPS
@given(hits=st.lists(st.booleans(), min_size=1, max_size=30), n_gt=st.integers(1, 40))
def test_interpolated_ap_is_the_voc_loop(hits, n_gt):
    tp = np.cumsum(hits)
    fp = np.cumsum(np.logical_not(hits))
    recall = tp / max(n_gt, int(tp[-1]))
    precision = tp / (tp + fp)
    # VOC 2011: sum over the points where recall rises of the rise times the best precision at or beyond it
    expected, previous = 0.0, 0.0
    for i in range(len(recall)):
        if recall[i] != previous:
            expected += (recall[i] - previous) * precision[i:].max()
            previous = recall[i]
    assert interpolated_ap(precision, recall) == pytest.approx(expected, abs=1e-12)


def test_interpolated_ap_by_hand():
    # hits at ranks 1 and 3 of 2 ground truths: precision 1, 1/2, 2/3; recall .5, .5, 1
    assert interpolated_ap(np.array([1, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert interpolated_ap(np.array([0.0]), np.array([0.0])) == 0.0


def dp_lcs(a, b) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


words = st.lists(st.sampled_from(["a", "man", "is", "the", "dog", "runs", "on", "."]), min_size=1, max_size=25)


@PROPS
@given(a=words, b=words)
def test_lcs_is_dynamic_programmings_and_rouge_l_is_pycocoevalcaps(a, b):
    assert lcs_length(a, b) == dp_lcs(a, b) == lcs_length(b, a)
    candidate, reference = " ".join(a), " ".join(b)
    assert rouge_l(candidate, reference) == pytest.approx(Rouge().calc_score([candidate], [reference]), abs=1e-12)


def test_localisation_is_strictly_above_the_threshold_and_best_over_reference_files():
    seg = Segments(np.array([[0.0, 10.0], [20.0, 30.0]]), ("a", "b"))
    one = (np.array([[0.5, 0.0], [0.0, 0.3], [0.0, 0.0]]), seg)  # 3 predictions x 2 references
    other = (np.array([[0.9, 0.0], [0.0, 0.0], [0.0, 0.0]]), seg)
    assert localisation([one], 3, 0.3) == (1 / 3, 1 / 2)  # 0.3 is not above 0.3
    assert localisation([one], 3, 0.29) == (2 / 3, 1.0)
    assert localisation([one, other], 3, 0.5) == (1 / 3, 1 / 2)  # only the other file's 0.9 counts
    assert localisation([one], 0, 0.1) == (0.0, 0.0)


@PROPS
@given(keys=st.lists(st.sampled_from(["v1", "v2", "v3", "v10"]), max_size=30))
def test_rows_by_key_is_pandas_groupby_in_first_appearance_order(keys):
    grouped = rows_by_key(keys)
    expected = pd.Series(range(len(keys)), dtype=int).groupby(pd.Series(keys, dtype=object), sort=False).apply(list)
    assert list(grouped) == list(dict.fromkeys(keys))
    assert {k: list(v) for k, v in grouped.items()} == expected.to_dict()
