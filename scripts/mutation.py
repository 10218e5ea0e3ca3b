"""Mutation testing of harness/, relabel/ and reports/ with cosmic-ray, against the quick run (issue 26).

``scripts/mutate.py`` keeps the named regressions (bugs we know about); this script asks the
question nobody names in advance: of the mutants a tool makes anywhere in the code, how many does
the quick run (``-m "not slow"``) kill?

- **Mutants** come from cosmic-ray (``cosmic-ray init`` into its sqlite session, every core
  operator). Every mutant of every module is enumerated; a seeded random sample of
  ``per_package`` mutants per package is run (the whole space is far too slow for this machine).
  Results go back into the same session, so cosmic-ray's own ``cr-report SESSION`` reads them.
- **Tests per mutant**: only the quick tests of the test files that exercise its module (a test
  file exercises ``pkg/mod.py`` when it names ``pkg.mod`` or imports ``mod`` from ``pkg``; plus the
  ``[tests]`` table of the configuration), with ``-x``, never the whole suite.
- **Speed on two shared cores**: each mutant's pytest runs in a child forked from a parent that has
  already imported the heavy third-party libraries (torch, timm, pandas, scipy, scikit-learn, ...),
  but none of the project's modules, so the child imports the mutated source afresh; one scratch
  copy of the working tree per worker (``git ls-files``, like ``scripts/mutate.py``); niced.
- **Outcome** of one mutant: pytest exit 0 = survived; 1 (a test failed), 2 (a module could not be
  imported or collected) or a timeout = killed; anything else = error (reported, not counted).

Usage::

    nice -n 10 .venv/bin/python scripts/mutation.py run                      # sample, run, report
    .venv/bin/python scripts/mutation.py run --per-package 20 --workers 1    # a smoke run
    .venv/bin/python scripts/mutation.py run --rerun-survivors               # survivors again, new tests
    .venv/bin/python scripts/mutation.py report --markdown benchmarks/results/mutation.md
    .venv/bin/python scripts/mutation.py tests harness/store.py              # which tests a module gets
    cr-report .mutation/session.sqlite                                       # cosmic-ray's own report

The configuration is ``scripts/mutation.toml`` (sample, operators left out and why, test table,
survivors judged equivalent with their reasons).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutate import scratch_copy  # noqa: E402  (the same copy of the working tree as the named mutants)

CONFIG = REPO / "scripts" / "mutation.toml"
PRELOAD = ("numpy", "pandas", "pyarrow", "pyarrow.parquet", "duckdb", "scipy.stats", "scipy.optimize",
           "scipy.special", "sklearn.metrics", "statsmodels.api", "torch", "torchvision", "timm", "PIL.Image",
           "matplotlib", "matplotlib.pyplot", "pycocotools.coco", "pycocotools.cocoeval", "hypothesis", "pytest",
           "tqdm", "platformdirs")


# ----- configuration, mutants, tests ---------------------------------------------------
def load_config(path: Path = CONFIG) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def package_modules(packages: list[str], exclude: list[str]) -> list[str]:
    """Repository-relative paths of the tracked Python modules of the packages."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *packages],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return sorted(p for p in listed if p.endswith(".py") and p not in exclude)


def enumerate_mutants(session: Path, modules: list[str], exclude_operators: list[str]) -> list[dict]:
    """Every mutant of the modules, through ``cosmic-ray init`` into the session (cleared first)."""
    from cosmic_ray.commands.init import init
    from cosmic_ray.work_db import WorkDB, use_db

    session.parent.mkdir(parents=True, exist_ok=True)
    with use_db(str(session), WorkDB.Mode.create) as db:
        cwd = os.getcwd()
        os.chdir(REPO)  # module paths stay repository-relative in the session
        try:
            init([Path(m) for m in modules], db, {})
        finally:
            os.chdir(cwd)
        from cosmic_ray.work_item import WorkerOutcome, WorkResult

        spans = {m: annotation_spans(REPO / m) for m in modules}
        left_out = {"operator left out by scripts/mutation.toml": [], ANNOTATION: []}
        for item in db.work_items:
            m = item.mutations[0]
            if m.operator_name in exclude_operators:
                left_out["operator left out by scripts/mutation.toml"].append(item.job_id)
            elif any(a <= tuple(m.start_pos) < b for a, b in spans[str(m.module_path)]):
                left_out[ANNOTATION].append(item.job_id)
        for reason, ids in left_out.items():
            if ids:
                db.set_multiple_results(ids, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output=reason))
            print(f"left out: {len(ids)} mutants, {reason}", flush=True)
        skipped = {i for ids in left_out.values() for i in ids}
        return [mutant_record(item) for item in db.work_items if item.job_id not in skipped]


