"""ActivityNet Captions: densevid_eval numbers on real data (real Java METEOR and PTB tokenizer)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from harness.activitynet import densevid, formats
from harness.activitynet.cocotext import MeteorSession, ptb_tokenize
from harness.activitynet.suites import ANET_CAPTIONS
from harness.errors import HarnessError

CAPTION_METRICS = densevid.METRICS


@pytest.fixture(scope="module")
def meteor():
    with MeteorSession() as session:
        yield session


def seg(*items) -> densevid.Segments:
    """Segments from (start, end, sentence) triples."""
    return densevid.Segments(np.array([[s, e] for s, e, _ in items], dtype=float).reshape(-1, 2),
                             tuple(t for _, _, t in items))


def real_subset(shared_data, split: int, n: int):
    """The first n videos (sorted ids) that MDVC predicted, with their val_<split> ground truth."""
    preds, _ = formats.read_caption_submission(shared_data / f"activitynet/mdvc_results_val_{split}_e30.json")
    gt = formats.read_caption_ground_truth(shared_data / f"activitynet/captions_val_{split}.json")
    keys = sorted(set(preds["key"]))[:n]
    to_segments = lambda f: {k: seg(*zip(g["start"], g["end"], g["sentence"]))
                             for k, g in f[f["key"].isin(keys)].groupby("key")}
    return to_segments(preds), to_segments(gt)


# ----- the published numbers, through the store --------------------------------------------

@pytest.fixture(scope="module")
def mdvc_val_1(tmp_path_factory, shared_data):
    from harness.store import Store

    store = Store(tmp_path_factory.mktemp("anet") / "store")
    ANET_CAPTIONS.ensure_label_sets(store)
    run_id = ANET_CAPTIONS.import_predictions(store, shared_data / "activitynet/mdvc_results_val_1_e30.json",
                                              "mdvc-val_1", model="MDVC")
    return store, run_id


@pytest.mark.slow
def test_mdvc_val_1_scores_as_published(mdvc_val_1, meteor):
    # MDVC's README: the official densevid_eval gives METEOR 9.9407 for results_val_1_e30.json
    # against the full val_1.  The other averages are what the official tool prints for it.
    store, run_id = mdvc_val_1
    result = ANET_CAPTIONS.score(store, run_id, "anet-captions-val_1", progress=False, meteor=meteor)
    percent = {m: round(100 * result[m], 4) for m in (*CAPTION_METRICS, "Precision", "Recall")}
    assert percent["METEOR"] == 9.9407
    assert percent == {"Bleu_1": 19.9559, "Bleu_2": 9.5458, "Bleu_3": 4.242, "Bleu_4": 1.9788,
                       "METEOR": 9.9407, "ROUGE_L": 20.3498, "CIDEr": 40.6947,
                       "Precision": 91.1735, "Recall": 91.1735}
    # MDVC predicted exactly the ground-truth segments of the 4,483 available videos: every
    # prediction hits and every segment of those videos is hit, so precision = recall = 4483/4917.
    assert result["Precision"] == pytest.approx(4483 / 4917, abs=1e-12)
    assert result["n"] == 4917 and result["n_videos_predicted"] == 4483 and result["n_unknown_videos"] == 0
    assert result["label_set"] == "anet-captions-val_1" and result["suite"] == "anet-captions"
    assert result["F1"] == pytest.approx(result["Precision"])
    assert len(result["per_tiou"]["METEOR"]) == 4


# The MDVC and BMT papers (and BMT's README): ground-truth proposals, the videos still available
# (MDVC/BMT's val_*_no_missings.json), each split's results file against its own split, mean of the two.
GT_PROPOSALS = {
    "mdvc": ({1: "mdvc_results_val_1_e30.json", 2: "mdvc_results_val_2_e30.json"},
             {"Bleu_3": 4.52, "Bleu_4": 1.98, "METEOR": 11.07}),
    "bmt": ({1: "bmt_captioning_results_val_1_e26.json", 2: "bmt_captioning_results_val_2_e26.json"},
            {"Bleu_3": 4.63, "Bleu_4": 1.99, "METEOR": 10.90}),
}


@pytest.fixture(scope="module")
def gt_proposals(mdvc_val_1, shared_data, meteor):
    """score_per_split of MDVC and BMT with ground-truth proposals: four full splits, scored once (~3 min)."""
    store, _ = mdvc_val_1
    results = {}
    for model, (files, _) in GT_PROPOSALS.items():
        runs = {f"anet-captions-val_{split}-available": ANET_CAPTIONS.import_predictions(
                    store, shared_data / "activitynet" / file, f"{model}-gt-proposals-val_{split}")
                for split, file in files.items()}
        results[model] = ANET_CAPTIONS.score_per_split(store, runs, meteor=meteor, progress=False)
    return results


@pytest.mark.slow
@pytest.mark.parametrize("model", list(GT_PROPOSALS))
def test_ground_truth_proposals_score_as_published(gt_proposals, model):
    published = GT_PROPOSALS[model][1]
    result = gt_proposals[model]
    assert {m: round(100 * result[m], 2) for m in published} == published
    assert result["protocol"] == "per-split mean" and result["n"] == 4483 + 4453
    assert result["METEOR"] == pytest.approx(np.mean([s["METEOR"] for s in result["splits"].values()]), abs=1e-15)


@pytest.mark.slow
def test_mdvc_val_2_scores_as_published(gt_proposals):
    # MDVC's README: the official densevid_eval gives METEOR 10.2478 for results_val_2_e30.json against the
    # full val_2.  MDVC predicted every available video and no other, and a reference video without
    # predictions scores 0, so the full split's mean is the available videos' mean times 4453/4885
    # (checked by scoring the full val_1 above); this saves scoring val_2 a second time.
    available = gt_proposals["mdvc"]["splits"]["anet-captions-val_2-available"]
    assert available["n"] == 4453 and available["n_videos_predicted"] == 4453
    assert round(100 * available["METEOR"], 4) == 11.2420  # the official tool's, run once (benchmarks/results/anet.md)
    assert round(100 * available["METEOR"] * 4453 / 4885, 4) == 10.2478


def test_rows_are_queryable_with_sql(mdvc_val_1):
    store, run_id = mdvc_val_1
    counts = store.sql(
        "SELECT count(*) AS n, count(DISTINCT key) AS videos FROM dense_captions WHERE run_id = ?", [run_id])
    assert counts.n[0] == 15921 and counts.videos[0] == 4483
    # Join predictions to the ground truth by video key.
    joined = store.sql(
        "SELECT count(DISTINCT d.key) AS n FROM dense_captions d JOIN caption_segments g "
        "ON d.key = g.key AND g.label_set = 'anet-captions-val_1-available' WHERE d.run_id = ?", [run_id])
    assert joined.n[0] == 4483
    sizes = store.sql("SELECT label_set, count(DISTINCT key) AS n FROM caption_segments GROUP BY 1 ORDER BY 1")
    assert dict(zip(sizes.label_set, sizes.n)) == {
        "anet-captions-val_1": 4917, "anet-captions-val_1-available": 4483,
        "anet-captions-val_2": 4885, "anet-captions-val_2-available": 4453}
    run = store.sql("SELECT name, model, suite, kind, metric_version FROM runs WHERE run_id = ?", [run_id])
    assert run.iloc[0].to_dict() == {"name": "mdvc-val_1", "model": "MDVC", "suite": "anet-captions",
                                     "kind": "import", "metric_version": densevid.METRIC_VERSION}


# ----- protocol details on real subsets and constructed cases --------------------------------

def test_videos_without_predictions_count_as_zero(shared_data, meteor):
    preds, gt = real_subset(shared_data, 1, 30)
    base = densevid.evaluate(preds, [gt], progress=False, meteor=meteor)
    extra = {f"v_extra{i:09d}": seg((0, 5, "a man talks"), (5, 9, "he leaves")) for i in range(10)}
    diluted = densevid.evaluate(preds, [{**gt, **extra}], progress=False, meteor=meteor)
    assert base["METEOR"] > 0.05
    for m in (*CAPTION_METRICS, "Precision", "Recall"):
        assert diluted[m] == pytest.approx(base[m] * 30 / 40, rel=1e-12), m
    assert diluted["n"] == 40


def test_two_reference_files_pair_with_both(shared_data, meteor):
    # The val_1+val_2 protocol: a prediction pairs with matching segments of every file.
    preds, gt1 = real_subset(shared_data, 1, 20)
    gt2 = {k: seg((0.0, 1e6, "something unrelated happens here")) for k in gt1}
    one = densevid.evaluate(preds, [gt1], progress=False, meteor=meteor)
    both = densevid.evaluate(preds, [gt1, gt2], progress=False, meteor=meteor)
    # At tIoU 0.9 no prediction reaches the 1e6-second segment: the second file changes nothing.
    for m in CAPTION_METRICS:
        assert both["per_tiou"][m][3] == pytest.approx(one["per_tiou"][m][3], rel=1e-12)
    # Localisation takes the best file per video, and val_1 is perfect for these predictions.
    assert both["Recall"] == one["Recall"] == pytest.approx(1.0)


def test_localisation_by_hand(meteor):
    gt = {"v_a": seg((0, 10, "a man is standing"), (10, 20, "the man sits down")),
          "v_b": seg((0, 5, "a dog runs"))}
    preds = {"v_a": seg((0, 10, "a man is standing"), (5, 15, "a man sits"), (30, 40, "nothing")),
             "v_c": seg((0, 1, "not in the ground truth"))}
    r = densevid.evaluate(preds, [gt], progress=False, meteor=meteor)
    # v_a: [0,10] hits s0 (tIoU 1), [5,15] has tIoU 1/3 with both, [30,40] hits nothing.
    # Strict tIoU > t: at 0.3 precision 2/3, recall 1; at 0.5-0.9 precision 1/3, recall 1/2.
    # v_b has no prediction (0, 0); v_c is not a reference video and is ignored.
    assert r["per_tiou"]["Precision"] == pytest.approx([1 / 3, 1 / 6, 1 / 6, 1 / 6])
    assert r["per_tiou"]["Recall"] == pytest.approx([1 / 2, 1 / 4, 1 / 4, 1 / 4])
    p, rec = (1 / 3 + 3 / 6) / 4, (1 / 2 + 3 / 4) / 4
    assert r["Precision"] == pytest.approx(p) and r["Recall"] == pytest.approx(rec)
    assert r["F1"] == pytest.approx(2 * p * rec / (p + rec))
    assert r["n"] == 2


def test_threshold_uses_official_arithmetic(meteor):
    # [0, 10] against [0, 5] is tIoU 0.5 on paper, but the official 5 / (10 + 1e-8) falls just
    # below 0.5: the prediction is unmatched there and scores 0, as in densevid_eval.
    gt = {"v_a": seg((0, 5, "a woman is dancing on a stage"))}
    preds = {"v_a": seg((0, 10, "a woman is dancing on a stage"))}
    r = densevid.evaluate(preds, [gt], progress=False, meteor=meteor)
    assert r["per_tiou"]["METEOR"][0] > 0.9  # tIoU 0.3: paired with its own sentence
    assert r["per_tiou"]["METEOR"][1:] == [0.0, 0.0, 0.0]
    assert r["per_tiou"]["Bleu_1"][1] == pytest.approx(0.0, abs=1e-6)


def test_unmatched_predictions_dilute_the_video(meteor):
    gt = {"v_a": seg((0, 10, "a woman is dancing on a stage"))}
    alone = densevid.evaluate({"v_a": seg((0, 10, "a woman is dancing on a stage"))}, [gt],
                              progress=False, meteor=meteor)
    extra = densevid.evaluate({"v_a": seg((0, 10, "a woman is dancing on a stage"),
                                          (50, 60, "a woman is dancing on a stage"))}, [gt],
                              progress=False, meteor=meteor)
    # ROUGE-L and CIDEr-D average over pairs: the garbage pair halves them.
    assert extra["ROUGE_L"] == pytest.approx(alone["ROUGE_L"] / 2, rel=1e-9)
    assert extra["METEOR"] < alone["METEOR"]
    assert extra["Precision"] == pytest.approx(0.5) and alone["Precision"] == pytest.approx(1.0)


def test_reversed_and_far_away_predictions_are_the_same_miss(meteor):
    gt = {"v_a": seg((0, 10, "a woman is dancing on a stage"), (10, 20, "she bows"))}
    base = [(0, 10, "a woman is dancing on a stage")]
    reversed_ = densevid.evaluate({"v_a": seg(*base, (20, 10, "she bows"))}, [gt], progress=False, meteor=meteor)
    far = densevid.evaluate({"v_a": seg(*base, (300, 310, "she bows"))}, [gt], progress=False, meteor=meteor)
    for m in (*CAPTION_METRICS, "Precision", "Recall"):
        assert reversed_[m] == pytest.approx(far[m], rel=1e-12), m
    assert reversed_["Recall"] == pytest.approx(0.5)


def test_non_ascii_becomes_spaces(meteor):
    gt = {"v_a": seg((0, 10, "a man plays a guitar in a café"))}
    accented = densevid.evaluate({"v_a": seg((0, 10, "a man plays a guitar in a café"))}, [gt],
                                 progress=False, meteor=meteor)
    spaced = densevid.evaluate({"v_a": seg((0, 10, "a man plays a guitar in a caf "))}, [gt],
                               progress=False, meteor=meteor)
    for m in CAPTION_METRICS:
        assert accented[m] == pytest.approx(spaced[m], rel=1e-12), m
    # A sentence with nothing ASCII, or only punctuation, tokenizes to nothing and scores 0.
    empty = densevid.evaluate({"v_a": seg((0, 10, "日本語"), (0, 10, "..."))}, [gt], progress=False, meteor=meteor)
    assert [empty[m] for m in CAPTION_METRICS] == [0.0] * 7 and empty["Precision"] == 1.0


def test_max_proposals_keeps_the_first(shared_data, meteor):
    preds, gt = real_subset(shared_data, 2, 15)
    first_two = {k: densevid.Segments(p.timestamps[:2], p.sentences[:2]) for k, p in preds.items()}
    cut = densevid.evaluate(preds, [gt], max_proposals=2, progress=False, meteor=meteor)
    explicit = densevid.evaluate(first_two, [gt], progress=False, meteor=meteor)
    for m in (*CAPTION_METRICS, "Precision", "Recall"):
        assert cut[m] == pytest.approx(explicit[m], rel=1e-12), m


def test_ptb_tokenizer_keeps_lines():
    assert ptb_tokenize(["A man, is here.", "", "Don't stop!", "...", "two  spaces"]) == [
        "a man is here", "", "do n't stop", "", "two spaces"]


@pytest.mark.slow
def test_per_split_protocol_is_the_mean(tmp_path, store, shared_data, meteor):
    for split in (1, 2):
        preds, gt = real_subset(shared_data, split, 12)
        rows = [{"key": k, "duration": None, "idx": i, "start": float(a), "end": float(b), "sentence": s}
                for k, g in gt.items() for i, ((a, b), s) in enumerate(zip(g.timestamps, g.sentences))]
        import pandas as pd

        store.put_label_set(f"mini-val_{split}", {"dataset": "activitynet-captions",
                                                   "format": "activitynet-captions"},
                            {"caption_segments": pd.DataFrame(rows)})
        sub = {"version": "1", "external_data": {}, "results": {
            k: [{"sentence": s, "timestamp": [float(a), float(b)]}
                for (a, b), s in zip(p.timestamps, p.sentences)] for k, p in preds.items()}}
        (tmp_path / f"sub{split}.json").write_text(json.dumps(sub))
    runs = {f"mini-val_{s}": ANET_CAPTIONS.import_predictions(store, tmp_path / f"sub{s}.json", f"m{s}")
            for s in (1, 2)}
    both = ANET_CAPTIONS.score_per_split(store, runs, progress=False, meteor=meteor)
    for m in ("METEOR", "Bleu_4", "CIDEr", "Recall"):
        assert both[m] == pytest.approx((both["splits"]["mini-val_1"][m] + both["splits"]["mini-val_2"][m]) / 2)
    assert both["splits"]["mini-val_1"]["n"] == 12 and both["METEOR"] > 0.05

    # The same from the CLI: one run per label set, in order
    cli = [sys.executable, "-m", "harness", "--store", str(store.root), "score", "--run", "m1,m2", "--per-split",
           "--labels", "mini-val_1", "--labels", "mini-val_2"]
    proc = subprocess.run([*cli, "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    from_cli = json.loads(proc.stdout)
    assert {m: from_cli[m] for m in CAPTION_METRICS} == {m: both[m] for m in CAPTION_METRICS}
    assert from_cli["protocol"] == "per-split mean" and set(from_cli["splits"]) == {"mini-val_1", "mini-val_2"}
    # Each split's score is stored with its run and reused: the table comes from the store.
    assert store.sql("SELECT label_set FROM scores ORDER BY label_set")["label_set"].tolist() == [
        "mini-val_1", "mini-val_2"]
    proc = subprocess.run(cli, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    mean_row = next(line for line in proc.stdout.splitlines() if line.startswith("mean"))
    assert mean_row.split()[1:] == [f"{100 * both[m]:.2f}" for m in (*CAPTION_METRICS, "Precision", "Recall")]
    proc = subprocess.run([*cli[:-6], "m1,m2,m1", "--per-split"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "3 runs for 2 label sets" in proc.stderr and "Traceback" not in proc.stderr


def test_the_per_split_table_names_each_split_whole():
    # The published protocol's label sets differ only at their ends (...val_1-available, ...val_2-available).
    metrics = [*CAPTION_METRICS, "Precision", "Recall", "F1"]
    split = {m: 0.1 for m in metrics}
    names = ["anet-captions-val_1-available", "anet-captions-val_2-available"]
    result = {**{m: 0.1 for m in metrics}, "label_set": "|".join(names), "n": 8936, "metric_version": "v",
              "splits": {name: {**split, "n": 1} for name in names}}
    rows = ANET_CAPTIONS.describe(result).splitlines()
    assert [row.split()[0] for row in rows[2:5]] == [*names, "mean"]
    assert len({len(row) for row in rows[1:5]}) == 1  # the columns line up


# ----- bad input -------------------------------------------------------------------------

def _submission(tmp_path, results, **header):
    data = {"version": "VERSION 1.0", "external_data": {"used": False}, "results": results, **header}
    path = tmp_path / "sub.json"
    path.write_text(json.dumps(data).replace('"NaN_"', "NaN"))
    return path


@pytest.mark.parametrize("results, message", [
    ({"v_a": [{"sentence": "x", "timestamp": ["NaN_", 3]}]}, "video 'v_a' entry 0 has segment"),
    ({"v_a": [{"sentence": "x", "timestamp": [1]}]}, "expected [start, end]"),
    ({"v_a": [{"sentence": "x", "timestamp": ["1", 2]}]}, "finite numbers"),
    ({"v_a": [{"sentence": "x"}]}, "expected an object with keys \"sentence\" and \"timestamp\""),
    ({"v_a": [{"sentence": 3, "timestamp": [1, 2]}]}, "expected a string"),
    ({"v_a": [{"sentence": "a\rb", "timestamp": [1, 2]}]}, "line break"),
    ({"v_a": {"sentence": "x", "timestamp": [1, 2]}}, "expected a list of predictions"),
    ([], "expected an object mapping video ids"),
])
def test_bad_submissions_are_refused_and_nothing_is_written(tmp_path, store, results, message):
    path = _submission(tmp_path, results)
    with pytest.raises(HarnessError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ANET_CAPTIONS.import_predictions(store, path, "bad")
    assert store.list_runs() == []


def test_official_header_keys_are_required(tmp_path, store):
    path = tmp_path / "sub.json"
    path.write_text(json.dumps({"results": {}}))
    with pytest.raises(HarnessError, match=r"lacks the keys \['version', 'external_data'\]"):
        ANET_CAPTIONS.import_predictions(store, path, "bad")
    path.write_text("{not json")
    with pytest.raises(HarnessError, match="not valid JSON"):
        ANET_CAPTIONS.import_predictions(store, path, "bad")
    with pytest.raises(HarnessError, match="does not exist"):
        ANET_CAPTIONS.import_predictions(store, tmp_path / "missing.json", "bad")
    with pytest.raises(HarnessError, match="takes no --split option for imports"):
        ANET_CAPTIONS.import_predictions(store, path, "bad", split="val_1")


def test_odd_but_legal_input_is_kept(tmp_path, store):
    # Reversed and out-of-duration times and non-ASCII text are stored as given (see formats.py).
    path = _submission(tmp_path, {"v_a": [{"sentence": "un café", "timestamp": [30, 20]},
                                          {"sentence": "late", "timestamp": [-1, 1e5]}], "v_b": []})
    run_id = ANET_CAPTIONS.import_predictions(store, path, "odd")
    rows = store.sql("SELECT key, rank, start, \"end\", sentence FROM dense_captions ORDER BY rank")
    assert rows.values.tolist() == [["v_a", 0, 30.0, 20.0, "un café"], ["v_a", 1, -1.0, 1e5, "late"]]
    assert store.run_meta(run_id)["n_videos"] == 1


def test_wrong_label_set_or_run_is_refused(store, tmp_path):
    import pandas as pd

    store.put_label_set("imagenet-like", {"dataset": "imagenet-val"},
                        {"labels": pd.DataFrame({"key": ["a"], "labels": [[1]], "weights": [[1.0]]})})
    run_id = ANET_CAPTIONS.import_predictions(store, _submission(tmp_path, {}), "empty")
    with pytest.raises(HarnessError, match="expects activitynet-captions ground truth"):
        ANET_CAPTIONS.score(store, run_id, "imagenet-like")
    with pytest.raises(HarnessError, match="no label set 'nope'"):
        ANET_CAPTIONS.score(store, run_id, "nope")
    from harness.activitynet.suites import ANET_DETECTION

    with pytest.raises(HarnessError, match="belongs to suite 'anet-captions'"):
        ANET_DETECTION.score(store, run_id)
