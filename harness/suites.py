"""Suites: the one contract every suite implements, and the registry that declares them.

A suite is a dataset (the sample space its keys live in, e.g. ``imagenet-val``), a task, the
label sets it ships, how its samples are keyed, the files it imports, the model runner it uses
(if any) and how a stored run is scored against a label set. Every suite subclasses
:class:`Suite` and so answers the same calls with the same signatures:

- ``ensure_label_sets(store, names=None)``: register its shipped label sets in the store
  (idempotent, from data resolved through ``harness.data``);
- ``key_of(name) -> key | None`` and ``sample_keys(store, label_set=None) -> list[str]``: the
  sample key of a file name or id, and the keys a label set labels;
- ``import_predictions(store, path, name, **options) -> run_id`` (formats in ``import_formats``);
- ``import_ground_truth(store, path, name, **options) -> label set`` (suites that read
  annotation files; the others ship their label sets and refuse);
- ``run(store, model, data_dir=None, **options) -> run_id`` (suites with a ``runner``);
- ``score(store, run_id, label_set=None, **options) -> ScoreResult``, and
  ``score_per_split(store, {label_set: run_id}, **options)`` for a per-split protocol;
- ``describe(result) -> str``: the text a person reads; ``import_report(store, run_id)``: what
  an import prints.

Each suite declares the options those calls take (``options``, by call); any other option is
refused here, by the contract, with one sentence naming what the suite does take.

The registry is data: name, task, dataset, description, default label set and where the object
lives (``"module:attribute"``), imported on first use, so listing suites imports nothing heavy.
A suite object takes its declared facts with ``**declared(name)``, so each is written once.
Adding a suite is one module plus one :func:`register_suite` call below (docs/extending.md).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from .errors import HarnessError
from .registry import Registry, load_object

TASKS = ("classification", "detection", "dense-captioning", "temporal-detection")
ACTIONS = {"configure": "configuration", "import": "imports", "import-labels": "ground-truth imports",
           "score": "scoring", "score-per-split": "per-split scoring", "run": "runs"}
# Options spelled on the command line other than --option-name (argparse dest -> flag).
FLAGS = {"label_set": "--labels", "iou_types": "--iou-type"}


def flag(option: str) -> str:
    """How the command line spells a contract option (``label_set`` -> ``--labels``)."""
    return FLAGS.get(option, "--" + option.replace("_", "-"))


@dataclass(frozen=True)
class SuiteDeclaration:
    name: str
    task: str
    dataset: str
    description: str
    default_label_set: str
    target: str  # "module:attribute" of the suite object, imported on first use
    alias_of: str | None = None  # a second name for a suite (cifar10.1 -> cifar10.1-v6)


SUITES: Registry[SuiteDeclaration] = Registry("suite")


def register_suite(name: str, *, task: str, dataset: str, description: str, default_label_set: str,
                   target: str, aliases: tuple[str, ...] = ()) -> SuiteDeclaration:
    if task not in TASKS:
        raise HarnessError(f"suite {name!r} declares task {task!r}; expected one of {', '.join(TASKS)}")
    declaration = SUITES.add(name, SuiteDeclaration(name, task, dataset, description, default_label_set, target))
    for alias in aliases:
        SUITES.add(alias, SuiteDeclaration(**{**asdict(declaration), "name": alias, "alias_of": name}))
    return declaration


def declared(name: str) -> dict[str, str]:
    """The declared facts a suite object is built with: name, dataset, description, default label set."""
    d = SUITES.get(name)
    return {"name": d.name, "dataset": d.dataset, "description": d.description,
            "default_label_set": d.default_label_set}


def suite_names(pattern: str = "*") -> list[str]:
    return SUITES.names(pattern)


def list_suites(pattern: str = "*") -> list[SuiteDeclaration]:
    """Declarations (aliases included) whose name matches ``pattern``; imports no suite module."""
    return [SUITES.get(n) for n in SUITES.names(pattern)]


def get_suite(name: str) -> "Suite":
    declaration = SUITES.get(name)
    suite = load_object(declaration.target)
    expected = declaration.alias_of or declaration.name
    if not isinstance(suite, Suite) or suite.name != expected or suite.task != declaration.task \
            or suite.dataset != declaration.dataset:
        raise HarnessError(f"suite {name!r} is declared as a {declaration.task} suite {expected!r} on "
                           f"{declaration.dataset!r}, but {declaration.target} is {suite!r}")
    return suite


class ScoreResult(dict):
    """What scoring a run gives, for every suite: a JSON-ready mapping of metric name to value plus
    the facts that qualify it: ``suite``, ``label_set``, ``metric_version`` and ``n`` (samples scored)."""

    REQUIRED = ("suite", "label_set", "metric_version", "n")

    def __init__(self, values: Mapping[str, Any]):
        super().__init__(values)
        missing = [k for k in self.REQUIRED if k not in self]
        if missing:
            raise HarnessError(f"a score result of suite {self.get('suite')!r} lacks {', '.join(missing)}")


class Suite:
    """The contract (see the module docstring). Subclasses set the class attributes and implement
    the ``_``-prefixed hooks; the public calls check options first and are the same for every suite."""

    task: ClassVar[str]
    runner: ClassVar[str | None] = None  # "classification" or "detection": how `run` runs a model
    import_formats: ClassVar[tuple[str, ...]] = ()  # file suffixes import_predictions reads
    # The options each call takes; a call missing here is one the suite does not offer.
    options: ClassVar[Mapping[str, tuple[str, ...]]] = {"import": ("model",), "score": ()}

    # Set per object from the registry (``**declared(name)``).
    name: str
    dataset: str
    description: str
    default_label_set: str
    label_sets: Mapping[str, Any]  # the shipped label sets by name (values say how each is built)
    # A shipped prediction file, (manifest, path): what the conformance test imports and scores.
    example: tuple[str, str] | None = None
    # Built per dataset (image-folder): `configure` gives the suite that runs, imports and scores.
    needs_configuration: ClassVar[bool] = False
    # Test sets whose images realbench does not ship (harness.shift) and fixed-size ones (CIFAR) say so:
    size: int | None = None  # samples in the published dataset, where it is fixed
    manifest: str | None = None  # data manifest of the images a run reads, where there is one
    layout_hint: str = ""  # how the class folders are named, for error messages
    output_classes: Callable[[], Any] | None = None  # the model outputs a run keeps (ImageNet-A/-R)

    # ----- options ---------------------------------------------------------------------
    def supports(self, action: str) -> bool:
        return action in self.options

    def check_options(self, action: str, options: Mapping[str, Any]) -> None:
        """Refuse, before any work, a call this suite does not offer or an option it does not take."""
        if action not in ACTIONS:
            raise HarnessError(f"unknown suite call {action!r}; expected one of {', '.join(ACTIONS)}")
        if not self.supports(action):
            raise HarnessError(self._unsupported(action))
        unknown = [o for o in options if o not in self.options[action]]
        if unknown:
            known = self.options[action]
            takes = f"it takes {', '.join(map(flag, known))}" if known else "it takes no options"
            raise HarnessError(f"suite {self.name} takes no {', '.join(map(flag, unknown))} option"
                               f"{'s' if len(unknown) > 1 else ''} for {ACTIONS[action]}; for {ACTIONS[action]} {takes}")

    def _unsupported(self, action: str) -> str:
        return {"run": f"suite {self.name} cannot run models, only import their predictions",
                "configure": f"suite {self.name} knows its classes and images; it takes no configuration "
                             "(--classes is for a suite built per dataset, such as image-folder)",
                "import-labels": f"suite {self.name} ships its label sets; it has no ground-truth file import",
                "score-per-split": f"suite {self.name} has no per-split protocol (--per-split); its runs are "
                                   "scored against one label set at a time",
                }.get(action, f"suite {self.name} has no {ACTIONS[action]}")

    # ----- the contract's calls ----------------------------------------------------------
    def configure(self, data_dir: str | Path | None = None, **options) -> "Suite":
        """The suite ready for ``data_dir``: itself, unless it is built per dataset (``image-folder`` takes
        ``classes``, its class list)."""
        if options or self.needs_configuration:
            self.check_options("configure", options)
        return self._configure(data_dir, **options)

    def import_predictions(self, store, path: str | Path, name: str, **options) -> str:
        """Store a prediction file made elsewhere as a run; returns the run id."""
        self.check_options("import", options)
        with store.import_lock():  # the stored-file check and the store, one process at a time
            return self._import_predictions(store, Path(path), name, **options)

    def import_ground_truth(self, store, path: str | Path, name: str, **options) -> str:
        """Register an annotation file of this suite's format as label set ``name``; returns the name."""
        self.check_options("import-labels", options)
        return self._import_ground_truth(store, Path(path), name, **options)

    def run(self, store, model: str, data_dir: str | Path | None = None, **options) -> str:
        """Run ``model`` on the suite's images (or ``data_dir``) and store every prediction; returns the run id."""
        self.check_options("run", options)
        return self._run(store, model, data_dir, **options)

    def score(self, store, run_id: str, label_set: str | None = None, **options) -> ScoreResult:
        """Metrics of a stored run against a label set (default: the suite's), from stored rows only."""
        self.check_options("score", options)
        return ScoreResult(self._score(store, run_id, label_set, **options))

    def score_per_split(self, store, runs: Mapping[str, str], **options) -> ScoreResult:
        """A per-split protocol: each run against its own label set (``{label set: run id}``), then averaged."""
        self.check_options("score-per-split", options)
        return ScoreResult(self._score_per_split(store, runs, **options))

    def describe(self, result: Mapping) -> str:
        """The text a person reads for a score result (default: the result as indented JSON)."""
        return json.dumps(result, indent=2, default=str)

    def import_report(self, store, run_id: str) -> str | None:
        """What an import prints after storing the run (default: nothing; scoring may be slow)."""
        return None

    # ----- samples and label sets --------------------------------------------------------
    def ensure_label_sets(self, store, names: list[str] | None = None) -> None:
        raise NotImplementedError

    def key_of(self, name: str) -> str | None:
        """The sample key of a file name, path or id; None when it is not a sample of this dataset."""
        raise NotImplementedError

    def sample_keys(self, store, label_set: str | None = None) -> list[str]:
        """The sample keys a label set (default: the suite's) labels, sorted as text."""
        raise NotImplementedError

    # ----- hooks -------------------------------------------------------------------------
    def _configure(self, data_dir, **options) -> "Suite":
        return self

    def _import_predictions(self, store, path: Path, name: str, **options) -> str:
        raise NotImplementedError

    def _import_ground_truth(self, store, path: Path, name: str, **options) -> str:
        raise HarnessError(self._unsupported("import-labels"))

    def _run(self, store, model: str, data_dir, **options) -> str:
        raise HarnessError(self._unsupported("run"))

    def _score(self, store, run_id: str, label_set: str | None, **options) -> Mapping:
        raise NotImplementedError

    def _score_per_split(self, store, runs: Mapping[str, str], **options) -> Mapping:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {self.task} on {self.dataset}>"


