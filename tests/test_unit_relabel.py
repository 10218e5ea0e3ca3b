"""relabel's helpers on hand-made inputs with hand-counted answers: the oracle, label proposals and
rating tasks, majority vote and the answer codes; plus properties on random answers (hypothesis)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from relabel.aggregation import Answers, check_codes, get_aggregator, list_aggregators
from relabel.oracle import (ambiguous_classes, confused_pairs, duplicate_pairs, oracle_classes, oracle_per_image)
from relabel.proposals import proposal_recall, propose, select_models, split_tasks

PROPS = settings(max_examples=30, deadline=None, database=None, derandomize=True)

# five images, classes 0-3: ReaL label lists and original labels
REAL = [[0, 1], [1], [], [0, 2, 3], [2]]
ORIGINAL = np.array([0, 1, 2, 3, 0])


# ----- the oracle -------------------------------------------------------------------------
def test_oracle_per_image_by_hand():
    acc = oracle_per_image(REAL, ORIGINAL)
    assert acc[[0, 1, 3, 4]] == pytest.approx([1 / 2, 1.0, 1 / 3, 0.0]) and np.isnan(acc[2])


def test_oracle_classes_by_hand():
    frame = oracle_classes(REAL, ORIGINAL, class_names=["a", "b", "c", "d", "e"], n_classes=5)
    assert list(frame.columns) == ["class", "name", "images", "oracle_accuracy"]
    assert list(frame["images"]) == [2, 1, 0, 1, 0]  # image 2 (class 2) has no ReaL label: left out
    assert frame["oracle_accuracy"][[0, 1, 3]].tolist() == pytest.approx([(1 / 2 + 0) / 2, 1.0, 1 / 3])
    assert frame["oracle_accuracy"][[2, 4]].isna().all()
    assert list(frame["name"]) == ["a", "b", "c", "d", "e"]


def test_ambiguous_classes_are_below_the_threshold_worst_first():
    frame = oracle_classes(REAL, ORIGINAL, n_classes=5)
    assert list(ambiguous_classes(frame, 0.9)["class"]) == [0, 3]  # 0.25, 0.333; class 1 (1.0) is not
    assert list(ambiguous_classes(frame, 0.3)["class"]) == [0]
    assert list(ambiguous_classes(frame, 1.0)["class"]) == [0, 3]  # strictly below
    with pytest.raises(HarnessError, match="threshold must be in \\(0, 1\\], got 0"):
        ambiguous_classes(frame, 0)


def test_confused_pairs_by_hand():
    frame = confused_pairs(REAL, ORIGINAL, classes=[0, 3], top=None)
    # class 0: image 0 gives 1/2 to label 1; image 4 (labels [2]) gives 1 to label 2; 2 images
    # class 3: image 3 gives 1/3 to each of 0 and 2
    assert frame.to_dict("list") == {"class": [0, 0, 3, 3], "other": [2, 1, 0, 2],
                                     "oracle_loss": pytest.approx([1 / 2, 1 / 4, 1 / 3, 1 / 3]),
                                     "images": [1, 1, 1, 1]}
    assert list(confused_pairs(REAL, ORIGINAL, classes=[0, 3], top=1)["other"]) == [2, 0]
    # the oracle's accuracy plus its losses is 1 for every class
    acc = oracle_classes(REAL, ORIGINAL, n_classes=4).set_index("class")["oracle_accuracy"]
    loss = confused_pairs(REAL, ORIGINAL, classes=[0, 1, 3], top=None).groupby("class")["oracle_loss"].sum()
    for c in (0, 3):
        assert acc[c] + loss[c] == pytest.approx(1.0)
    assert 1 not in loss.index and acc[1] == 1.0


def test_duplicate_pairs_go_both_ways():
    real = [[0, 1], [0, 1], [1, 0], [0, 2], [2]]
    original = np.array([0, 0, 1, 0, 2])
    frame = duplicate_pairs(real, original, min_share=0.1, n_classes=3)
    # 0 -> 1: images 0, 1 give 1/2 each of 3 class-0 images = 1/3; 1 -> 0: 1/2; 0 -> 2: 1/6, 2 -> 0: 0
    assert frame[["a", "b"]].values.tolist() == [[0, 1]]
    row = frame.iloc[0]
    assert (row.a_to_b, row.b_to_a, row.mutual_share) == pytest.approx((1 / 3, 1 / 2, 1 / 3))
    assert (row.a_images, row.b_images) == (2, 1)
    assert duplicate_pairs(real, original, min_share=0.4, n_classes=3).empty


def test_oracle_refuses_mismatched_lengths():
    with pytest.raises(HarnessError, match="5 ReaL label lists but 4 original labels"):
        oracle_per_image(REAL, ORIGINAL[:4])


# ----- proposals and tasks ------------------------------------------------------------------
MODELS = {"a": {"k1": [3, 1, 2], "k2": [5, 6, 7]},
          "b": {"k1": [1, 3, 9], "k2": [6, 5, 8]},
          "c": {"k1": [4, 1, 8]}}


def test_propose_by_hand():
    out = propose(MODELS, original={"k1": 0, "k3": 2}, top_k=2, min_models=2)
    # k1: top-2 votes 3:2, 1:3, 4:1 -> {1, 3} + top-1s {3, 1, 4} + original 0; k2: 5:2, 6:2 + 5, 6
    assert out == {"k1": [0, 1, 3, 4], "k2": [5, 6], "k3": [2]}
    assert propose(MODELS, top_k=3, min_models=3, add_top1=False) == {"k1": [1], "k2": []}
    assert propose(MODELS, original={"k1": 0}, add_original=False, top_k=1, min_models=2)["k1"] == [1, 3, 4]
    assert propose(MODELS, original={"k1": 0, "k3": 2}, add_original=False, top_k=1)["k1"] == [1, 3, 4]
    assert "k3" not in propose(MODELS, original={"k3": 2}, add_original=False)
    with pytest.raises(HarnessError, match="top_k and min_models must be >= 1, got 0 and 2"):
        propose(MODELS, top_k=0)


def test_proposal_recall_by_hand():
    stats = proposal_recall({"k1": [1, 3], "k2": [5], "k9": [1, 2, 3, 4]}, {"k1": [1, 2], "k2": [5], "k3": [7]})
    assert stats == {"recall": 2 / 4, "reference_labels": 4, "images": 3, "mean_proposals": 1.0,
                     "mean_proposals_all": pytest.approx(7 / 3)}
    assert np.isnan(proposal_recall({}, {})["recall"])


def test_select_models_is_greedy_on_recall_then_fewer_proposals():
    reference = {"k1": [1, 4], "k2": [5]}
    chosen, steps = select_models(MODELS, reference, target_recall=1.0, top_k=1, min_models=1)
    # alone: a proposes k1 [3], k2 [5] (1/3); b [1], [6] (1/3); c [4] (1/3) with 1 proposal in all: c first
    # (fewest proposals per image, 0.5); then a or b adds one more hit; a's 5 and b's 1 tie: a, b in name order
    assert chosen[0] == "c" and steps["recall"].is_monotonic_increasing and steps["step"].tolist() == [1, 2, 3]
    assert steps["recall"].iloc[-1] == 1.0 and set(chosen) == {"a", "b", "c"}
    assert list(steps.columns) == ["step", "added", "recall", "reference_labels", "images", "mean_proposals"]
    with pytest.raises(HarnessError, match="target recall must be in \\(0, 1\\], got 1.5"):
        select_models(MODELS, reference, target_recall=1.5)


def test_split_tasks_by_hand():
    tasks = split_tasks({"b": [1, 2, 3, 4, 5], "a": [7]}, max_labels=2)
    assert tasks.to_dict("list") == {"task_id": ["a#0", "b#0", "b#1", "b#2"], "key": ["a", "b", "b", "b"],
                                     "labels": [[7], [1, 2], [3, 4], [5]]}
    assert split_tasks({"a": []}).empty
    with pytest.raises(HarnessError, match="max_labels must be >= 1, got 0"):
        split_tasks({"a": [1]}, max_labels=0)


# ----- answers and majority vote ----------------------------------------------------------
def test_majority_vote_by_hand():
    # question 0: raters say 1, 1, 0; question 1: 2, 2; question 2: 0, 1 (a tie)
    answers = Answers.from_codes([0, 0, 0, 1, 1, 2, 2], [0, 1, 2, 0, 1, 1, 2], [1, 1, 0, 2, 2, 0, 1],
                                 n_classes=3, n_answers=3)
    result = get_aggregator("majority-vote").fit(answers)
    assert result.posterior == pytest.approx(np.array([[1 / 3, 2 / 3, 0], [0, 0, 1], [0.5, 0.5, 0]]))
    assert result.prior == pytest.approx(np.array([(1 / 3 + 0.5) / 3, (2 / 3 + 0.5) / 3, 1 / 3]))
    assert result.confusion.shape == (3, 3, 3) and np.allclose(result.confusion.sum(2), 1)
    assert (result.iterations, result.converged, len(result.objective)) == (0, True, 1)


@PROPS
@given(data=st.data(), n_classes=st.integers(2, 5))
def test_majority_vote_is_the_vote_share_of_each_question(data, n_classes):
    n = data.draw(st.integers(1, 40))
    question = np.array(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)))
    rater = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    answer = np.array(data.draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n)))
    answers = Answers.from_codes(question, rater, answer, n_classes=n_classes, n_answers=n_classes, n_questions=6)
    post = get_aggregator("majority-vote").fit(answers).posterior
    counts = np.zeros((6, n_classes))
    np.add.at(counts, (question, answer), 1)
    expected = np.where(counts.sum(1, keepdims=True) > 0, counts / np.maximum(counts.sum(1, keepdims=True), 1),
                        1 / n_classes)
    assert post == pytest.approx(expected)
    # permuting the answers' order changes nothing
    order = np.array(data.draw(st.permutations(range(n))))
    again = Answers.from_codes(question[order], rater[order], answer[order], n_classes=n_classes,
                               n_answers=n_classes, n_questions=6)
    assert get_aggregator("majority-vote").fit(again).posterior == pytest.approx(post)


def test_registry_and_codes_refuse_bad_input():
    assert list_aggregators() == sorted(list_aggregators()) and "majority-vote" in list_aggregators()
    with pytest.raises(HarnessError, match="unknown aggregation model 'vote'; registered: "):
        get_aggregator("vote")
    with pytest.raises(HarnessError, match="'majority-vote' takes no option\\(s\\) max_iter; it takes: none"):
        get_aggregator("majority-vote", max_iter=3)
    assert check_codes([0, 2, 1], "rater", 3).tolist() == [0, 2, 1]
    with pytest.raises(HarnessError, match="rater has code 3 but only 3 are declared"):
        check_codes([0, 3], "rater", 3)
    with pytest.raises(HarnessError, match="rater has negative codes \\(first at position 1\\)"):
        check_codes([0, -1], "rater", None)
    with pytest.raises(HarnessError, match="must be a 1-d array of integer codes"):
        check_codes([0.5], "rater", None)
    with pytest.raises(HarnessError, match="equal lengths, got 2, 1, 1"):
        Answers.from_codes([0, 1], [0], [1], n_classes=2, n_answers=2)
    with pytest.raises(HarnessError, match="no answers to aggregate"):
        Answers.from_codes(np.array([], int), np.array([], int), np.array([], int), n_classes=2, n_answers=2)
    with pytest.raises(HarnessError, match="n_classes must be at least 2, got 1"):
        Answers.from_codes([0], [0], [0], n_classes=1, n_answers=1)
    with pytest.raises(HarnessError, match="give answer_votes"):
        Answers.from_codes([0], [0], [0], n_classes=2, n_answers=3).majority_posterior()
    votes = Answers.from_codes([0], [0], [2], n_classes=2, n_answers=3, answer_votes=[[1, 0], [0, 1], [.5, .5]])
    assert votes.majority_posterior()[:, 0] == pytest.approx([0.5, 0.5])


# ----- ReaL: rater quality on golden questions -----------------------------------------------
def onehot(answers: list[list[str | None]]) -> np.ndarray:
    """raters x questions x (no, maybe, yes), one-hot where answered."""
    scale = ("no", "maybe", "yes")
    out = np.zeros((len(answers), len(answers[0]), 3), dtype=np.int64)
    for r, row in enumerate(answers):
        for q, a in enumerate(row):
            if a is not None:
                out[r, q, scale.index(a)] = 1
    return out


def test_rater_quality_by_hand():
    from relabel.ratings import Ratings
    from relabel.real import RealData, expert_truth, rater_quality

    info = np.array([["ILSVRC2012_val_00000001.JPEG", 1], ["ILSVRC2012_val_00000002.JPEG", 2]], dtype=object)
    golden = Ratings.from_onehot(onehot([["yes", "no"], ["yes", "no"], ["no", "yes"]]), info, ["e1", "e2", "e3"])
    assert expert_truth(golden).tolist() == [1, 0]
    raters_golden = Ratings.from_onehot(onehot([["yes", "maybe"], ["no", "yes"]]), info, ["r1", "r2"])
    main_info = np.array([[f"ILSVRC2012_val_0000000{i}.JPEG", i] for i in (1, 2, 3)], dtype=object)
    ratings = Ratings.from_onehot(onehot([["yes", "no", "maybe"], [None, "yes", None], [None, None, None]]),
                                  main_info, ["r1", "r2", "r3"])
    data = RealData(ratings, golden, raters_golden, np.zeros(3), [[1], [2], [3]], np.array([1, 2, 3]))
    table = rater_quality(data)
    # r1: yes on the expert yes, maybe on the expert no (right: "not yes"); r2: wrong twice, never maybe
    assert table.to_dict("list") == {
        "rater": ["r1", "r2"], "golden_answers": [2, 2], "accuracy": [1.0, 0.0], "decisive_accuracy": [1.0, 0.0],
        "maybe_rate": [0.5, 0.0], "yes_precision": [1.0, 0.0], "yes_recall": [1.0, 0.0],
        "answers_in_raters_npz": [3, 1]}


def test_label_lists_and_the_comparison_with_the_release_by_hand():
    from relabel.ratings import Ratings
    from relabel.real import N_VAL, RealData, Rebuild, compare_with_release, label_lists, parse_ranges, val_file_name

    questions = pd.DataFrame({"key": [val_file_name(0), val_file_name(0), val_file_name(1)], "label": [1, 2, 5]})
    p_yes = np.array([0.9, 0.2, 0.5])
    given = [[7]] * N_VAL
    labels = label_lists(questions, p_yes, 0.5, given)
    assert labels[0] == [1] and labels[1] == [5] and labels[2] == [7]  # p >= threshold; unrated images keep theirs
    assert label_lists(questions, p_yes, 0.95, given)[:2] == [[], []]  # a rated image with no yes is dropped
    with pytest.raises(HarnessError, match="must cover 50000 images, got 3"):
        label_lists(questions, p_yes, 0.5, given[:3])
    released = [[1, 2], []] + [[7]] * (N_VAL - 2)
    empty = np.array([], dtype=np.int64)
    ratings = Ratings(questions, np.array(["r"]), ("no", "maybe", "yes"), empty, empty, empty)
    rebuild = Rebuild(ratings, None, p_yes, 0.5, labels)
    data = RealData(ratings, None, None, np.array([0.8, 0.7, 0.1]), released, np.zeros(N_VAL, int))
    # released decisions: label 1 and 2 of image 0 yes, label 5 of image 1 no; ours: yes, no, yes
    assert compare_with_release(rebuild, data) == {
        "questions": 3, "equal_decisions": pytest.approx(1 / 3),
        "pearson_r": pytest.approx(np.corrcoef([0.9, 0.2, 0.5], [0.8, 0.7, 0.1])[0, 1]),
        "max_abs_posterior_difference": pytest.approx(0.5), "yes_both": 1, "yes_only_rebuilt": 1,
        "yes_only_released": 1, "images_with_equal_label_sets": N_VAL - 2, "rated_images": 2,
        "rated_images_with_equal_label_sets": 0}
    assert parse_ranges("0-3,7, 9-10") == frozenset({0, 1, 2, 3, 7, 9, 10})
    with pytest.raises(HarnessError, match="class ranges 'a-b' are not like"):
        parse_ranges("a-b")


# ----- ratings tables ---------------------------------------------------------------------------
LONG = pd.DataFrame({"rater": ["r1", " r1", "r2", "r2", "r3"],
                     "key": ["k1", "k2", "k1 ", "k2", "k1"],
                     "label": ["3", "4", "3.0", "4", " 3"],
                     "answer": ["yes", "no", "maybe", "yes ", "yes"]})


def test_ratings_from_a_long_table_by_hand():
    from relabel.ratings import YES_NO_MAYBE, Ratings

    r = Ratings.from_long(LONG, YES_NO_MAYBE)
    # "k1 " and " 3" and "3.0" are the same question (k1, 3); " r1" is r1
    assert r.questions.to_dict("list") == {"key": ["k1", "k2"], "label": [3, 4]}
    assert list(r.raters) == ["r1", "r2", "r3"] and r.scale == YES_NO_MAYBE
    assert (r.question.tolist(), r.rater.tolist(), r.answer.tolist()) == ([0, 1, 0, 1, 0], [0, 0, 1, 1, 2],
                                                                           [2, 0, 1, 2, 2])
    assert r.majority().tolist() == [[0, 1, 2], [1, 0, 1]]  # per question: no, maybe, yes
    back = r.to_long()
    assert back.to_dict("list") == {"rater": ["r1", "r1", "r2", "r2", "r3"], "key": ["k1", "k2", "k1", "k2", "k1"],
                                    "label": [3, 4, 3, 4, 3], "answer": ["yes", "no", "maybe", "yes", "yes"]}
    answers = r.answers()
    assert (answers.n_classes, answers.n_answers, answers.n_questions, answers.n_raters) == (2, 3, 2, 3)
    assert answers.majority_posterior()[:, 0] == pytest.approx([0.5 / 3, 2.5 / 3])  # maybe: half each
    assert r.rater_codes(["r3", "x", "r1"]).tolist() == [2, -1, 0]


def test_a_virtual_rater_answers_its_classes_only():
    from relabel.ratings import YES_NO_MAYBE, Ratings, VirtualRater

    r = Ratings.from_long(LONG, YES_NO_MAYBE)
    v = VirtualRater("original", {"k1": 3, "k2": 9}, classes=frozenset({3, 4}))
    assert [x.tolist() for x in v.answers(r.questions)] == [[0, 1], ["yes", "no"]]
    assert [x.tolist() for x in VirtualRater("o", {"k1": 3}, frozenset({4})).answers(r.questions)] == [[], []]
    plus = r.with_virtual(v)
    assert list(plus.raters) == ["r1", "r2", "r3", "original"]
    assert plus.majority().tolist() == [[0, 1, 3], [2, 0, 1]]
    assert plus.question.tolist() == sorted(plus.question.tolist())
    with pytest.raises(HarnessError, match="virtual rater name 'r1' is already a rater id"):
        r.with_virtual(VirtualRater("r1", {}))
    with pytest.raises(HarnessError, match="answers 'Y'/'N', which are not on the scale"):
        r.with_virtual(VirtualRater("v", {}, yes="Y", no="N"))


def test_bad_long_tables_list_every_bad_row():
    from relabel.ratings import YES_NO_MAYBE, Ratings

    bad = pd.DataFrame({"rater": ["r1", "", "r1", "r2", "r1"], "key": ["k1", "k1", "k1", " ", "k2"],
                        "label": ["3", "3", "3.0", "3", "3.5"], "answer": ["yes", "no", "no", "sure", "no"]})
    with pytest.raises(HarnessError) as err:
        Ratings.from_long(bad, YES_NO_MAYBE, where="answers.csv")
    text = str(err.value)
    assert text.startswith("answers.csv: 4 bad row(s), nothing was written:")
    for line, why in ((3, "empty rater"), (5, "empty sample key"), (5, "answer 'sure' is not one of"),
                      (6, "label '3.5' is not an integer class id"),
                      (4, "duplicate vote (same rater and question as an earlier row)")):
        assert f"line {line}: {why}" in text, (line, why)
    with pytest.raises(HarnessError, match=r"lack the column\(s\) \['label'\]"):
        Ratings.from_long(bad.drop(columns="label"), YES_NO_MAYBE)


def small_real_data():
    """The hand-made ReaL data of test_rater_quality_by_hand."""
    from relabel.ratings import Ratings
    from relabel.real import RealData

    info = np.array([["ILSVRC2012_val_00000001.JPEG", 1], ["ILSVRC2012_val_00000002.JPEG", 2]], dtype=object)
    golden = Ratings.from_onehot(onehot([["yes", "no"], ["yes", "no"], ["no", "yes"]]), info, ["e1", "e2", "e3"])
    raters_golden = Ratings.from_onehot(onehot([["yes", "maybe"], ["no", "yes"]]), info, ["r1", "r2"])
    main_info = np.array([[f"ILSVRC2012_val_0000000{i}.JPEG", i] for i in (3, 1, 2)], dtype=object)
    ratings = Ratings.from_onehot(onehot([["yes", "no", "maybe"], [None, "yes", None], [None, None, None]]),
                                  main_info, ["r1", "r2", "r3"])
    return RealData(ratings, golden, raters_golden, np.zeros(3), [[1], [2], [3]], np.array([1, 7, 3]))


def test_golden_confusion_and_the_maybe_rules_by_hand():
    from relabel.real import (expert_truth, golden_confusion, golden_precision_recall, golden_question_index,
                              golden_virtual_confusion, recode_maybe, val_indices)

    data = small_real_data()
    truth = expert_truth(data.golden)  # [1, 0]
    confusion, has = golden_confusion(data.raters_golden, truth, ["r2", "x", "r1"], smoothing=1.0)
    # r1: truth 1 -> yes, truth 0 -> maybe; r2: truth 1 -> no, truth 0 -> yes; each count + 1, rows normalised
    r1 = np.array([[1, 2, 1], [1, 1, 2]]) / 4  # rows: truth no (0), yes (1); columns: no, maybe, yes
    r2 = np.array([[1, 1, 2], [2, 1, 1]]) / 4
    assert confusion[0] == pytest.approx(r2) and confusion[2] == pytest.approx(r1)
    assert confusion[1] == pytest.approx((r1 + r2) / 2) and has.tolist() == [True, False, True]
    # the original label (image 0: 1, image 1: 7) answers golden (image 0, 1) yes, (image 1, 2) no
    virtual = golden_virtual_confusion(data, truth, smoothing=0.0)
    assert virtual == pytest.approx(np.array([[1, 0, 0], [0, 0, 1]]))
    assert recode_maybe(data, "maybe") is data
    assert recode_maybe(data, "no").ratings.majority().tolist() == [[0, 0, 1], [1, 0, 1], [1, 0, 0]]
    assert recode_maybe(data, "yes").raters_golden.majority().tolist() == [[1, 0, 1], [0, 0, 2]]
    dropped = recode_maybe(data, "drop")
    assert dropped.ratings.n_answers == 3 and dropped.raters_golden.n_answers == 3
    assert dropped.golden is data.golden  # the experts are the reference: never recoded
    with pytest.raises(HarnessError, match="unknown maybe handling 'often'"):
        recode_maybe(data, "often")
    assert golden_question_index(data.ratings, data.golden).tolist() == [1, 2]
    # yes-decisions per rated question (image 2/3, 0/1, 1/2): golden questions are rows 1 and 2
    result = golden_precision_recall(np.array([True, True, True]), data)
    assert result == {"golden_questions": 2, "expert_yes": 1, "decided_yes": 2, "true_positives": 1,
                      "precision": 0.5, "recall": 1.0, "accuracy": 0.5}
    assert val_indices(["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00050000.JPEG"]).tolist() == [0, 49999]
    with pytest.raises(HarnessError, match="'cat.jpg' is not an ILSVRC2012 validation file name"):
        val_indices(["cat.jpg"])


def test_the_aggregate_command_on_yes_no_maybe_answers(tmp_path, capsys):
    """``relabel aggregate`` on label questions: p_yes per (key, label) is the vote share (maybe half a
    vote) under majority vote, and the registered label set keeps the labels that reach the threshold."""
    from harness.store import Store
    from relabel.cli import main

    answers = tmp_path / "answers.csv"
    k1, k2 = "ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"
    pd.DataFrame({"rater": ["a", "b", "c", "a", "b", "a", "b"],
                  "key": [k1, k1, k1, k1, k1, k2, k2],
                  "label": [3, 3, 3, 4, 4, 5, 5],
                  "answer": ["yes", "yes", "maybe", "no", "maybe", "no", "no"]}).to_csv(answers, index=False)
    out = tmp_path / "out.csv"
    store = tmp_path / "store"
    assert main(["--store", str(store), "aggregate", str(answers), "--aggregator", "majority-vote", "--out", str(out),
                 "--threshold", "0.5", "--register", "mine", "--dataset", "imagenet-val"]) == 0
    assert "7 answers, 3 raters, 3 questions; majority-vote" in capsys.readouterr().out
    table = pd.read_csv(out)
    assert table[["key", "label"]].values.tolist() == [[k1, 3], [k1, 4], [k2, 5]]
    assert table["p_yes"].tolist() == pytest.approx([2.5 / 3, 0.5 / 2, 0.0])
    labels = Store(store).sql("SELECT key, labels FROM labels WHERE label_set = 'mine' ORDER BY key")
    assert [list(v) for v in labels["labels"]] == [[3], []]


def test_multi_class_answers_must_name_classes_of_the_dataset(tmp_path, capsys):
    from relabel.cli import main

    answers = tmp_path / "answers.csv"
    pd.DataFrame({"rater": ["a", "b"], "key": ["0", "1"], "answer": ["3", "12"]}).to_csv(answers, index=False)
    assert main(["--store", str(tmp_path / "s"), "aggregate", str(answers), "--multiclass", "--register", "x",
                 "--dataset", "cifar10-test"]) == 2
    assert "must name distinct classes of dataset cifar10-test (ids 0-9); out of range: ['12']" in \
        capsys.readouterr().err
