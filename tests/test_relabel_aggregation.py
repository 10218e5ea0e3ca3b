"""The aggregation interface: every registered model on simulated answers, the one-coin model
against crowd-kit's on a subsample of the real ReaL ratings, and the CLI choosing a model by name."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.errors import HarnessError
from relabel import real
from relabel.aggregation import AggregationResult, Answers, get_aggregator, list_aggregators
from relabel.ratings import Ratings


def _one_coin_answers(seed=0, n_q=2000, K=4, n_r=10, per_q=5):
    """Raters of known skill answering with the one-coin model."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, K, n_q)
    skill = np.linspace(0.35, 0.95, n_r)
    q = np.repeat(np.arange(n_q), per_q)
    r = np.concatenate([rng.choice(n_r, per_q, replace=False) for _ in range(n_q)])
    right = rng.random(len(q)) < skill[r]
    a = np.where(right, truth[q], (truth[q] + rng.integers(1, K, len(q))) % K)
    return Answers.from_codes(q, r, a, n_classes=K, n_answers=K), truth, skill


@pytest.mark.parametrize("name", list_aggregators())
def test_every_registered_model_fits_through_the_interface(name):
    answers, truth, _ = _one_coin_answers()
    fit = get_aggregator(name).fit(answers)
    assert isinstance(fit, AggregationResult)
    assert fit.posterior.shape == (answers.n_questions, 4) and np.allclose(fit.posterior.sum(1), 1)
    assert fit.confusion.shape == (answers.n_raters, 4, 4) and np.allclose(fit.confusion.sum(2), 1)
    assert fit.prior.shape == (4,) and np.isclose(fit.prior.sum(), 1)
    assert np.isfinite(fit.log_likelihood) and len(fit.objective) == max(fit.iterations, 1)
    assert np.all(np.diff(fit.objective) >= -1e-9 * abs(fit.log_likelihood))  # EM never falls
    assert np.mean(fit.posterior.argmax(1) == truth) > 0.85


def test_one_coin_recovers_skills_and_beats_the_vote():
    answers, truth, skill = _one_coin_answers(seed=3)
    fit = get_aggregator("one-coin").fit(answers)
    vote = get_aggregator("majority-vote").fit(answers)
    assert fit.converged
    assert np.abs(fit.confusion[:, 0, 0] - skill).max() < 0.05
    assert np.allclose(fit.confusion[:, 0, 1], (1 - fit.confusion[:, 0, 0]) / 3)
    assert np.mean(fit.posterior.argmax(1) == truth) > np.mean(vote.posterior.argmax(1) == truth) + 0.03
    # On one-coin answers the full model has 12 free cells per rater to the one-coin's 1: a
    # higher likelihood, but not by much.
    full = get_aggregator("dawid-skene").fit(answers)
    assert fit.log_likelihood < full.log_likelihood < fit.log_likelihood + 0.02 * abs(fit.log_likelihood)
    assert vote.log_likelihood < fit.log_likelihood


def test_registry_refusals():
    with pytest.raises(HarnessError, match="unknown aggregation model 'glad'; registered: dawid-skene, "
                                           "majority-vote, one-coin"):
        get_aggregator("glad")
    with pytest.raises(HarnessError, match="'majority-vote' takes no option.s. tol; it takes: none"):
        get_aggregator("majority-vote", tol=1e-3)
    binary = Answers.from_codes([0, 0, 1], [0, 1, 0], [0, 2, 1], n_classes=2, n_answers=3,
                                answer_votes=[[1, 0], [.5, .5], [0, 1]])
    with pytest.raises(HarnessError, match="one-coin model needs answers that are the classes"):
        get_aggregator("one-coin").fit(binary)


@pytest.fixture(scope="module")
def real_subsample(shared_data):
    """The raw ReaL answers on 800 images drawn at random (seed 0): ~30,000 answers, 3 answers."""
    ratings = real.load_real_data().ratings
    keys = ratings.questions["key"].unique()
    pick = set(np.random.default_rng(0).choice(keys, 800, replace=False))
    long = ratings.to_long()
    return Ratings.from_long(long[long["key"].isin(pick)], ratings.scale)


@pytest.mark.slow
def test_one_coin_agrees_with_crowd_kit_on_real_ratings(real_subsample):
    """Same model, same start, same number of iterations: crowd-kit's OneCoinDawidSkene and ours
    give the same posteriors (3-class model on the no/maybe/yes answers). crowd-kit reports the
    skills of one more M-step than the ones its last E-step used, so ours after n iterations are
    its after n − 1."""
    from crowdkit.aggregation import MajorityVote, OneCoinDawidSkene

    sub = real_subsample
    assert sub.n_answers > 20_000 and len(sub.raters) > 50
    long = pd.DataFrame({"task": sub.question, "worker": sub.rater, "label": sub.answer})
    n_q, n_r = len(sub.questions), len(sub.raters)

    def crowd_kit(n_iter):
        model = OneCoinDawidSkene(n_iter=n_iter, tol=-np.inf).fit(long)
        return (model.probas_.reindex(index=range(n_q), columns=[0, 1, 2]).to_numpy(),
                model.skills_.reindex(range(n_r)).to_numpy())

    theirs = {n: crowd_kit(n) for n in (0, 1, 2, 9, 10)}
    for n_iter in (1, 2, 10):
        ours = sub.fit("one-coin", n_classes=3, fixed_iterations=n_iter)
        assert np.abs(ours.posterior - theirs[n_iter][0]).max() < 1e-8, n_iter
        assert np.abs(ours.confusion[:, 1, 1] - theirs[n_iter - 1][1]).max() < 1e-8, n_iter
    vote = MajorityVote().fit(long).probas_.reindex(index=range(n_q), columns=[0, 1, 2]).to_numpy()
    assert np.abs(sub.fit("majority-vote", n_classes=3).posterior - vote).max() < 1e-12


def test_aggregate_command_chooses_the_model_by_name(real_subsample, tmp_path, capsys):
    from relabel.cli import main

    long = real_subsample.to_long()
    # Multi-class: each (image, proposed label) question becomes a sample whose classes are the answers.
    table = long.assign(key=long["key"] + "/" + long["label"].astype(str)).drop(columns="label")
    answers = tmp_path / "answers.csv"
    table.to_csv(answers, index=False)
    outs = {}
    for name in list_aggregators():
        out = tmp_path / f"{name}.csv"
        assert main(["aggregate", str(answers), "--multiclass", "--aggregator", name, "--out", str(out),
                     "--store", str(tmp_path / "store")]) == 0
        assert f"; {name}: " in capsys.readouterr().out
        outs[name] = pd.read_csv(out)
    expected = real_subsample.fit("one-coin", n_classes=3).posterior
    keyed = outs["one-coin"].set_index("key").loc[table["key"].drop_duplicates(), ["p_maybe", "p_no", "p_yes"]]
    assert np.abs(keyed.to_numpy()[:, [1, 0, 2]] - expected).max() < 1e-5
    assert (outs["one-coin"]["aggregated"] != outs["majority-vote"]["aggregated"]).any()
    capsys.readouterr()
    assert main(["aggregate", str(answers), "--multiclass", "--aggregator", "majority-vote", "--tol", "0.01"]) == 2
    assert "'majority-vote' takes no option(s) tol" in capsys.readouterr().err
    label_questions = tmp_path / "label_questions.csv"
    long.to_csv(label_questions, index=False)
    assert main(["aggregate", str(label_questions), "--aggregator", "one-coin"]) == 2  # 2 classes × 3 answers
    assert "one-coin model needs answers that are the classes" in capsys.readouterr().err
