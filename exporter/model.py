"""DnCNN (Zhang et al. 2017, "Beyond a Gaussian denoiser") with residual learning.

The body is conv+ReLU, ``depth - 2`` x (conv + BatchNorm + ReLU), conv: it predicts the
*noise*, and :meth:`DnCNN.forward` returns ``x - noise`` so an exported graph outputs
the denoised image directly (the engine contract). Convolutions zero-pad ("same"), so
any frame size works; the engine discards a margin of at least the receptive-field
radius at tile borders, so the zero padding never reaches the output it keeps.

Two extensions make the noise-adaptive models (the ``na-*`` presets):

- **More input channels** (the model contract): the ``frames`` most recent frames of a
  series, oldest first, then optionally the noise map (:mod:`stream.engine` defines
  both). The residual is taken from the current frame, the last frame channel.
- **Pixel unshuffle** (FFDNet, Zhang et al. 2018): the body runs on the ``unshuffle``
  x ``unshuffle`` polyphase components at reduced resolution and the noise comes back
  through a pixel shuffle. Each layer then costs a quarter per output pixel (for 2) and
  the receptive field doubles; the price is that the output depends on the position of
  the 2 x 2 grid, so the engine cuts tiles at even offsets (``alignment`` 2).

Presets
-------
``dncnn20``
    The paper's blind model: depth 20, width 64 (667 073 parameters, receptive field 41).
``lite``
    Depth 8, width 16 (14 321 parameters, receptive field 17), chosen by measurement to
    run a 256 x 256 frame in about 17-21 ms in ONNX Runtime on a 2-core CPU: 30 fps
    allows 33 ms, and the rest is headroom for the pipeline around the model, a noisy
    shared machine and CPUs without AVX-512 (the one measured has it). Measured with
    ``python -m benchmarks.model_candidates --rounds 60`` (the real
    ``stream.engine.Engine(provider="cpu")``, 256 x 256 float32 frames, opset 17,
    batch norm folded by ORT; Xeon Sapphire Rapids, 2 vCPUs, onnxruntime 1.31, torch
    2.13). The machine was shared with other jobs, so candidates ran in interleaved
    rounds of 10 frames, and "quiet" is the median over the rounds in which other
    processes used < 10 % of a core (41-44 of 60 rounds); "all" is the median over all
    600 frames and p90 their 90th percentile, in ms per frame::

        depth width   params   RF   quiet    all    p90
            5    16    7 313   11    11.8   16.2   34.4
            6    16    9 649   13    12.7   19.5   41.6
            7    16   11 985   15    14.9   18.2   49.5
            8    16   14 321   17    17.3   20.7   56.5   <- lite
           10    16   18 993   21    22.6   27.1   75.6
            6    24   21 385   13    36.0   37.8   85.2
            8    24   31 849   17    51.8   52.8  118.5
            6    32   37 729   13    35.8   36.7   84.0
            8    32   56 289   17    51.7   52.9  119.6
           20    64  667 073   41   622.9  622.9  890.4   dncnn20 (8 rounds)

    Depth costs linearly and buys receptive field (context, which matters most for
    denoising); width costs quadratically, and ORT's NCHWc kernels work in blocks of 16
    channels with AVX-512, so width 24 measured as slowly as 32. Hence narrow (16) and
    as deep as the budget allows. Latency is through the whole engine (normalise,
    reflect-pad, run, crop); the reflected border was the receptive-field radius when
    these were measured, so deeper models also paid for a larger input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from torch import Tensor, nn
from torch.nn import functional as F

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a DnCNN: ``depth`` conv layers of ``width`` channels, square kernel.

    ``frames`` input frames (1: spatial), plus a noise-map channel when ``noise_map``,
    plus the series' running mean when ``running_mean`` (its decay) is above 0;
    ``unshuffle`` 1 (full resolution) or 2 (FFDNet-style polyphase body).
    """

    depth: int
    width: int
    kernel: int = 3
    frames: int = 1
    noise_map: bool = False
    unshuffle: int = 1
    running_mean: float = 0.0

    def __post_init__(self) -> None:
        if not 2 <= self.depth <= 200:
            raise ValueError(f"expected depth 2..200 (first and last conv), got {self.depth}")
        if not 1 <= self.width <= 1024:
            raise ValueError(f"expected width 1..1024 channels, got {self.width}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"expected an odd kernel >= 1 (a centred window), got {self.kernel}")
        if not 1 <= self.frames <= 16:
            raise ValueError(f"expected 1..16 input frames, got {self.frames}")
        if self.unshuffle not in (1, 2):
            raise ValueError(f"expected unshuffle 1 or 2, got {self.unshuffle}")
        if not 0 <= self.running_mean < 1:
            raise ValueError(f"expected a running-mean decay in [0, 1), got {self.running_mean}")

    @property
    def in_channels(self) -> int:
        return self.frames + int(self.noise_map) + int(self.running_mean > 0)


PRESETS: dict[str, ModelSpec] = {
    "dncnn20": ModelSpec(depth=20, width=64),
    "lite": ModelSpec(depth=8, width=16),
    # noise-adaptive: frame(s) + noise map, body at half resolution
    "na-lite": ModelSpec(depth=12, width=32, noise_map=True, unshuffle=2),
    "na-temporal": ModelSpec(depth=12, width=32, frames=3, noise_map=True, unshuffle=2),
    "na-large": ModelSpec(depth=17, width=64, frames=3, noise_map=True, unshuffle=2),
}


class DnCNN(nn.Module):
    """Residual DnCNN: ``forward(x) = x - predict_noise(x)`` on ``[N, 1, H, W]`` tensors.

    The last conv starts at zero, so an untrained model is the identity: training
    begins from "do nothing" (the noisy input's PSNR) rather than from a random image,
    which keeps the first steps of residual learning stable without tuning.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        k, w, pad = spec.kernel, spec.width, spec.kernel // 2
        r2 = spec.unshuffle**2
        layers: list[nn.Module] = [
            nn.Conv2d(spec.in_channels * r2, w, k, padding=pad, bias=True),
            nn.ReLU(True),
        ]
        for _ in range(spec.depth - 2):
            # no conv bias before BatchNorm: BN's shift makes it redundant
            layers += [nn.Conv2d(w, w, k, padding=pad, bias=False), nn.BatchNorm2d(w)]
            layers.append(nn.ReLU(True))
        layers.append(nn.Conv2d(w, r2, k, padding=pad, bias=True))
        self.body = nn.Sequential(*layers)
        self._init_weights()

    def _init_weights(self) -> None:
        convs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        for conv in convs[:-1]:
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        nn.init.zeros_(convs[-1].weight)
        assert convs[-1].bias is not None
        nn.init.zeros_(convs[-1].bias)

    def predict_noise(self, x: Tensor) -> Tensor:
        """The residual: the network's estimate of the noise in the current frame.

        With ``unshuffle`` 2, odd sizes are reflect-padded by one row or column at the
        end (inside the graph) and the result is cropped back.
        """
        r = self.spec.unshuffle
        if r == 1:
            out: Tensor = self.body(x)
            return out
        h, w = x.shape[-2], x.shape[-1]
        padded = F.pad(x, (0, w % r, 0, h % r), mode="reflect")
        noise = F.pixel_shuffle(self.body(F.pixel_unshuffle(padded, r)), r)
        return noise[..., :h, :w]

    def forward(self, x: Tensor) -> Tensor:
        """The denoised current frame, ``frame - predict_noise(x)``, ``[N, 1, H, W]``."""
        k = self.spec.frames
        current = x if self.spec.in_channels == 1 else x[:, k - 1 : k]  # 1 channel: plain graph
        return current - self.predict_noise(x)


def build_model(preset: str | ModelSpec) -> DnCNN:
    """A freshly initialised DnCNN from a preset name or an explicit spec."""
    if isinstance(preset, ModelSpec):
        return DnCNN(preset)
    if preset not in PRESETS:
        raise ValueError(f"expected a preset in {sorted(PRESETS)}, got {preset!r}")
    return DnCNN(PRESETS[preset])


def receptive_field(model: nn.Module) -> int:
    """Receptive field (pixels, odd) of a chain of convolutions, from its conv layers.

    Walks the ``Conv2d`` modules in registration order, which for a sequential network
    such as DnCNN is the order data flows through them: each adds ``(k - 1) * dilation``
    input pixels times the product of the strides before it. Non-square kernels count
    by their larger side, because the metadata stores one (square) field. A pixel
    unshuffle by r multiplies the field by r, and an output pixel's r x r block reaches
    ``r - 1`` pixels further on one side: rounded up to a centred, odd window.
    """
    field, jump = 1, 1
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            k = max(int(s) for s in module.kernel_size)
            d = max(int(s) for s in module.dilation)
            field += (k - 1) * d * jump
            jump *= max(int(s) for s in module.stride)
    r = model.spec.unshuffle if isinstance(model, DnCNN) else 1
    if r > 1:  # radius (field - 1) / 2 coarse pixels is r times that, plus r - 1 fine ones
        field = r * (field - 1) + 2 * (r - 1) + 1
    return field


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
