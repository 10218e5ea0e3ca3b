"""relabel.suspicion and relabel.error_model helpers on hand-made inputs: reference outcomes, the kinds of a
suspect, ranks within a kind (ties by key), smoothed rates per code; ranks against pandas on random input."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relabel.error_model import rate_by_key
from relabel.suspicion import (HOLDS, MULTI, OUTCOMES, WRONG, kinds_from_probabilities, kinds_from_votes, logit,
                               pair_codes, rank_within_kind, reference_outcomes)


def test_reference_outcomes_by_hand():
    out = reference_outcomes(np.array([3, 3, 3, 3, 3]), [[3], [3, 4], [4], [], None])
    assert out.tolist() == [HOLDS, MULTI, WRONG, -1, -1]


def test_kinds_by_hand():
    disputed = np.array([True, True, True, True, False])
    kinds = kinds_from_votes(disputed, votes_given=np.array([0, 1, 2, 2, 0]), votes_likely=np.array([3, 2, 2, 1, 5]))
    assert kinds.tolist() == [OUTCOMES[WRONG], OUTCOMES[MULTI], OUTCOMES[HOLDS], OUTCOMES[HOLDS], "none"]
    proba = np.array([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8], [0.9, 0.05, 0.05]])
    assert kinds_from_probabilities(np.array([True, True, True, False]), proba).tolist() == [
        OUTCOMES[MULTI], OUTCOMES[WRONG], OUTCOMES[HOLDS], "none"]


def test_ranks_within_a_kind_strongest_first_ties_by_key():
    kind = np.array(["a", "b", "a", "a", "b"], dtype=object)
    strength = np.array([0.5, 0.9, 0.7, 0.5, 0.9])
    keys = np.array(["k3", "k9", "k1", "k2", "k5"])
    assert rank_within_kind(kind, strength, keys).tolist() == [3, 2, 1, 2, 1]


@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(data=st.data())
def test_ranks_within_a_kind_are_pandas_ranks(data):
    n = data.draw(st.integers(1, 25))
    kind = np.array(data.draw(st.lists(st.sampled_from(["x", "y", "none"]), min_size=n, max_size=n)), dtype=object)
    strength = np.array(data.draw(st.lists(st.sampled_from([0.1, 0.5, 0.9]), min_size=n, max_size=n)))
    keys = np.array([f"k{i:03d}" for i in data.draw(st.permutations(range(n)))])
    frame = pd.DataFrame({"kind": kind, "strength": strength, "key": keys}).sort_values(
        ["kind", "strength", "key"], ascending=[True, False, True])
    frame["rank"] = frame.groupby("kind").cumcount() + 1
    assert rank_within_kind(kind, strength, keys).tolist() == frame.sort_index()["rank"].tolist()


def test_smoothed_rates_per_code_by_hand():
    codes = np.array([0, 0, 1, 1, 1, 2])
    hit = np.array([True, False, True, True, False, True])
    train = np.array([True, True, True, True, False, False])
    # base rate on training samples 3/4; code 0: (1 + 2 * .75) / (2 + 2); code 1: (2 + 1.5) / 4; code 2: (0 + 1.5) / 2
    assert rate_by_key(codes, hit, train, 2.0).tolist() == pytest.approx(
        [2.5 / 4, 2.5 / 4, 3.5 / 4, 3.5 / 4, 3.5 / 4, 0.75])
    assert rate_by_key(codes, hit, np.zeros(6, bool), 1.0).tolist() == pytest.approx([0.5] * 6)


def test_pair_codes_and_logit():
    assert pair_codes(np.array([0, 2, 3]), np.array([1, -1, 3]), 10).tolist() == [1, 20, 33]
    assert logit(np.array([0.5, 0.0, 1.0])) == pytest.approx([0.0, np.log(1e-9 / (1 - 1e-9)), np.log((1 - 1e-9) / 1e-9)])