ANNOTATION = "inside a type annotation of a module with `from __future__ import annotations` (never evaluated)"


def annotation_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions of the type annotations of a module whose annotations are never evaluated
    (``from __future__ import annotations``): a mutant there (``int | None`` to ``int - None``) is
    equivalent by construction, and cosmic-ray makes ten of them per ``|``."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    if not any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
               any(a.name == "annotations" for a in n.names) for n in tree.body):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            found.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
    return [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in found]


def mutant_record(item) -> dict:
    m = item.mutations[0]
    return {"job_id": item.job_id, "module": str(m.module_path), "operator": m.operator_name,
            "occurrence": m.occurrence, "line": m.start_pos[0], "col": m.start_pos[1],
            "definition": m.definition_name}


def sample_mutants(mutants: list[dict], packages: list[str], per_package: int, seed: int) -> list[dict]:
    """``per_package`` mutants of each package, drawn with the seed; interleaved package by package so
    that a run cut short is still a random sample of each."""
    rng = random.Random(seed)
    key = lambda m: (m["module"], m["operator"], m["occurrence"])  # noqa: E731 (independent of job ids)
    drawn = []
    for pkg in packages:
        pool = sorted((m for m in mutants if m["module"].startswith(pkg + "/")), key=key)
        drawn.append(rng.sample(pool, min(per_package, len(pool))))
    order = []
    for i in range(max(map(len, drawn), default=0)):
        order.extend(d[i] for d in drawn if i < len(d))
    return order


def times_named(text: str, module: str) -> int:
    """How often a test file names the module: ``pkg.mod`` (not ``pkg.mod.sub``) or ``from pkg import mod``."""
    dotted = module[:-3].replace("/", ".").removesuffix(".__init__")
    parent, _, leaf = dotted.rpartition(".")
    count = len(re.findall(rf"\b{re.escape(dotted)}(?![.\w])", text))
    if parent:
        count += len(re.findall(rf"from {re.escape(parent)} import [^\n]*\b{re.escape(leaf)}\b", text))
    return count


def tests_for(module: str, config: dict) -> list[str]:
    """Test files for a module: the configured ones first (the targeted ones), then the ``max_found`` test
    files that name it most often (the quick run of all of them would be far too slow per mutant); a
    ``heavy`` file only where the table lists it."""
    chosen = list(config.get("tests", {}).get(module, []))
    if chosen and not config.get("found_when_listed", True):
        return chosen
    found = []
    for path in sorted((REPO / "tests").glob("test_*.py")):
        rel = f"tests/{path.name}"
        if rel not in chosen and rel not in config.get("never_run", []) and rel not in config.get("heavy", []):
            if (count := times_named(path.read_text(), module)):
                found.append((-count, rel))
    return chosen + [rel for _, rel in sorted(found)[:config.get("max_found", 3)]]


# ----- running -------------------------------------------------------------------------
def preload() -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass


def fork_pytest(copy: Path, args: list[str], log: Path) -> int:
    """A child (own process group) that runs pytest in the copy; returns its pid."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setpgid(0, 0)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.chdir(copy)
        sys.path.insert(0, str(copy))
        sys.dont_write_bytecode = True  # a mutant of the same size and second must never meet a stale .pyc
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(copy), os.environ.get("PYTHONPATH")]))
        import pytest
        rc = pytest.main(args)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(rc))
    except BaseException:  # noqa: BLE001 (a child must never return into the parent's loop)
        import traceback
        traceback.print_exc()
        os._exit(3)


def outcome_of(rc: int | None) -> str:
    if rc is None:
        return "killed"  # timed out
    if rc == 0:
        return "survived"
    if rc in (1, 2):
        return "killed"
    return "error"


class Slot:
    def __init__(self, root: Path):
        self.copy = root / "repo"
        scratch_copy(self.copy)
        self.pid = 0
        self.mutant: dict | None = None
        self.original = ""
        self.started = 0.0
        self.log = root / "pytest.log"


def pytest_args(config: dict, tests: list[str]) -> list[str]:
    return [*config["pytest_args"], *tests]


def baseline(config: dict, groups: dict[tuple, list[dict]], slot: Slot) -> dict[tuple, float]:
    """Unmutated run of each test group: it must pass; its time sets the group's timeout."""
    seconds = {}
    for tests in groups:
        start = time.monotonic()
        pid = fork_pytest(slot.copy, pytest_args(config, list(tests)), slot.log)
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        seconds[tests] = time.monotonic() - start
        print(f"baseline {seconds[tests]:6.1f} s rc={rc} {' '.join(tests)}", flush=True)
        if rc != 0:
            print(slot.log.read_text()[-3000:], flush=True)
            seconds[tests] = -1.0
    return seconds


