"""Each frame's ``meta`` through the real service to the series store, beside its pixels:
what an acquisition sends with a frame (exposure, stage position) is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from service_harness import collect, events, series_ended, serving

from stream.store import (
    FRAME_META_FILE,
    RejectedStore,
    SeriesStore,
    read_frame_meta,
    read_rejected,
    rejected_path,
    store_path,
)


def test_the_meta_each_frame_carried_is_in_its_store(tmp_path: Path, identity_model) -> None:
    frames = [np.full((16, 16), 100 + i, np.uint16) for i in range(6)]
    sent = {i: {"exposure_ms": 20, "stage_um": [i * 0.5, -1.0], "z": i} for i in (0, 1, 3, 4)}
    with serving(tmp_path, identity_model) as (svc, sub, pub):
        for i, frame in enumerate(frames):
            pub.send_frame(frame, "meta-run", i, meta=sent.get(i))
        pub.send_frame(frames[4], "meta-run", 4, resend=True, meta={"redone": True})
        pub.send_frame(frames[3], "meta-run", 3, resend=True)  # with no meta of its own
        denoised, _ = collect(sub, 8)
        assert svc.flush()
        stored = read_frame_meta(store_path(tmp_path / "data", "meta-run"))
    assert [m.header.get("meta") for m in denoised[:6]] == [sent.get(i) for i in range(6)]
    # a resent frame's meta replaces the replaced frame's, none (an empty map) too
    assert stored == {**sent, 4: {"redone": True}, 3: {}}


def test_meta_its_store_cannot_write_is_counted_and_told(tmp_path: Path, identity_model) -> None:
    """A store whose meta file cannot take records (a folder in its place) keeps its
    frames; the meta lost is in ``status.store.frame_meta_lost`` and an ``error`` event
    of kind ``frame_meta``, not counted as frames dropped."""
    frames = [np.full((16, 16), 100 + i, np.uint16) for i in range(5)]
    with SeriesStore(tmp_path / "data", "lossy", (16, 16), "<u2") as store:
        store.write_raw(0, frames[0], 1)  # a series begun before, resumed by the service
    (store_path(tmp_path / "data", "lossy") / FRAME_META_FILE).mkdir()
    with serving(tmp_path, identity_model) as (svc, sub, pub):
        for i in range(1, 5):
            pub.send_frame(frames[i], "lossy", i, meta={"z": i})
        pub.end("lossy")
        _, seen = collect(sub, 4)
        while not [e for e in events(seen, "series_end") if e["series"] == "lossy"]:
            seen.append(sub.recv(timeout=30))  # the error is told before it
        status = svc.status()
    end = series_ended(sub, "lossy", seen)
    told = [e for e in events(seen, "error") if e.get("kind") == "frame_meta"]
    assert status["store"]["frame_meta_lost"] == 4
    assert told and "the meta of 4 frame(s) is not on disk" in told[0]["message"], told
    assert told[0]["series"] == "lossy"
    assert status["dropped"] == {} and (end["stored"], end["missing"]) == (5, 0), end


def test_a_rejected_frames_meta_is_kept_with_its_pixels(tmp_path: Path, identity_model) -> None:
    """A frame refused as a ``duplicate`` keeps its meta beside its pixels, apart from
    the series' store; a block whose meta file cannot take it counts it, as a store does."""
    frame = np.full((16, 16), 7, np.uint16)
    broken = RejectedStore(tmp_path / "data", "lossy")
    broken.add("duplicate", 0, frame, 1, 1)
    broken.flush()  # a block of an earlier session, whose meta file is then a folder
    broken.close()
    block = rejected_path(tmp_path / "data", "lossy") / "duplicate" / "uint16_16x16"
    (block / FRAME_META_FILE).mkdir()
    with serving(tmp_path, identity_model) as (svc, sub, pub):
        for series in ("kept", "lossy"):
            pub.send_frame(frame, series, 0, meta={"first": True})
            pub.send_frame(frame, series, 0, meta={"second": True})  # refused: duplicate
            pub.send_frame(frame, series, 1)
        collect(sub, 4)
        assert svc.flush()
        status = svc.status()
    (kept,) = read_rejected(rejected_path(tmp_path / "data", "kept"))
    assert kept.index.tolist() == [0] and kept.meta == [{"second": True}]
    assert read_frame_meta(store_path(tmp_path / "data", "kept")) == {0: {"first": True}}
    (lossy,) = read_rejected(rejected_path(tmp_path / "data", "lossy"))
    assert lossy.index.tolist() == [0, 0] and lossy.meta == [{}, {}]
    assert status["store"]["frame_meta_lost"] == 1 and status["store"]["rejected_kept"] == 2
