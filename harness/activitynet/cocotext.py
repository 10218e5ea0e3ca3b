"""The Java halves of the COCO caption metrics, driven in bulk.

pycocoevalcap starts the Stanford PTB tokenizer once per call and talks to
METEOR one line at a time (write, flush, wait for the answer).  The dense
captioning scorer needs both for tens of thousands of sentences, so here the
tokenizer runs once over all distinct sentences, and one METEOR process gets
its requests pipelined: a writer thread streams every request while the
caller reads the answers, in order.  The jars, their command lines and the
text sent to them are pycocoevalcap's own, so the numbers are the same.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import HarnessError

try:
    from pycocoevalcap.tokenizer import ptbtokenizer as _ptb
    from pycocoevalcap.meteor import meteor as _meteor
except ImportError:  # pragma: no cover - a dependency of the project
    _ptb = _meteor = None

PUNCTUATIONS = frozenset(_ptb.PUNCTUATIONS) if _ptb else frozenset()


def _jar(module, name: str) -> Path:
    if module is None:
        raise HarnessError("pycocoevalcap is not installed; install the project's dependencies "
                           "(`pip install -e .`) to score captions")
    path = Path(module.__file__).resolve().parent / name
    if not path.is_file():
        raise HarnessError(f"{path} is missing from the pycocoevalcap installation; reinstall pycocoevalcap")
    return path


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise HarnessError("`java` is not on PATH; METEOR and the PTB tokenizer need a Java runtime "
                           "(e.g. `apt-get install default-jre-headless`)")
    return java


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """Lower-cased PTB tokens joined by spaces, punctuation removed, one string per sentence.

    Same jar, flags and punctuation list as ``pycocoevalcap``'s ``PTBTokenizer``.
    The tokenizer keeps one output line per input line (``-preserveLines``), so
    all sentences go through one JVM.
    """
    if not sentences:
        return []
    jar = _jar(_ptb, _ptb.STANFORD_CORENLP_3_4_1_JAR)
    text = "\n".join(s.replace("\n", " ") for s in sentences)
    with tempfile.TemporaryDirectory(prefix="realbench-ptb-") as tmp:
        src = Path(tmp) / "sentences.txt"
        src.write_bytes(text.encode())
        proc = subprocess.run(
            [_java(), "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer",
             "-preserveLines", "-lowerCase", str(src)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode != 0:
        raise HarnessError(f"the PTB tokenizer failed (exit {proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace')[-500:]}")
    lines = proc.stdout.decode().split("\n")
    if len(lines) < len(sentences):
        raise HarnessError(f"the PTB tokenizer returned {len(lines)} lines for {len(sentences)} sentences")
    return [" ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS)
            for line in lines[: len(sentences)]]


class MeteorSession:
    """One METEOR 1.5 process (``-stdio -l en -norm``, as pycocoevalcap runs it), fed in bulk."""

    def __init__(self) -> None:
        jar = _jar(_meteor, _meteor.METEOR_JAR)
        self._err = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [_java(), "-jar", "-Xmx2G", str(jar), "-", "-", "-stdio", "-l", "en", "-norm"],
            cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err)

    def __enter__(self) -> "MeteorSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._err.close()

    def _exchange(self, requests: list[str], answers_per_request: Iterable[int]) -> list[str]:
        """Send every request line while reading the answers, so neither pipe fills up."""
        failure: list[BaseException] = []

        def write() -> None:
            try:
                for line in requests:
                    self._proc.stdin.write(line.encode() + b"\n")
                self._proc.stdin.flush()
            except BaseException as exc:  # reported by the reader below
                failure.append(exc)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        out = []
        for n in answers_per_request:
            for _ in range(n):
                line = self._proc.stdout.readline()
                if not line:
                    writer.join()
                    self._err.seek(0)
                    raise HarnessError("METEOR stopped answering: "
                                       f"{self._err.read().decode(errors='replace')[-500:] or failure}")
                out.append(line.decode().strip())
        writer.join()
        return out

    def stats(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        """METEOR sufficient statistics of each (hypothesis, reference) pair of tokenized text."""
        requests = []
        for hyp, ref in pairs:
            hyp = hyp.replace("|||", "").replace("  ", " ")  # what pycocoevalcap sends
            requests.append(" ||| ".join(("SCORE", ref, hyp)))
        return self._exchange(requests, [1] * len(requests))

    def corpus_scores(self, groups: Sequence[Sequence[str]]) -> list[float]:
        """METEOR of each group of pairs (given by their statistics), as ``Meteor.compute_score`` returns."""
        requests = ["EVAL ||| " + " ||| ".join(g) for g in groups]
        answers = self._exchange(requests, [len(g) + 1 for g in groups])
        scores, pos = [], 0
        for g in groups:
            pos += len(g) + 1
            scores.append(float(answers[pos - 1]))
        return scores
