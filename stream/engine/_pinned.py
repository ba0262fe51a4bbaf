"""Page-locked (pinned) host buffers for the copies to and from the GPU.

A copy from pageable memory goes through a driver bounce buffer; from page-locked
memory the GPU reads it by DMA, about twice as fast for a frame. The engine's host
staging buffers (tile batches) are registered in place with ``cudaHostRegister`` from
the CUDA runtime that onnxruntime-gpu already loads, so nothing new is installed and
no torch is needed. Best effort: without the runtime, buffers stay pageable (logged).
"""

from __future__ import annotations

import ctypes
import logging
import sys
from functools import cache

import numpy as np

log = logging.getLogger(__name__)

_RUNTIMES = (
    ("cudart64_12.dll", "cudart64_110.dll")
    if sys.platform == "win32"
    else ("libcudart.so.12", "libcudart.so.11.0", "libcudart.so")
)


@cache
def _cudart() -> ctypes.CDLL | None:
    for name in _RUNTIMES:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def pin(array: np.ndarray) -> bool:
    """Page-lock ``array``'s memory in place; True when it is now pinned."""
    lib = _cudart()
    if lib is None or array.nbytes == 0:
        return False
    rc = lib.cudaHostRegister(ctypes.c_void_p(array.ctypes.data), ctypes.c_size_t(array.nbytes), 0)
    if rc != 0:
        log.debug("cudaHostRegister failed (cudaError %d): buffer stays pageable", rc)
        return False
    return True


def unpin(array: np.ndarray) -> None:
    lib = _cudart()
    if lib is not None:
        lib.cudaHostUnregister(ctypes.c_void_p(array.ctypes.data))