def apply(slot: Slot, mutant: dict) -> str | None:
    """Write the mutant into the slot's copy; None when cosmic-ray can no longer make it."""
    import cosmic_ray.plugins
    from cosmic_ray.mutating import mutate_code

    path = slot.copy / mutant["module"]
    slot.original = path.read_text(encoding="utf-8")
    operator = cosmic_ray.plugins.get_operator(mutant["operator"])()
    mutated = mutate_code(slot.original, operator, mutant["occurrence"])
    if mutated is None:
        return None
    path.write_text(mutated, encoding="utf-8")
    return mutated


def diff_line(original: str, mutated: str) -> str:
    import difflib

    lines = [d for d in difflib.unified_diff(original.splitlines(), mutated.splitlines(), lineterm="", n=0)
             if d[:1] in "+-" and not d.startswith(("+++", "---"))]
    return " | ".join(line.strip() for line in lines)[:300]


def run(args, config: dict) -> int:
    session = REPO / config["session"]
    results_path = REPO / config["results"]
    modules = package_modules(config["packages"], config.get("exclude_modules", []))
    if args.rerun_survivors:
        done = read_results(results_path)
        sample = [r for r in done.values() if r["outcome"] in ("survived", "no-test", "error")
                  or r["detail"] == "timeout"]
    else:
        mutants = enumerate_mutants(session, modules, config.get("exclude_operators", []))
        per_package = args.per_package or config["per_package"]
        sample = sample_mutants(mutants, config["packages"], per_package, config["seed"])
        print(f"{len(mutants)} mutants in {len(modules)} modules; sample of {len(sample)} "
              f"({per_package} per package, seed {config['seed']})", flush=True)
        done = {} if args.fresh else read_results(results_path)
        sample = [m for m in sample if mutant_key(m) not in done or done[mutant_key(m)]["outcome"] == "error"]
    for m in sample:
        m["tests"] = tests_for(m["module"], config)
    groups: dict[tuple, list[dict]] = {}
    for m in sample:
        groups.setdefault(tuple(m["tests"]), []).append(m)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    preload()
    # the copies lie elsewhere: point their tests at the shared data next to this checkout
    os.environ.setdefault("REALBENCH_TEST_DATA", str(REPO.parent / "shared" / "data"))
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        slots = [Slot(Path(tmp) / f"w{i}") for i in range(args.workers)]
        if args.no_baseline:  # every group's files were run green at this commit beforehand (say so)
            base = {g: config["timeout_min"] / config["timeout_factor"] for g in groups}
        else:
            base = baseline(config, {g: v for g, v in groups.items() if g}, slots[0])
        pending = list(sample)
        with open(results_path, "a") as out:
            while pending or any(s.pid for s in slots):
                for slot in slots:
                    if slot.pid or not pending:
                        continue
                    m = pending.pop(0)
                    t0 = base.get(tuple(m["tests"]), -1.0)
                    if not m["tests"] or t0 < 0:
                        record(out, m, "no-test" if not m["tests"] else "error", 0.0, "", commit,
                               "no quick test file exercises this module" if not m["tests"]
                               else "its tests fail without the mutant")
                        continue
                    mutated = apply(slot, m)
                    if mutated is None:
                        record(out, m, "error", 0.0, "", commit, "cosmic-ray could not re-make the mutant")
                        continue
                    made = diff_line(slot.original, mutated)
                    if m.get("diff") and made != m["diff"]:  # a re-run whose code has changed under the mutant
                        (slot.copy / m["module"]).write_text(slot.original, encoding="utf-8")
                        print(f"stale    {m['module']}:{m['line']} the code changed under it; its result stays",
                              flush=True)
                        continue
                    m["diff"] = made
                    m["timeout"] = max(config["timeout_min"], config["timeout_factor"] * t0)
                    slot.mutant, slot.started = m, time.monotonic()
                    slot.pid = fork_pytest(slot.copy, pytest_args(config, m["tests"]), slot.log)
                finished = False
                for slot in slots:
                    if not slot.pid:
                        continue
                    pid, status = os.waitpid(slot.pid, os.WNOHANG)
                    elapsed = time.monotonic() - slot.started
                    rc: int | None
                    if pid:
                        rc = os.waitstatus_to_exitcode(status)
                    elif elapsed > slot.mutant["timeout"]:
                        os.killpg(slot.pid, signal.SIGKILL)
                        os.waitpid(slot.pid, 0)
                        rc = None
                    else:
                        continue
                    (slot.copy / slot.mutant["module"]).write_text(slot.original, encoding="utf-8")
                    tail = slot.log.read_text(errors="replace")[-1500:]
                    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", tail, re.M)
                    detail = "timeout" if rc is None else (failed[0] if failed else f"pytest exit {rc}")
                    record(out, slot.mutant, outcome_of(rc), elapsed, tail if rc not in (0, 1, 2, None) else "",
                           commit, detail)
                    slot.pid, slot.mutant = 0, None
                    finished = True
                if not finished:
                    time.sleep(0.2)
    write_session(session, read_results(results_path))
    return 0


