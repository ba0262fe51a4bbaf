"""Generated training data: clean scenes of many kinds, random cameras, model inputs.

Never real images: every scene is synthesised (calcium imaging from ``stream.sim``,
plus generic structure), every readout drawn from a Poisson-Gaussian camera.
"""

from ._pairs import PairGenerator, SynthConfig, SynthDataset, describe, synth_validation_set
from ._scenes import GENERIC, calcium_movie, generic_movie, scene_movie

__all__ = [
    "GENERIC",
    "PairGenerator",
    "SynthConfig",
    "SynthDataset",
    "calcium_movie",
    "describe",
    "generic_movie",
    "scene_movie",
    "synth_validation_set",
]
