"""A simulated microscope: ground-truth calcium-imaging movies, camera noise, a sender.

``CalciumPhantom`` draws a clean movie in photo-electrons, ``apply_camera_noise`` turns
it into camera counts (Poisson-Gaussian), and :class:`Simulator` streams the frames over
ZeroMQ in protocol v1 exactly as an acquisition program would. Everything is
deterministic given a seed, so a receiver can score what it got against the truth.
"""

from ._camera import (
    CameraDtype,
    NoiseModel,
    apply_camera_noise,
    expected_camera,
    frame_rng,
    noise_std,
)
from ._phantom import CalciumPhantom, FramePool, PhantomConfig, calcium_kernel
from ._simulator import Simulator, SimulatorConfig, SimulatorReport

__all__ = [
    "CalciumPhantom",
    "CameraDtype",
    "FramePool",
    "NoiseModel",
    "PhantomConfig",
    "Simulator",
    "SimulatorConfig",
    "SimulatorReport",
    "apply_camera_noise",
    "calcium_kernel",
    "expected_camera",
    "frame_rng",
    "noise_std",
]
