"""ROIs from label images (.npy, TIFF, Zarr) and suite2p, and their means."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from stream import RoiError
from stream.traces import load_rois, rois_from_labels, rois_from_suite2p


def _labels() -> np.ndarray:
    labels = np.zeros((20, 30), dtype=np.uint16)
    labels[1:4, 1:5] = 9
    labels[10:15, 20:28] = 2
    labels[19, 29] = 9
    return labels


# float32 frames (denoised) are summed in float32 by a sparse product; others exactly
@pytest.mark.parametrize(("dtype", "rtol"), [(np.float32, 1e-6), (np.float64, 1e-12),
                                             (np.uint16, 1e-12)])  # fmt: skip
def test_label_image_means_match_numpy(dtype: type, rtol: float) -> None:
    labels = _labels()
    rois = rois_from_labels(labels)
    assert rois.labels.tolist() == [2, 9] and rois.counts.tolist() == [40, 13]
    frame = np.random.default_rng(0).normal(1000, 200, labels.shape).astype(dtype)
    means = rois.bind(labels.shape).means(frame)
    expected = [frame[labels == v].astype(np.float64).mean() for v in (2, 9)]
    assert means.dtype == np.float64
    np.testing.assert_allclose(means, expected, rtol=rtol)
    np.testing.assert_array_equal(rois.to_labels(), labels)


@pytest.mark.parametrize("dtype", ["<f4", "<f8"])
@pytest.mark.parametrize("pixel", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_make_nan_means_of_their_roi_only(dtype: str, pixel: float) -> None:
    """PROTOCOL.md: a ROI with a non-finite pixel has NaN means (an infinite pixel made
    an infinite raw mean: a user's trial)."""
    labels = _labels()
    frame = np.ones(labels.shape, dtype=dtype)
    frame[12, 22] = pixel
    means = rois_from_labels(labels).bind(labels.shape).means(frame)
    assert np.isnan(means[0]) and means[1] == 1.0


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".zarr"])
def test_files_of_each_format_load_the_same(tmp_path: Path, suffix: str) -> None:
    labels = _labels()
    path = tmp_path / f"labels{suffix}"
    if suffix == ".npy":
        np.save(path, labels)
    elif suffix == ".tif":
        tifffile.imwrite(path, labels)
    else:
        zarr.create_array(str(path), data=labels[None, None, None])  # OME-style 5-D
    rois = load_rois(path)
    np.testing.assert_array_equal(rois.to_labels(), labels)
    assert rois.shape == labels.shape


def test_suite2p_stat_skips_overlaps_and_non_cells(tmp_path: Path) -> None:
    def roi(ys: list[int], xs: list[int]) -> dict:
        return {"ypix": np.array(ys), "xpix": np.array(xs), "lam": np.ones(len(ys))}

    stat = np.array(
        [roi([1, 1, 2], [1, 2, 2]), roi([2, 3], [2, 3]), roi([5, 5], [5, 6])], dtype=object
    )
    np.save(tmp_path / "stat.npy", stat, allow_pickle=True)
    rois = load_rois(tmp_path / "stat.npy")
    assert rois.labels.tolist() == [1, 2, 3]  # suite2p ROI i is label i + 1
    assert rois.counts.tolist() == [2, 1, 2]  # pixel (2, 2) is shared: in neither
    assert rois.shape is None  # no ops.npy: fits any frame holding it
    rois.bind((6, 7))
    with pytest.raises(RoiError, match="outside the 4x4 frames"):
        rois.bind((4, 4))
    np.save(tmp_path / "iscell.npy", np.array([[1, 0.9], [0, 0.2], [1, 0.8]]))
    np.save(tmp_path / "ops.npy", {"Ly": 10, "Lx": 12}, allow_pickle=True)
    cells = load_rois(tmp_path / "stat.npy")
    # the overlap is suite2p's, among every ROI detected: (2, 2) stays out of ROI 1
    # although ROI 2, which shares it, is not a cell
    assert cells.labels.tolist() == [1, 3] and cells.counts.tolist() == [2, 2]
    assert cells.shape == (10, 12)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.ones((4, 4), np.float32), "integer label image"),
        (np.full((4, 4), -1, np.int16), "labels >= 0"),
        (np.zeros((4, 4), np.uint8), "no ROI"),
        (np.ones((2, 4, 4), np.uint8), "2-D label image"),
        (np.array([[2**63 + 5, 10]], np.uint64), r"labels below 2\*\*63"),
    ],
)
def test_bad_label_images_say_what_is_wrong(image: np.ndarray, message: str) -> None:
    with pytest.raises(RoiError, match=message):
        rois_from_labels(image)