# ----- the registry ------------------------------------------------------------------------
_IMAGENET_VAL = "imagenet-val"
register_suite("imagenet", task="classification", dataset=_IMAGENET_VAL,
               description="ILSVRC-2012 validation, original labels (top-1/top-5)",
               default_label_set="imagenet-original", target="harness.imagenet:IMAGENET")
register_suite("real", task="classification", dataset=_IMAGENET_VAL,
               description="ILSVRC-2012 validation, ReaL labels (top-1 over the 46,837 labelled images)",
               default_label_set="real", target="harness.imagenet:REAL")
register_suite("imagenet-sample", task="classification", dataset="imagenet-sample",
               description="200 full-size ImageNet images, one per 5th class (labels from the file names)",
               default_label_set="imagenet-sample-original", target="harness.imagenet:IMAGENET_SAMPLE")
register_suite("cifar10", task="classification", dataset="cifar10-test",
               description="CIFAR-10 test set, original labels (10,000 images)",
               default_label_set="cifar10-original", target="harness.cifar:CIFAR10")
register_suite("cifar10h", task="classification", dataset="cifar10-test",
               description="CIFAR-10 test set, CIFAR-10H human label distributions (human agreement)",
               default_label_set="cifar10h", target="harness.cifar:CIFAR10H")
