"""The self-ensemble through the engine: mirrored passes, averaged, in model units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream.engine import CameraModel, Engine, SeriesContext, shipped_model_path

CAMERA = CameraModel(gain=1.0, offset=100.0, read_noise=3.0)
#: The mirrors of the 2- and 4-pass ensembles: (rows, columns) flipped.
MIRRORS = {
    2: [(False, False), (False, True)],
    4: [(False, False), (False, True), (True, True), (True, False)],
}


def mirror(a: np.ndarray, rows: bool, cols: bool) -> np.ndarray:
    return np.ascontiguousarray(a[:: -1 if rows else 1, :: -1 if cols else 1])


def scene(shape: tuple[int, int], photons: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An asymmetric scene (a ramp, a bright blob off-centre) and its noisy readout."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    clean = photons * (0.3 + xx / shape[1] + 2 * np.exp(-((yy - 10) ** 2 + (xx - 30) ** 2) / 40))
    noisy = CAMERA.offset + rng.poisson(clean) + rng.normal(0, CAMERA.read_noise, shape)
    return clean + CAMERA.offset, np.clip(noisy, 0, None).astype(np.uint16)


@pytest.fixture(scope="module")
def na_lite() -> Engine:
    with Engine(shipped_model_path("na-lite"), provider="cpu", warmup_shape=None) as engine:
        yield engine


@pytest.mark.parametrize("passes", [2, 4])
def test_passes_average_the_model_on_mirrored_frames(na_lite: Engine, passes: int) -> None:
    _, frame = scene((48, 64), 5.0)
    got = na_lite.denoise(frame, camera=CAMERA, passes=passes)
    each = [
        mirror(na_lite.denoise(mirror(frame, r, c), camera=CAMERA), r, c)
        for r, c in MIRRORS[passes]
    ]
    np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-5, atol=1e-3)
    assert not np.allclose(each[0], each[1], atol=1e-2)  # the mirrors do differ


def test_four_passes_are_closer_to_the_truth(na_lite: Engine) -> None:
    clean, frame = scene((64, 64), 3.0, seed=1)
    errors = [
        float(np.mean((na_lite.denoise(frame, camera=CAMERA, passes=p) - clean) ** 2))
        for p in (1, 4)
    ]
    assert errors[1] < errors[0]


def test_tiled_equals_whole_with_passes(na_lite: Engine) -> None:
    _, frame = scene((111, 95), 10.0)
    whole = na_lite.denoise(frame, camera=CAMERA, passes=4)
    with Engine(shipped_model_path("na-lite"), provider="cpu", tile=82, warmup_shape=None) as tiled:
        assert tiled.plan_for(frame.shape).n_tiles > 1
        np.testing.assert_allclose(
            tiled.denoise(frame, camera=CAMERA, passes=4), whole, rtol=1e-5, atol=2e-3
        )


def test_a_temporal_model_mirrors_its_history_with_the_frame() -> None:
    path = shipped_model_path("na-temporal")
    frames = [scene((48, 64), 5.0, seed=s)[1] for s in range(3)]
    # the network's passes (the lag step after their mean is not a mean of steps)
    with Engine(path, provider="cpu", warmup_shape=None, follow_lag=False) as engine:
        together = SeriesContext(CAMERA, blend="off")
        got = [together.denoise(engine, f, i, passes=2) for i, f in enumerate(frames)]
        plain, mirrored = SeriesContext(CAMERA, blend="off"), SeriesContext(CAMERA, blend="off")
        for i, f in enumerate(frames):
            a = plain.denoise(engine, f, i)
            b = mirror(mirrored.denoise(engine, mirror(f, False, True), i), False, True)
            np.testing.assert_allclose(got[i], (a + b) / 2, rtol=1e-5, atol=1e-3)


def test_non_finite_pixels_stay_non_finite(na_lite: Engine) -> None:
    _, frame = scene((48, 64), 5.0)
    frame = frame.astype(np.float32)
    frame[5, 7] = np.nan
    out = na_lite.denoise(frame, camera=CAMERA, passes=4)
    assert np.isnan(out[5, 7]) and np.isfinite(np.delete(out.ravel(), 5 * 64 + 7)).all()


@pytest.mark.parametrize("passes", [0, 3, 8, True])
def test_other_pass_counts_are_refused(identity_model: Path, passes: int) -> None:
    with (
        Engine(identity_model, provider="cpu", warmup_shape=None) as engine,
        pytest.raises(ValueError, match=r"expected ensemble passes in \(1, 2, 4\)"),
    ):
        engine.denoise(np.zeros((8, 8), np.float32), passes=passes)
