"""The inference engine: an ONNX model run on frames of any size, on CPU or GPU.

:class:`Engine` loads a model that follows the model contract (``ModelMetadata``),
picks a usable ONNX Runtime provider, cuts frames into overlapping tiles
(``plan_tiles``) and blends them back. The shipped models live in ``models/`` beside
their cards. Importing this package does not import onnxruntime; creating an engine does.
"""

from ..camera import CameraModel
from ._binned import BINNED_PASS_SHARE, binned_output
from ._blend import BLEND_SETTINGS, BlendChoice, BlendSetting, apply_blend
from ._engine import Engine, FrameReport, not_an_onnx_model
from ._ensemble import PASSES as ENSEMBLE_PASSES
from ._ensemble import check_passes
from ._gpu import (
    GpuConfig,
    TrtProfile,
    cuda_options,
    tensorrt_options,
    trt_cache_key,
    trt_profile,
    use_fp16,
    user_cache_dir,
)
from ._inputs import (
    HDR_RATIO,
    block_levels,
    defect_spikes,
    dim_part_level,
    fill_noise_map,
    frame_scale,
    model_input,
    peak_snr,
    update_running_mean,
)
from ._model_id import graph_hash
from ._model_meta import (
    BAND_KEYS,
    DEFAULT_RECEPTIVE_FIELD,
    FORMAT_VERSION,
    PREFIX,
    ModelMetadata,
)
from ._motion import lined_up, scene_shift
from ._pixels import LARGEST_PIXEL, beyond_range, count_non_finite, finite_copy, to_dtype
from ._preload import FRAME_PATH_MODULES, preload_frame_path
from ._providers import (
    ORT_NAMES,
    ProviderChoice,
    probe_providers,
    select_providers,
    short_name,
    usable_providers,
)
from ._series import SeriesContext
from ._series_camera import SeriesCamera
from ._shipped import (
    CPU_DEFAULT,
    GPU_DEFAULT,
    RETIRED,
    default_model_path,
    model_file,
    model_id_for,
    shipped_model_names,
    shipped_model_path,
)
from ._still_means import StillMeans
from ._tiling import (
    MAX_BORDER,
    TilePlan,
    TileWorkspace,
    blend_tiles,
    border_for,
    check_tiling,
    default_tile_overlap,
    gather_tiles,
    pad_canonical,
    plan_tiles,
    reflect_pad_into,
)

__all__ = [
    "BAND_KEYS",
    "BINNED_PASS_SHARE",
    "BLEND_SETTINGS",
    "CPU_DEFAULT",
    "DEFAULT_RECEPTIVE_FIELD",
    "ENSEMBLE_PASSES",
    "FORMAT_VERSION",
    "FRAME_PATH_MODULES",
    "GPU_DEFAULT",
    "HDR_RATIO",
    "LARGEST_PIXEL",
    "MAX_BORDER",
    "ORT_NAMES",
    "PREFIX",
    "RETIRED",
    "BlendChoice",
    "BlendSetting",
    "CameraModel",
    "Engine",
    "FrameReport",
    "GpuConfig",
    "ModelMetadata",
    "ProviderChoice",
    "SeriesCamera",
    "SeriesContext",
    "StillMeans",
    "TilePlan",
    "TileWorkspace",
    "TrtProfile",
    "apply_blend",
    "beyond_range",
    "binned_output",
    "blend_tiles",
    "block_levels",
    "border_for",
    "check_passes",
    "check_tiling",
    "count_non_finite",
    "cuda_options",
    "default_model_path",
    "default_tile_overlap",
    "defect_spikes",
    "dim_part_level",
    "fill_noise_map",
    "finite_copy",
    "frame_scale",
    "gather_tiles",
    "graph_hash",
    "lined_up",
    "model_file",
    "model_id_for",
    "model_input",
    "not_an_onnx_model",
    "pad_canonical",
    "peak_snr",
    "plan_tiles",
    "preload_frame_path",
    "probe_providers",
    "reflect_pad_into",
    "scene_shift",
    "select_providers",
    "shipped_model_names",
    "shipped_model_path",
    "short_name",
    "tensorrt_options",
    "to_dtype",
    "trt_cache_key",
    "trt_profile",
    "update_running_mean",
    "usable_providers",
    "use_fp16",
    "user_cache_dir",
]