register_suite("cifar10.1-v4", task="classification", dataset="cifar10.1-v4",
               description="CIFAR-10.1 v4 (Recht et al. 2018), 2,021 new test images",
               default_label_set="cifar10.1-v4-original", target="harness.cifar:CIFAR10_1_V4")
register_suite("cifar10.1-v6", task="classification", dataset="cifar10.1-v6",
               description="CIFAR-10.1 v6 (Recht et al. 2018), 2,000 new test images",
               default_label_set="cifar10.1-v6-original", target="harness.cifar:CIFAR10_1_V6",
               aliases=("cifar10.1",))
register_suite("cifar100", task="classification", dataset="cifar100-test",
               description="CIFAR-100 test set, original fine labels",
               default_label_set="cifar100-original", target="harness.cifar:CIFAR100")
register_suite("coco", task="detection", dataset="coco",
               description="COCO detection, segmentation and keypoints (official numbers via ultrafast-pycocotools)",
               default_label_set="coco-val2014-100", target="harness.detection.suite:COCO")
register_suite("lvis", task="detection", dataset="lvis",
               description="LVIS v1 detection and segmentation (federated: AP, APr/c/f, AR@300)",
               default_label_set="lvis-val-100", target="harness.detection.suite:LVIS")
register_suite("anet-captions", task="dense-captioning", dataset="activitynet-captions",
               description="ActivityNet Captions dense captioning: densevid_eval BLEU/METEOR/ROUGE-L/CIDEr-D "
                           "at tIoU 0.3/0.5/0.7/0.9, localisation precision/recall",
               default_label_set="anet-captions-val_1+anet-captions-val_2",
               target="harness.activitynet.suites:ANET_CAPTIONS")
