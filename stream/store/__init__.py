"""One Zarr v3 store per series: raw and denoised frames, timestamps, validity flags.

:class:`SeriesStore` writes (one thread owns a store) with tensorstore;
:func:`summarize_store` and :func:`is_series_store` read metadata only, with zarr-python.
``store_path`` says where a series lives, ``ARRAY_PATHS`` where each array is inside it
(the images ``raw`` and ``clean`` are OME-Zarr images of their own).
:func:`open_recording` and :class:`RecordingWriter` read and write recordings on disk
frame by frame (``.npy``, TIFF, Zarr; a series store's raw frames) for
``deepdenoise denoise``. :class:`RejectedStore` keeps the raw pixels of frames the
service rejected but could read (``series_mismatch``, ``duplicate``) apart, under
``rejected_path``; :func:`read_rejected` reads them back. :func:`read_frame_meta` reads
the ``meta`` each frame carried, kept beside a series store's arrays.
"""

from ._config import MAX_FRAMES_PER_SHARD, StoreConfig
from ._frame_meta import FRAME_META_FILE, read_frame_meta
from ._layout import PATHS as ARRAY_PATHS
from ._lock import lock_store, unlock_store
from ._recording import Recording, RecordingWriter, open_recording
from ._rejected import (
    RejectedFrames,
    RejectedStore,
    is_rejected_store,
    read_rejected,
    rejected_path,
    rejected_with_meta,
    summarize_rejected,
)
from ._series import (
    MAX_INDEX,
    TARGET_SHARD_BYTES,
    SeriesStore,
    check_store_folder,
    clear_left_overs,
    store_path,
)
from ._summary import (
    closed_totals,
    is_series_store,
    left_open,
    recorded_frames,
    stored_series,
    summarize_store,
)

__all__ = [
    "ARRAY_PATHS",
    "FRAME_META_FILE",
    "MAX_FRAMES_PER_SHARD",
    "MAX_INDEX",
    "TARGET_SHARD_BYTES",
    "Recording",
    "RecordingWriter",
    "RejectedFrames",
    "RejectedStore",
    "SeriesStore",
    "StoreConfig",
    "check_store_folder",
    "clear_left_overs",
    "closed_totals",
    "is_rejected_store",
    "is_series_store",
    "left_open",
    "lock_store",
    "open_recording",
    "read_frame_meta",
    "read_rejected",
    "recorded_frames",
    "rejected_path",
    "rejected_with_meta",
    "store_path",
    "stored_series",
    "summarize_rejected",
    "summarize_store",
    "unlock_store",
]
