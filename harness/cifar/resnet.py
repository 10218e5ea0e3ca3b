"""He et al. (2016) CIFAR ResNets with option-A shortcuts, the architecture of the released
akamaster/pytorch_resnet_cifar10 weights (ResNet-20/32/44/56), loadable through the model registry.

Depth 6n+2: a 3x3 stem of 16 channels, three stages of n basic blocks (16, 32, 64 channels,
strides 1, 2, 2), global average pooling and a linear classifier. Option-A shortcuts have no
parameters: where a stage halves the resolution, the identity is subsampled 2x and zero-padded
to the wider channel count, so the state_dict holds exactly the weights of the paper's model.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import HarnessError

WEIGHTS_DATASET = "cifar10-resnet-weights"
WEIGHT_FILES = {
    20: "cifar/resnet_cifar10_weights/resnet20-12fca82f.th",
    32: "cifar/resnet_cifar10_weights/resnet32-d509ac18.th",
    44: "cifar/resnet_cifar10_weights/resnet44-014dd654.th",
    56: "cifar/resnet_cifar10_weights/resnet56-4bfd9763.th",
}
# The released models were trained and evaluated on 32x32 images normalised with ImageNet's
# mean and std (akamaster trainer.py), without resizing or cropping at test time.
PREPROCESSING = {"input_size": [3, 32, 32], "crop_pct": 1.0, "crop_mode": "center", "interpolation": "bilinear",
                 "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def _modules():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class BasicBlock(nn.Module):
        def __init__(self, in_planes: int, planes: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.pad = (planes - in_planes) // 2 if stride != 1 or in_planes != planes else None

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            shortcut = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
            return F.relu(out + shortcut)

    class CifarResNet(nn.Module):
        def __init__(self, depth: int, num_classes: int = 10):
            super().__init__()
            if depth < 8 or (depth - 2) % 6:
                raise HarnessError(f"a CIFAR ResNet has depth 6n+2 (20, 32, 44, 56, 110, ...), got {depth}")
            n = (depth - 2) // 6
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            stages, in_planes = [], 16
            for planes, stride in ((16, 1), (32, 2), (64, 2)):
                blocks = []
                for i in range(n):
                    blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                    in_planes = planes
                stages.append(nn.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3 = stages
            self.linear = nn.Linear(64, num_classes)
            self.num_classes = num_classes

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer3(self.layer2(self.layer1(out)))
            return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))

    return CifarResNet


def cifar_resnet(depth: int, num_classes: int = 10):
    return _modules()(depth, num_classes)


def load_cifar_resnet(spec, checkpoint=None):
    """Registry loader (``custom:harness.cifar.resnet:load_cifar_resnet``): the alias names the depth,
    ``resnet20-cifar`` ... ``resnet56-cifar``; weights from the manifest, or ``checkpoint``."""
    from ..data import resolve_file
    from ..data import sha256_file
    from ..models import LoadedModel, read_checkpoint

    depth = int(spec.alias.removeprefix("resnet").split("-")[0])
    model = cifar_resnet(depth)
    if checkpoint is not None:
        path, source = Path(checkpoint), f"checkpoint:{Path(checkpoint).resolve()}"
    else:
        if depth not in WEIGHT_FILES:
            raise HarnessError(f"no released CIFAR-10 weights for ResNet-{depth}; pass --checkpoint FILE")
        path = resolve_file(WEIGHTS_DATASET, WEIGHT_FILES[depth])
        source = f"manifest:{WEIGHTS_DATASET}/{Path(WEIGHT_FILES[depth]).name}"
    state = read_checkpoint(path)  # unwraps "state_dict" and DataParallel's "module." prefix
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise HarnessError(f"checkpoint {path} does not fit ResNet-{depth} (CIFAR, option A): "
                           f"{' '.join(str(exc).splitlines()[:3])}") from None
    model.eval()
    return LoadedModel(spec, inference_form(model), dict(PREPROCESSING), source, sha256_file(path),
                       model.num_classes, extra={"inference_form": INFERENCE_FORM})


INFERENCE_FORM = ("batch norm folded into the convolutions, channels_last weights; on the CPU each convolution "
                  "runs with its ReLU (and the residual sum) fused in one oneDNN call")


def inference_form(model):
    """The same function, cheaper on a CPU: each BatchNorm folded into its convolution (eval statistics)
    and channels_last weights, which makes oneDNN keep activations in NHWC through the network; on
    the CPU the convolutions also run with their ReLU and residual sum fused (oneDNN post-ops).
    About 1.6x faster than the eager NCHW model at batch 256 on two cores; outputs equal to 1e-5
    (and bit-identical between the fused and unfused CPU paths)."""
    import torch
    from torch.fx.experimental.optimization import fuse

    folded = fuse(model).to(memory_format=torch.channels_last).eval()
    return _modules_fast()(folded, model).eval()


def _modules_fast():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class FusedCifarResNet(nn.Module):
        """The folded network; on the CPU it calls oneDNN's fused convolution + ReLU (+ residual sum)
        directly, elsewhere (or where that operator is missing) the folded graph as it is."""

        def __init__(self, folded, eager):
            super().__init__()
            self.folded = folded
            self.num_classes = eager.num_classes
            self.blocks = [(f"{stage}.{i}", block.conv1.stride[0], block.pad)
                           for stage in ("layer1", "layer2", "layer3")
                           for i, block in enumerate(getattr(eager, stage))]
            ops = getattr(torch.ops, "mkldnn", None)
            self.onednn = bool(torch.backends.mkldnn.is_available() and ops is not None
                               and hasattr(ops, "_convolution_pointwise"))

        def forward(self, x):
            if x.device.type != "cpu" or not self.onednn or torch.is_grad_enabled():
                return self.folded(x)
            conv = torch.ops.mkldnn._convolution_pointwise
            one = [1, 1]
            m = self.folded
            x = x.contiguous(memory_format=torch.channels_last)
            x = conv(x, m.conv1.weight, m.conv1.bias, one, one, one, 1, "relu", [None], "")
            for name, stride, pad in self.blocks:
                block = m.get_submodule(name)
                out = conv(x, block.conv1.weight, block.conv1.bias, one, [stride, stride], one, 1, "relu", [None], "")
                shortcut = x if pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad))
                x = conv.binary(out, shortcut, block.conv2.weight, block.conv2.bias, one, one, one, 1, "add", None,
                                "relu", [None], "")
            return m.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return FusedCifarResNet
