"""Each frame's ``meta`` through the real service to the series store, beside its pixels:
what an acquisition sends with a frame (exposure, stage position) is kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from service_harness import collect, serving

from stream.store import read_frame_meta, store_path


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