def record(out, m: dict, outcome: str, seconds: float, output: str, commit: str, detail: str) -> None:
    row = {k: m.get(k) for k in ("job_id", "module", "operator", "occurrence", "line", "col", "definition",
                                 "diff", "tests")}
    row.update(outcome=outcome, seconds=round(seconds, 1), detail=detail, commit=commit,
               date=dt.datetime.now().isoformat(timespec="seconds"), output=output[-1500:])
    out.write(json.dumps(row) + "\n")
    out.flush()
    print(f"{outcome:8s} {seconds:6.1f} s {m['module']}:{m['line']} {m['operator']} {m.get('diff', '')[:110]}"
          f" [{detail}]", flush=True)


def mutant_key(m: dict) -> str:
    """A mutant's name across sessions (cosmic-ray's job ids are new at every init)."""
    return f"{m['module']}:{m['operator']}:{m['occurrence']}"


def read_results(path: Path) -> dict[str, dict]:
    """The latest result of each mutant, by :func:`mutant_key` (a re-run of a survivor replaces its first)."""
    latest: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            latest[mutant_key(row)] = row
    return latest


def write_session(session: Path, results: dict[str, dict]) -> None:
    """The outcomes into cosmic-ray's session, for ``cr-report`` / ``cr-html``."""
    if not session.exists():
        return
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

    outcomes = {"killed": TestOutcome.KILLED, "survived": TestOutcome.SURVIVED}
    with use_db(str(session), WorkDB.Mode.open) as db:
        known = {mutant_key(mutant_record(item)): item.job_id for item in db.work_items}
        for key, row in results.items():
            if key not in known:
                continue
            job_id = known[key]
            if row["outcome"] in outcomes:
                result = WorkResult(worker_outcome=WorkerOutcome.NORMAL, test_outcome=outcomes[row["outcome"]],
                                    output=row["detail"], diff=row.get("diff"))
            else:
                result = WorkResult(worker_outcome=WorkerOutcome.ABNORMAL, output=row["detail"])
            db.set_result(job_id, result)


# ----- report --------------------------------------------------------------------------
def equivalent_reason(row: dict, config: dict) -> str | None:
    for eq in config.get("equivalent", []):
        if eq["module"] == row["module"] and eq["line"] == row["line"] and eq["operator"] == row["operator"]:
            return eq["reason"]
    return None