def test_bad_files_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(RoiError, match="does not exist"):
        load_rois(tmp_path / "nothing.npy")
    (tmp_path / "rois.csv").write_text("1,2\n")
    with pytest.raises(RoiError, match=r"expected ROIs as \.npy"):
        load_rois(tmp_path / "rois.csv")
    (tmp_path / "broken.npy").write_bytes(b"not numpy")  # it was taken for a pickle
    with pytest.raises(RoiError, match=r"broken\.npy is not a NumPy \.npy file"):
        load_rois(tmp_path / "broken.npy")
    (tmp_path / "cut.npy").write_bytes(b"\x93NUMPY\x01")  # a header cut short
    with pytest.raises(RoiError, match="cannot read ROIs"):
        load_rois(tmp_path / "cut.npy")
    plane = tmp_path / "suite2p" / "plane0"  # the folder, not its stat.npy
    plane.mkdir(parents=True)
    np.save(plane / "stat.npy", np.array([{"ypix": [1], "xpix": [1]}], dtype=object))
    with pytest.raises(RoiError, match=r"plane0 is a folder holding stat\.npy .* give .*stat"):
        load_rois(plane)
    zarr.create_group(str(tmp_path / "group.zarr"))
    with pytest.raises(RoiError, match="is a Zarr group"):
        load_rois(tmp_path / "group.zarr")
    with pytest.raises(RoiError, match="'ypix' and 'xpix'"):
        rois_from_suite2p([{"ypix": [1]}])


def test_rois_drawn_for_another_shape_do_not_bind() -> None:
    rois = rois_from_labels(_labels())
    with pytest.raises(RoiError, match="are 20x30, the frames are 20x31"):
        rois.bind((20, 31))


def test_unchanged_rows_are_the_rois_with_the_same_label_and_pixels() -> None:
    old = np.zeros((8, 8), np.int32)
    old[0:2, 0:2], old[4:6, 4:6], old[6, 0] = 3, 5, 8
    new = old.copy()
    new[new == 5] = 0
    new[4:6, 5:7] = 5  # moved: not the same ROI
    new[7, 7] = 6  # added
    kept, kept_old = rois_from_labels(new, "new").unchanged_rows(rois_from_labels(old, "old"))
    # new rows: labels 3, 5, 6, 8 -> 3 is row 0, 8 row 3; old rows: 3, 5, 8
    assert kept.tolist() == [0, 3] and kept_old.tolist() == [0, 2]


def _roi(ys: object, xs: object) -> dict:
    return {"ypix": ys, "xpix": xs}


@pytest.mark.parametrize(
    ("stat", "message"),
    [
        # int32 coordinates past 2**31 once wrapped to a negative extent that stopped the
        # service on its first frame (scipy: "negative axis 1 index")
        ([_roi([3_000_000_000], [3_000_000_000])], r"reaches pixel \(3000000000, 3000000000\)"),
        ([_roi([1], [2**32 + 5])], "outside any frame"),  # wrapped to pixel 5, silently
        ([_roi([1, 2, 3], [1, 2])], "ROI 0 of stat.npy has 3 'ypix' and 2 'xpix'"),
        ([_roi([1], [1, 2, 3])], "has 1 'ypix' and 3 'xpix'"),  # was broadcast
        ([_roi([1.7], [1.0])], "whole pixel coordinates"),  # was truncated to 1
        ([_roi([[1]], [[1]])], "1-D list of pixel coordinates"),
    ],
)
def test_suite2p_coordinates_are_whole_pixels_in_a_frame(stat: list, message: str) -> None:
    with pytest.raises(RoiError, match=message):
        rois_from_suite2p(stat)


def test_suite2p_companions_are_named_when_they_are_wrong(tmp_path: Path) -> None:
    stat = np.array([_roi(np.array([1, 2]), np.array([3, 4]))], dtype=object)
    np.save(tmp_path / "stat.npy", stat, allow_pickle=True)
    np.save(tmp_path / "ops.npy", {"Ly": 4, "Lx": 4}, allow_pickle=True)
    with pytest.raises(
        RoiError, match=r"ROI 0 of .*stat.npy reaches pixel \(2, 4\), outside the 4x4"
    ):
        load_rois(tmp_path / "stat.npy")  # refused before a label image is drawn
    for ops, message in [({"Ly": 0, "Lx": 4}, "each 1..16384"), ({"Ly": 64.9, "Lx": 64}, "whole")]:
        np.save(tmp_path / "ops.npy", ops, allow_pickle=True)
        with pytest.raises(
            RoiError, match=rf"ops.npy: 'Ly' and 'Lx' are not a frame shape: .*{message}"
        ):
            load_rois(tmp_path / "stat.npy")
    (tmp_path / "ops.npy").unlink()
    np.save(tmp_path / "iscell.npy", np.array(1.0))
    with pytest.raises(RoiError, match="expected iscell as suite2p writes it"):
        load_rois(tmp_path / "stat.npy")
    (tmp_path / "iscell.npy").write_bytes(b"not numpy")
    with pytest.raises(RoiError, match=r"cannot read ROIs from .*iscell.npy"):
        load_rois(tmp_path / "stat.npy")
