"""How a model is run: preprocessing overrides, precision, memory format, graph form, decoding, device.

The options mirror timm's ``validate.py`` (``--img-size``, ``--crop-pct``, ``--interpolation``,
``--amp``, ``--channels-last``); each one that can change a prediction is part of the run's
configuration (:meth:`InferenceOptions.config`), so runs made differently never resume or skip
each other: a CPU run and a GPU run, or fp32 and fp16, are different runs.

Defaults, chosen per device:

- precision: ``fp16`` mixed precision (autocast) on CUDA, ``fp32`` on the CPU. ``bf16`` (autocast)
  runs on both; ``fp16`` on the CPU is refused (slow and not what anyone measures).
- memory format: channels_last on both (``--no-channels-last`` keeps NCHW). On the CPU, oneDNN then
  keeps activations NHWC through the network.
- graph: on the CPU in fp32, the channels_last model is traced and frozen by TorchScript
  (batch norm folded into the convolutions, convolution + activation fused by oneDNN), checked
  against the eager model on a first input; a model that cannot be traced runs eager. Either
  way the form is recorded (``graph``).
- decoding: PIL in the loader's workers (``decode="pil"``); ``decode="device"`` decodes JPEGs with
  ``torchvision.io.decode_jpeg`` on the run's device (batched nvjpeg on CUDA) and resizes there,
  with PIL as the fallback for other formats. Tensor resizing is not PIL's, so a few top-1
  predictions can differ from a PIL run (measured in ``benchmarks/results/gpu.md``); the decoder
  is part of the configuration.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

from .errors import HarnessError

PRECISIONS = ("fp32", "fp16", "bf16")
# timm's names (timm.data.transforms.str_to_interp_mode); "random" is a training-time choice.
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
DECODERS = ("pil", "device")


@dataclass(frozen=True)
class InferenceOptions:
    img_size: int | None = None  # square input side, as timm's --img-size
    crop_pct: float | None = None
    interpolation: str | None = None
    precision: str | None = None  # None: fp16 on CUDA, fp32 on the CPU
    channels_last: bool = True
    decode: str = "pil"

    def __post_init__(self):
        if self.img_size is not None and not 8 <= self.img_size <= 4096:
            raise HarnessError(f"--img-size {self.img_size}: expected a side between 8 and 4096 pixels")
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise HarnessError(f"--crop-pct {self.crop_pct}: expected a fraction in (0, 1], e.g. 0.875")
        if self.interpolation is not None and self.interpolation not in INTERPOLATIONS:
            raise HarnessError(f"--interpolation {self.interpolation!r}: expected one of {', '.join(INTERPOLATIONS)}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise HarnessError(f"--precision {self.precision!r}: expected one of {', '.join(PRECISIONS)}")
        if self.decode not in DECODERS:
            raise HarnessError(f"--decode {self.decode!r}: expected one of {', '.join(DECODERS)}")

    def preprocessing(self, model_default: dict) -> dict:
        """The model's pretrained preprocessing with the options' overrides."""
        cfg = dict(model_default)
        if self.img_size is not None:
            cfg["input_size"] = [cfg["input_size"][0], self.img_size, self.img_size]
        if self.crop_pct is not None:
            cfg["crop_pct"] = self.crop_pct
        if self.interpolation is not None:
            cfg["interpolation"] = self.interpolation
        return cfg

    def precision_on(self, device: str) -> str:
        """The precision a run on ``device`` uses: the asked one, checked, or the device's default."""
        cuda = device.startswith("cuda")
        precision = self.precision or ("fp16" if cuda else "fp32")
        if precision == "fp16" and not cuda:
            raise HarnessError("--precision fp16 (or --amp) is mixed precision for CUDA; on the CPU use --precision "
                               "bf16 or fp32 (the default)")
        return precision

    def config(self, device: str, graph: str) -> dict:
        """What goes into the run's configuration (and fingerprint) besides the preprocessing."""
        return {"precision": self.precision_on(device), "channels_last": self.channels_last,
                "device_type": device_type(device), "graph": graph, "decode": self.decode}


def device_type(device: str) -> str:
    """``cuda:1`` -> ``cuda``: the class of device, which is what can change predictions."""
    return device.split(":", 1)[0]


def pick_device(requested: str | None) -> str:
    """The device asked for, checked, or CUDA when there is one; asking for CUDA without one is one error."""
    import torch

    if requested:
        kind = device_type(requested)
        if kind not in ("cpu", "cuda"):
            raise HarnessError(f"device {requested!r}: expected cpu, cuda or cuda:N")
        if kind == "cuda":
            if not torch.cuda.is_available():
                raise HarnessError(f"device {requested!r} was asked for but no CUDA GPU is available "
                                   f"(torch {torch.__version__}); use --device cpu")
            index = int(requested.split(":", 1)[1]) if ":" in requested else 0
            if index >= torch.cuda.device_count():
                raise HarnessError(f"device {requested!r} was asked for but this machine has "
                                   f"{torch.cuda.device_count()} CUDA GPUs (cuda:0 to "
                                   f"cuda:{torch.cuda.device_count() - 1})")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_workers(device: str) -> int:
    """Decoding processes: on the CPU, half the cores (at least one), so decoding and the model's
    intra-op threads do not oversubscribe them; with a GPU, up to four."""
    cores = os.cpu_count() or 1
    return min(4, cores) if device.startswith("cuda") else max(1, min(4, cores // 2))


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's out-of-memory error, or the CPU allocator's (a plain RuntimeError)."""
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text
        or "DefaultCPUAllocator: not enough memory" in text)


def prepare_model(model, device: str, options: InferenceOptions, input_size, eager_only: bool = False):
    """The model on ``device`` in the form it runs in; returns (model, graph name).

    ``eager_only``: a model that comes in its own inference form (the CIFAR ResNets) is left as it is.
    """
    import torch

    model = model.to(device).eval()
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if eager_only or device != "cpu" or options.precision_on(device) != "fp32":
        return model, "eager"
    example = torch.rand(2, *input_size)
    if options.channels_last:
        example = example.contiguous(memory_format=torch.channels_last)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript's deprecation notices
            frozen = torch.jit.freeze(torch.jit.trace(model, example, check_trace=False))
            eager, traced = model(example[:1]), frozen(example[:1])
    except Exception:  # noqa: BLE001 - a model TorchScript cannot trace runs eager
        return model, "eager"
    # Folding batch norm reorders float sums: equal to about 1e-5, never a different function.
    if traced.shape != eager.shape or not torch.allclose(traced, eager, rtol=1e-3, atol=1e-3):
        return model, "eager"
    return frozen, "torchscript-frozen"


def autocast(device: str, precision: str):
    """The autocast context of a precision (disabled for fp32)."""
    import torch

    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    return torch.autocast(device_type=device_type(device), dtype=dtype or torch.float32, enabled=dtype is not None)