def report(config: dict, results: dict[str, dict]) -> str:
    rows = sorted(results.values(), key=lambda r: (r["module"], r["line"], r["operator"]))
    per_module: dict[str, dict[str, int]] = {}
    equivalents, survivors = [], []
    for r in rows:
        outcome = r["outcome"]
        if outcome == "killed" and r["detail"] == "timeout":
            outcome = "timeout"  # on a loaded machine a timeout is no verdict: left out of the rate
        if outcome == "survived" and (reason := equivalent_reason(r, config)):
            outcome = "equivalent"
            equivalents.append((r, reason))
        elif outcome == "survived":
            survivors.append(r)
        per_module.setdefault(r["module"], {}).setdefault(outcome, 0)
        per_module[r["module"]][outcome] += 1

    def rate(counts: dict[str, int]) -> tuple[int, int, str]:
        killed = counts.get("killed", 0)
        live = killed + counts.get("survived", 0) + counts.get("no-test", 0)
        return killed, live, f"{100 * killed / live:.1f}%" if live else "–"

    lines = ["| module | sampled | killed | survived | no quick test | equivalent | timeout | error | kill rate |",
             "|---|---|---|---|---|---|---|---|---|"]
    totals: dict[str, dict[str, int]] = {}
    for module, counts in per_module.items():
        pkg = module.split("/")[0]
        for k, v in counts.items():
            totals.setdefault(pkg, {}).setdefault(k, 0)
            totals[pkg][k] += v
            totals.setdefault("all", {}).setdefault(k, 0)
            totals["all"][k] += v
        lines.append(table_row(f"`{module}`", counts, rate(counts)[2]))
    summary = ["| package | sampled | killed | survived | no quick test | equivalent | timeout | error | kill rate |",
               "|---|---|---|---|---|---|---|---|---|"]
    for pkg in [*config["packages"], "all"]:
        counts = totals.get(pkg, {})
        summary.append(table_row(f"**{pkg}**", counts, rate(counts)[2]))
    out = ["### Per package (kill rate = killed / (killed + survived + no quick test))", "", *summary, "",
           "### Per module", "", *lines, "", "### Survivors judged equivalent", ""]
    out += [f"- `{r['module']}:{r['line']}` {r['operator']}: `{r.get('diff', '')}` — {reason}"
            for r, reason in equivalents] or ["(none)"]
    out += ["", "### Survivors (not equivalent: tests to write)", ""]
    out += [f"- `{r['module']}:{r['line']}` ({r['definition']}) {r['operator']}: `{r.get('diff', '')}`"
            for r in survivors] or ["(none)"]
    return "\n".join(out) + "\n"


def table_row(name: str, counts: dict[str, int], kill_rate: str) -> str:
    n = sum(counts.values())
    return (f"| {name} | {n} | {counts.get('killed', 0)} | {counts.get('survived', 0)} | {counts.get('no-test', 0)} "
            f"| {counts.get('equivalent', 0)} | {counts.get('timeout', 0)} | {counts.get('error', 0)} | {kill_rate} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="sample mutants and run their tests")
    p_run.add_argument("--per-package", type=int, default=0, help="mutants per package (default: the config's)")
    p_run.add_argument("--workers", type=int, default=2)
    p_run.add_argument("--fresh", action="store_true", help="forget earlier results of the same sample")
    p_run.add_argument("--rerun-survivors", action="store_true", help="run the survivors again (new tests)")
    p_run.add_argument("--no-baseline", action="store_true",
                       help="skip the unmutated run of each group (when its files were just run green); every "
                            "mutant then gets timeout_min seconds")
    p_report = sub.add_parser("report", help="kill rates per package and module, survivors")
    p_report.add_argument("--markdown", type=Path, help="write the report between the markers of this file")
    p_tests = sub.add_parser("tests", help="the test files a module's mutants run")
    p_tests.add_argument("modules", nargs="+")
    args = parser.parse_args(argv)
    config = load_config()
    if args.command == "run":
        return run(args, config)
    if args.command == "tests":
        for module in args.modules:
            print(module, " ".join(tests_for(module, config)))
        return 0
    text = report(config, read_results(REPO / config["results"]))
    if args.markdown:
        begin, end = "<!-- mutation-report -->", "<!-- /mutation-report -->"
        old = args.markdown.read_text()
        if begin not in old:
            raise SystemExit(f"{args.markdown} has no {begin} ... {end} markers to write between")
        head, rest = old.split(begin, 1)
        tmp = args.markdown.with_suffix(".tmp")
        tmp.write_text(head + begin + "\n" + text + end + rest.split(end, 1)[1])
        tmp.replace(args.markdown)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