register_suite("anet-detection", task="temporal-detection", dataset="activitynet-v1.3",
               description="ActivityNet v1.3 temporal action detection (mAP at tIoU 0.5:0.05:0.95) and "
                           "proposals (AR@AN, AUC)",
               default_label_set="anet-captions-val_1", target="harness.activitynet.suites:ANET_DETECTION")
_V2 = "ImageNetV2 {} (Recht et al. 2019), 10,000 images"
for _name, _description in (
        ("imagenetv2-matched-frequency", _V2.format("matched-frequency")),
        ("imagenetv2-threshold0.7", _V2.format("threshold-0.7")),
        ("imagenetv2-top-images", _V2.format("top-images")),
        ("imagenet-sketch", "ImageNet-Sketch (Wang et al. 2019), 50,889 sketches of the 1,000 classes"),
        ("imagenet-a", "ImageNet-A (Hendrycks et al. 2021), 7,500 images of 200 classes; logits restricted to them"),
        ("imagenet-r", "ImageNet-R (Hendrycks et al. 2021), 30,000 renditions of 200 classes; logits restricted to "
                       "them")):
    register_suite(_name, task="classification", dataset=_name, description=_description, default_label_set=_name,
                   target=f"harness.shift:{_name.upper().replace('-', '_').replace('_THRESHOLD0.7', '_THRESHOLD')}")
register_suite("image-folder", task="classification", dataset="image-folder-<name>",
               description="any folder of class sub-folders plus a class list (--classes FILE); keys are relative "
                           "paths", default_label_set="image-folder-<name>", target="harness.shift:IMAGE_FOLDER")
