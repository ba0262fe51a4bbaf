"""The camera's noise: its model (gain, offset, read noise) and a live estimate of it.

``CameraModel`` is what a calibration or the config gives; ``CameraEstimator`` finds
it from the stream itself when nothing is configured.
"""

from ._estimate import GAIN_KNOWN, CameraEstimate, CameraEstimator
from ._fit import fit_line
from ._floor import floor_pixels, half_step, readout_step, uncensor
from ._line_pattern import LinePattern
from ._masks import masked_pixels
from ._model import CameraModel
from ._noisy import NoisyPixels
from ._offset import offset_from_skew
from ._pattern import OffsetPattern, load_offset_pattern
from ._rows import RowNoise, remove_row_offsets
from ._samples import (
    darkest_level,
    flat_blocks,
    saturated_pixels,
    scene_moved,
    spatial_samples,
    still_ratio,
    temporal_samples,
)
from ._scan_phase import ScanPhase, aligned, unaligned, unaligned_pixels
from ._spikes import SPIKE_POLICIES, SpikePolicy, Spikes, fill_spikes, find_spikes, spike_fills

__all__ = [
    "GAIN_KNOWN",
    "SPIKE_POLICIES",
    "CameraEstimate",
    "CameraEstimator",
    "CameraModel",
    "LinePattern",
    "NoisyPixels",
    "OffsetPattern",
    "RowNoise",
    "ScanPhase",
    "SpikePolicy",
    "Spikes",
    "aligned",
    "darkest_level",
    "fill_spikes",
    "find_spikes",
    "fit_line",
    "flat_blocks",
    "floor_pixels",
    "half_step",
    "load_offset_pattern",
    "masked_pixels",
    "offset_from_skew",
    "readout_step",
    "remove_row_offsets",
    "saturated_pixels",
    "scene_moved",
    "spatial_samples",
    "spike_fills",
    "still_ratio",
    "temporal_samples",
    "unaligned",
    "unaligned_pixels",
    "uncensor",
]
