"""Run identity after ordinary use: the READMEs' steps in order, imports repeated, names on several datasets.

The commands are read from README.md and relabel/README.md themselves, so the test follows the
documentation as it is written; the expected answers are computed here from the raw files.
"""
from __future__ import annotations

import json
import re
import shlex

import pandas as pd
import pytest

from harness.cli import main
from harness.errors import HarnessError
from harness.suites import get_suite

from readmes import REPO, code_blocks, documented

def run(command: str, store, capsys, cwd, monkeypatch) -> str:
    words = shlex.split(command, comments=True)
    assert words[:3] == ["python", "-m", "harness"], command
    monkeypatch.chdir(cwd)
    code = main(["--store", str(store.root), *words[3:]])
    out = capsys.readouterr()
    assert code == 0, f"{command}\n{out.out}\n{out.err}"
    return out.out


def test_readme_sql_answers_after_the_documented_steps_in_order(store, shared_data, capsys, monkeypatch):
    predictions = shared_data / "imagenet" / "model_predictions"
    # README.md: import ResNet50 (suite real), score it, ask with SQL.
    run(documented("README.md", r"harness import --suite real --name ResNet50"), store, capsys, REPO, monkeypatch)
    rescored = run(documented("README.md", r"harness score --run ResNet50"), store, capsys, REPO, monkeypatch)
    assert "top-1 76.13%" in rescored
    sql = documented("README.md", r"harness sql \"\s*\n\s*SELECT r.name")
    first = run(sql, store, capsys, REPO, monkeypatch)
    assert re.search(r"ResNet50\s+46837\s+82\.96", first), first
    # relabel/README.md imports the same file again (suite imagenet, same dataset): nothing is stored twice.
    again = documented("relabel/README.md", r"harness import --suite imagenet --name ResNet50")
    said = run(again, store, capsys, predictions, monkeypatch)
    [resnet] = [m for m in store.list_runs() if m["name"] == "ResNet50"]
    assert f"already stored as run {resnet['run_id']}" in said
    assert run(sql, store, capsys, REPO, monkeypatch) == first  # not 93674 rows
    # The second query compares ResNet50 with ViT, imported the same way.
    run(again.replace("ResNet50", "ViT"), store, capsys, predictions, monkeypatch)
    [second] = code_blocks("README.md", ("sql",))
    assert "FROM runs WHERE name = 'ResNet50'" in second
    rows = store.sql(second)
    # Independently: images where the two files' classes differ, with their ReaL labels.
    def classes(name):
        frame = pd.read_csv(predictions / f"{name}.csv")
        return frame.set_index(frame.file_name.str.replace(".JPEG", "", regex=False)).predicted_class
    a, b = classes("ResNet50"), classes("ViT")
    differ = sorted(a.index[a != b.reindex(a.index)])
    assert sorted(rows["key"]) == differ and len(differ) > 1000
    real = json.loads((shared_data / "imagenet" / "real.json").read_text())
    row = rows.set_index("key").loc[differ[0]]
    assert (row["resnet50"], row["vit"]) == (a[differ[0]], b[differ[0]])
    assert list(row["real"]) == real[int(differ[0][-8:]) - 1]


def test_a_file_already_stored_is_not_imported_again_from_any_entry_point(store, shared_data, tmp_path, capsys):
    resnet = shared_data / "imagenet" / "model_predictions" / "ResNet50.csv"
    first = get_suite("real").import_predictions(store, resnet, "ResNet50")
    capsys.readouterr()
    # Python API, another suite of the same dataset, another name: the same run, said so.
    assert get_suite("imagenet").import_predictions(store, resnet, "resnet-again") == first
    assert f"already stored as run {first}" in capsys.readouterr().err
    # A copy elsewhere has the same bytes: still the same file.
    copy = tmp_path / "copy.csv"
    copy.write_bytes(resnet.read_bytes())
    assert main(["--store", str(store.root), "import", "--suite", "imagenet", str(copy)]) == 0
    assert f"already stored as run {first}" in capsys.readouterr().out
    assert [m["run_id"] for m in store.list_runs()] == [first]
    # Detection and ActivityNet importers follow the same rule.
    yolo = shared_data / "coco" / "instances_val2014_fakebbox100_results.json"
    coco = get_suite("coco").import_predictions(store, yolo, "fake-bbox")
    assert get_suite("coco").import_predictions(store, yolo, "fake-bbox-2") == coco
    mdvc = shared_data / "activitynet" / "mdvc_results_val_1_e30.json"
    captions = get_suite("anet-captions").import_predictions(store, mdvc, "MDVC")
    assert get_suite("anet-captions").import_predictions(store, mdvc, "MDVC") == captions
    assert len(store.list_runs()) == 3


def test_a_name_on_several_datasets_is_refused_with_the_candidates(store, shared_data, capsys):
    cifar = shared_data / "cifar" / "cifar10_1_model_predictions"
    on_cifar10 = get_suite("cifar10").import_predictions(
        store, cifar / "original_predictions" / "resnet_basic_56_predictions.json", "resnet_basic_56")
    on_v6 = get_suite("cifar10.1-v6").import_predictions(
        store, cifar / "v6_predictions" / "resnet_basic_56_predictions.json", "resnet_basic_56")
    with pytest.raises(HarnessError, match="matches runs on 2 datasets") as refused:
        store.resolve_run("resnet_basic_56")
    assert on_cifar10 in str(refused.value) and on_v6 in str(refused.value)
    assert main(["--store", str(store.root), "score", "--run", "resnet_basic_56"]) == 2
    assert "give the run id" in capsys.readouterr().err
    # Stated explicitly, a dataset picks the latest complete run of the name on it.
    assert store.resolve_run("resnet_basic_56", dataset=store.run_meta(on_v6)["dataset"])["run_id"] == on_v6
    assert main(["--store", str(store.root), "score", "--run", on_v6]) == 0  # an id is always unambiguous
