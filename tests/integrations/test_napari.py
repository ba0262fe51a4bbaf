"""napari: the live view against the real service, and the series-store reader.

Headless: Qt's offscreen platform, and napari's ``ViewerModel`` (the viewer without its
OpenGL canvas, which a machine without a display cannot create) holding the layers the
widget writes. The widget is the real QWidget, its timer and receiving thread real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

with warnings.catch_warnings():  # napari's own pydantic-v1-style models warn on import
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("napari")
    pytest.importorskip("pytestqt")
    pytest.importorskip("qtpy.QtWidgets")  # napari without a Qt binding: skip too
    import npe2
    from napari.components import ViewerModel

import zarr
from clients_harness import Secured, make_keys
from deepdenoise_client import Publisher
from deepdenoise_client.napari import (
    LiveViewWidget,
    is_series_store,
    napari_get_reader,
    read_series_store,
)
from deepdenoise_client.napari._status import service_lines, viewer_line
from deepdenoise_client.napari._stream import LatestFrames, ViewerCounters
from service_harness import collect, listening, running_service, wait_until

from stream.store import ARRAY_PATHS

# napari (0.9) still declares pydantic models the v1 way; its warnings are not ours.
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecatedSince20")

SHAPE = (24, 40)
WAIT_MS = 30_000  # generous: the machine may be shared; nothing here asserts a time


def _frames(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 4000, SHAPE, dtype=np.uint16) for _ in range(n)]


KEY_ENV = ("DEEPDENOISE_CLIENT_KEY", "DEEPDENOISE_SERVER_KEY")


@pytest.fixture
def live(qtbot, monkeypatch):
    """A factory: a LiveViewWidget on a fresh ViewerModel, disconnected at teardown (no
    key variables set, unless a test sets them)."""
    for name in KEY_ENV:
        monkeypatch.delenv(name, raising=False)
    made: list[LiveViewWidget] = []

    def make(endpoint: str, **options: Any) -> tuple[ViewerModel, LiveViewWidget]:
        viewer = ViewerModel()
        widget = LiveViewWidget(viewer, endpoint, interval_ms=20, **options)
        qtbot.addWidget(widget)
        made.append(widget)
        return viewer, widget

    yield make
    for widget in made:
        widget.disconnect_from()


def _connected(qtbot, widget: LiveViewWidget) -> None:
    """Connect and wait for the first status: proof that the subscription is live."""
    assert widget.connect_to()
    qtbot.waitUntil(lambda: widget.status is not None, timeout=WAIT_MS)


def _shown(widget: LiveViewWidget, topic: str, series: str) -> int | None:
    return widget.shown.get((topic, series), {}).get("index")


def test_denoised_frames_arrive_in_one_layer_per_series(tmp_path: Path, box_model, qtbot, live):
    frames = {"a": _frames(6, seed=1), "b": _frames(6, seed=2)}
    with (
        running_service(tmp_path, box_model, zarr=None) as svc,
        listening(svc, (b"denoised",)) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        viewer, widget = live(svc.endpoints["output"])
        _connected(qtbot, widget)
        got: dict[tuple[str, int], np.ndarray] = {}
        layers = {}
        for batch in (range(0, 3), range(3, 6)):
            for i in batch:
                for series, sent in frames.items():
                    pub.send_frame(sent[i], series, i)
            for m in collect(sub, 2 * len(batch))[0]:
                got[(m.header["series"], m.header["index"])] = m.array.copy()
            last = batch[-1]
            qtbot.waitUntil(
                lambda last=last: all(_shown(widget, "denoised", s) == last for s in frames),
                timeout=WAIT_MS,
            )
            assert sorted(layer.name for layer in viewer.layers) == ["a denoised", "b denoised"]
            for series in frames:
                layer = viewer.layers[f"{series} denoised"]
                layers.setdefault(series, layer)
                assert layer is layers[series]  # updated in place, never added again
                # what the Python Subscriber got for the newest index, pixel for pixel
                np.testing.assert_array_equal(layer.data, got[(series, last)])
                assert layer.metadata["deepdenoise"]["index"] == last
        qtbot.waitUntil(lambda: (widget.status or {}).get("frames_out") == 12, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: "frames in 12" in widget.status_label.text(), timeout=WAIT_MS)

    text = widget.status_label.text()
    for shown in ("fps ", "latency p50 ", " ms", "p99 ", "out 12", "dropped: none"):
        assert shown in text, (shown, text)
    assert "viewer: received" in widget.viewer_label.text()
    counters = widget.stream.counters if widget.stream else None
    assert counters is not None and counters.received == 12 and counters.bad == 0
    # the service's box filter changed the frames: the layer is not the raw input
    assert not np.array_equal(viewer.layers["a denoised"].data, frames["a"][5])


def test_raw_frames_get_their_own_layer_when_the_service_publishes_them(
    tmp_path: Path, box_model, qtbot, live
):
    frames = _frames(6, seed=3)
    with (
        running_service(tmp_path, box_model, zarr=None, publish_raw=True) as svc,
        listening(svc, (b"denoised",)) as sub,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        viewer, widget = live(svc.endpoints["output"])
        _connected(qtbot, widget)
        for i in range(3):
            pub.send_frame(frames[i], "c", i)
        denoised = collect(sub, 3)[0][-1].array.copy()
        qtbot.waitUntil(
            lambda: _shown(widget, "raw", "c") == 2 and _shown(widget, "denoised", "c") == 2,
            timeout=WAIT_MS,
        )
        raw_layer = viewer.layers["c raw"]
        assert raw_layer.data.dtype == np.uint16
        np.testing.assert_array_equal(raw_layer.data, frames[2])  # exactly as sent
        np.testing.assert_array_equal(viewer.layers["c denoised"].data, denoised)

        # unticked: the widget resubscribes without raw; the raw layer stays as it was
        widget.raw_check.setChecked(False)
        qtbot.waitUntil(lambda: widget.status is not None, timeout=WAIT_MS)
        for i in range(3, 6):
            pub.send_frame(frames[i], "c", i)
        collect(sub, 3)
        qtbot.waitUntil(lambda: _shown(widget, "denoised", "c") == 5, timeout=WAIT_MS)
        assert _shown(widget, "raw", "c") == 2
        np.testing.assert_array_equal(viewer.layers["c raw"].data, frames[2])


def test_a_stored_series_opens_as_raw_and_clean_layers(tmp_path: Path, box_model):
    frames = _frames(5, seed=4)
    with (
        running_service(tmp_path, box_model) as svc,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(frames):
            pub.send_frame(frame, "stored", i)
        pub.end("stored")
        wait_until(
            lambda: svc.status()["series"].get("stored", {}).get("frames_out") == len(frames),
            timeout=30,
        )
        assert svc.flush()
    store = tmp_path / "data" / "stored.zarr"
    assert is_series_store(store) and napari_get_reader(str(store)) is read_series_store

    npe2.PluginManager.instance().discover()  # what napari does at start: finds napari.yaml
    viewer = ViewerModel()
    layers = viewer.open(str(store), plugin="deepdenoise-client")
    assert [layer.name for layer in layers] == ["stored raw", "stored clean"]
    group = zarr.open_group(store, mode="r")
    raw, clean = layers
    assert raw.data.shape == (5, *SHAPE) and raw.data.dtype == np.uint16
    np.testing.assert_array_equal(np.asarray(raw.data[:]), np.stack(frames))
    np.testing.assert_array_equal(np.asarray(clean.data[:]), group[ARRAY_PATHS["clean"]][:])
    assert not np.array_equal(np.asarray(clean.data[:]), np.stack(frames).astype(np.float32))
    assert raw.metadata["deepdenoise"]["image"] == "raw"


def test_a_store_still_being_written_opens_with_its_frames_only(tmp_path: Path, box_model):
    """An open store's time axis is allocated ahead (thousands of slots): the layers end
    at its last frame on disk, and still read lazily."""
    frames = _frames(3, seed=5)
    with (
        running_service(tmp_path, box_model) as svc,
        Publisher(svc.endpoints["input"], mode="push", bind=False) as pub,
    ):
        for i, frame in enumerate(frames):
            pub.send_frame(frame, "open", i)
        wait_until(
            lambda: svc.status()["series"].get("open", {}).get("frames_out") == len(frames),
            timeout=30,
        )
        assert svc.flush()
        store = tmp_path / "data" / "open.zarr"
        allocated = zarr.open_group(store, mode="r")[ARRAY_PATHS["raw"]].shape[0]
        raw, clean = read_series_store(str(store))
    assert allocated > len(frames)  # the premise: the axis runs ahead while open
    assert raw[0].shape == clean[0].shape == (3, *SHAPE)
    np.testing.assert_array_equal(np.asarray(raw[0]), np.stack(frames))


def test_the_reader_leaves_other_folders_alone(tmp_path: Path) -> None:
    zarr.create_group(str(tmp_path / "other.zarr"), zarr_format=3, attributes={"x": 1})
    (tmp_path / "plain").mkdir()
    for path in (tmp_path / "other.zarr", tmp_path / "plain", tmp_path / "missing.zarr"):
        assert not is_series_store(path)
        assert napari_get_reader(str(path)) is None
    assert napari_get_reader([str(tmp_path / "a.zarr"), str(tmp_path / "b.zarr")]) is None
    with pytest.raises(ValueError, match="series store"):
        read_series_store(tmp_path / "other.zarr")


def test_the_manifest_declares_the_widget_and_the_reader() -> None:
    manifest = npe2.PluginManifest.from_distribution("deepdenoise-client")
    assert manifest.name == "deepdenoise-client"
    widget = manifest.contributions.widgets[0]
    assert widget.display_name == "Live view"
    assert widget.get_callable() is LiveViewWidget
    reader = manifest.contributions.readers[0]
    assert reader.accepts_directories and reader.filename_patterns == ["*.zarr"]
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert commands[reader.command].endswith(":napari_get_reader")


@pytest.mark.parametrize("endpoint", ["not-an-endpoint", "tcp://127.0.0.1:99999"])
def test_a_bad_endpoint_is_reported_in_the_widget(qtbot, live, endpoint: str) -> None:
    # :99999: libzmq took it as port 34463 and the panel said "connected" (a user's trial)
    _, widget = live(endpoint)
    assert not widget.connect_to()
    assert not widget.connected and "cannot connect" in widget.state_label.text()


def test_deleting_the_widget_stops_its_receiving_thread(qtbot) -> None:
    # napari deletes dock widgets with the viewer without closing them
    widget = LiveViewWidget(ViewerModel(), "tcp://127.0.0.1:9")
    assert widget.connect_to()
    stream = widget.stream
    assert stream is not None and stream.running
    widget.deleteLater()
    qtbot.waitUntil(lambda: not stream.running, timeout=WAIT_MS)


def test_the_receiver_thread_stops_and_closes_its_socket() -> None:
    stream = LatestFrames("tcp://127.0.0.1:9").start()  # nothing there: retries quietly
    assert stream.running
    stream.stop()
    assert not stream.running and stream.error is None
    LatestFrames("tcp://127.0.0.1:9").stop()  # never started: closes its socket too


def test_importing_the_plugin_package_imports_neither_napari_nor_qt() -> None:
    # napari imports it to find napari.yaml; the reader needs neither
    code = (
        "import sys, deepdenoise_client.napari as m; m.is_series_store('.'); "
        "print(sorted({'napari', 'qtpy', 'zarr'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_status_text_shows_rate_latency_and_drops() -> None:
    status = {
        "fps": 29.94,
        "latency_ms": {"p50": 3.25, "p99": 11.5},
        "frames_in": 100,
        "frames_out": 97,
        "dropped": {"publish_queue_full": 2, "paused": 1},
        "rejected": {"dtype": 4},
        "provider": "CPUExecutionProvider",
        "model": "5d41402abc4b",
        "paused": False,
    }
    text = "\n".join(service_lines(status))
    for shown in (
        "fps 29.9",
        "latency p50 3.25 ms",
        "p99 11.50 ms",
        "frames in 100  ·  out 97",
        "dropped: paused 1, publish_queue_full 2",
        "rejected: dtype 4",
        "model 5d41402abc4b on CPUExecutionProvider",
    ):
        assert shown in text, shown
    assert "no status yet" in service_lines(None)[0]
    plain, secured = "\n".join(service_lines(None)), "\n".join(service_lines(None, secured=True))
    assert all(name in plain for name in KEY_ENV)  # without keys: which to set
    assert "security.clients" in secured and KEY_ENV[0] not in secured
    assert service_lines(status, age_s=1.0)[0].startswith("fps")  # fresh
    old = service_lines(status, age_s=12.0)  # a stopped or killed service
    assert old[0] == "service: silent for 12 s (stopped, or unreachable); its last status:"
    assert old[1:] == service_lines(status)
    assert "fps ?" in service_lines({})[0]  # fields a service does not send: not guessed
    line = viewer_line(ViewerCounters(received=10, shown=4, bad=1))
    assert "received 10" in line and "skipped 6" in line and "malformed 1" in line


def test_a_series_whose_index_jumped_far_opens_without_reading_its_whole_flags(
    tmp_path: Path,
) -> None:
    """Frames at 0 and 2**40 - 1: the reader finds them from the flags' stored chunks
    (whole, the flags are 1 TiB) and hands the axis over lazily."""
    from stream import SeriesStore

    last = 2**40 - 1
    frame = np.arange(SHAPE[0] * SHAPE[1], dtype=np.uint16).reshape(SHAPE)
    with SeriesStore(tmp_path, "far", SHAPE, np.dtype("<u2")) as store:
        for i in (0, last):
            store.write_raw(i, frame, t_ns=i)
    raw, _ = read_series_store(str(tmp_path / "far.zarr"))
    assert raw[0].shape == (last + 1, *SHAPE)
    np.testing.assert_array_equal(np.asarray(raw[0][last]), frame)


def test_a_damaged_store_is_warned_of_not_shown_as_zeros_silently(tmp_path: Path) -> None:
    """A raw shard deleted (frames flagged stored, pixels gone): the layers opened as
    zeros with no word said."""
    from stream import SeriesStore

    frame = np.arange(SHAPE[0] * SHAPE[1], dtype=np.uint16).reshape(SHAPE)
    with SeriesStore(tmp_path, "hurt", SHAPE, np.dtype("<u2")) as store:
        for i in range(3):
            store.write_raw(i, frame, t_ns=i)
    path = tmp_path / "hurt.zarr"
    intact, _ = read_series_store(str(path))
    assert "frames_without_pixels" not in intact[1]["metadata"]["deepdenoise"]
    shards = [p for p in (path / ARRAY_PATHS["raw"] / "c").rglob("*") if p.is_file()]
    assert shards
    for shard in shards:
        shard.unlink()
    with pytest.warns(UserWarning, match=r"damaged: 3 raw frame\(s\) .* show as zeros"):
        raw, clean = read_series_store(str(path))
    assert raw[1]["metadata"]["deepdenoise"]["frames_without_pixels"] == 3
    assert "frames_without_pixels" not in clean[1]["metadata"]["deepdenoise"]


def test_denoised_frames_whose_pixels_are_gone_are_warned_of(tmp_path: Path) -> None:
    """A denoised shard deleted: the clean layer opened as NaN with no word (a user's
    trial)."""
    from stream import SeriesStore

    frame = np.arange(SHAPE[0] * SHAPE[1], dtype=np.uint16).reshape(SHAPE)
    with SeriesStore(tmp_path, "hurt", SHAPE, np.dtype("<u2")) as store:
        for i in range(3):
            store.write_raw(i, frame, t_ns=i)
            store.write_clean(i, frame.astype(np.float32))
    path = tmp_path / "hurt.zarr"
    for shard in [p for p in (path / ARRAY_PATHS["clean"] / "c").rglob("*") if p.is_file()]:
        shard.unlink()
    with pytest.warns(UserWarning, match=r"damaged: 3 denoised frame\(s\) .* show as NaN"):
        raw, clean = read_series_store(str(path))
    assert clean[1]["metadata"]["deepdenoise"]["frames_without_pixels"] == 3
    assert "frames_without_pixels" not in raw[1]["metadata"]["deepdenoise"]
    for chunk in [p for p in (path / "valid" / "c").rglob("*") if p.is_file()]:
        chunk.unlink()  # a flags chunk deleted: the frames on disk show as holes
    with pytest.warns(UserWarning, match="is damaged") as told:  # the denoised frames too
        read_series_store(str(path))
    flags = "valid flags count 0 raw frame(s), its close recorded 3"
    assert any(flags in str(w.message) for w in told), [str(w.message) for w in told]


@pytest.mark.parametrize("metadata", ["{not json", "[]", '{"zarr_format": 3}', None])
def test_an_image_whose_metadata_is_damaged_is_refused_naming_it(
    tmp_path: Path, metadata: str | None
) -> None:
    """An image's zarr.json damaged or gone: zarr's own error came, naming neither the
    store nor the image (a user's trial)."""
    from stream import SeriesStore

    with SeriesStore(tmp_path, "hurt", SHAPE, np.dtype("<u2")) as store:
        store.write_raw(0, np.ones(SHAPE, np.uint16), t_ns=0)
    path = tmp_path / "hurt.zarr"
    meta = path / ARRAY_PATHS["clean"] / "zarr.json"
    meta.unlink() if metadata is None else meta.write_text(metadata)
    where = ARRAY_PATHS["clean"]
    with pytest.raises(ValueError, match=rf"hurt.zarr is damaged: its clean image \({where}\)"):
        read_series_store(str(path))


@pytest.fixture
def secured(tmp_path: Path, box_model) -> Secured:
    """The real service with ``[security]``, publishing raw frames too; only ``rig``'s
    key is allowed."""
    keys = tmp_path / "keys"
    make_keys(keys)
    security = {"secret_key": keys / "service.key_secret", "clients": keys / "clients"}
    with running_service(
        tmp_path, box_model, zarr=None, publish_raw=True, security=security
    ) as svc:
        yield Secured(svc, keys)


def test_the_live_view_takes_keys_from_the_environment_for_a_secured_service(
    secured: Secured, qtbot, live, monkeypatch
) -> None:
    svc, frames = secured.service, _frames(3, seed=6)
    viewer, widget = live(svc.endpoints["output"])
    monkeypatch.setenv(KEY_ENV[0], str(secured.secret("rig")))
    monkeypatch.setenv(KEY_ENV[1], str(secured.keys / "service.key"))
    _connected(qtbot, widget)
    assert "CURVE keys from DEEPDENOISE_CLIENT_KEY" in widget.state_label.text()
    with Publisher(
        svc.endpoints["input"], mode="push", bind=False, curve=secured.curve("rig")
    ) as pub:
        for i, frame in enumerate(frames):
            pub.send_frame(frame, "sec", i)
        qtbot.waitUntil(lambda: _shown(widget, "raw", "sec") == 2, timeout=WAIT_MS)
    np.testing.assert_array_equal(viewer.layers["sec raw"].data, frames[2])


def test_the_live_view_and_its_receiver_take_keys_as_a_parameter(
    secured: Secured, qtbot, live
) -> None:
    svc = secured.service
    stream = LatestFrames(svc.endpoints["output"], curve=secured.curve("rig")).start()
    try:  # the service's status: the encrypted subscription is live
        qtbot.waitUntil(lambda: stream.take().status is not None, timeout=WAIT_MS)
    finally:
        stream.stop()
    assert stream.error is None
    _, widget = live(svc.endpoints["output"], curve=secured.curve("rig"))
    _connected(qtbot, widget)
    assert widget.state_label.text().endswith("(CURVE keys)")


def test_one_key_variable_alone_is_an_error_and_none_says_what_to_set(
    tmp_path: Path, qtbot, live, monkeypatch
) -> None:
    keys = tmp_path / "keys"
    make_keys(keys)
    _, widget = live("tcp://127.0.0.1:9")
    assert widget.connect_to()  # neither: plain text, the hint names the variables
    assert all(name in widget.status_label.text() for name in KEY_ENV)
    widget.disconnect_from()
    for alone, missing in zip(KEY_ENV, reversed(KEY_ENV), strict=True):
        for name in KEY_ENV:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(alone, str(keys / "clients" / "rig.key_secret"))
        assert not widget.connect_to()
        assert not widget.connected
        assert f"{missing} is not set" in widget.state_label.text()
    monkeypatch.setenv(KEY_ENV[0], str(keys / "clients" / "rig.key_secret"))
    monkeypatch.setenv(KEY_ENV[1], str(keys / "service.key"))
    assert widget.connect_to()  # both: CURVE, and the hint is about the key's allowance
    assert "security.clients" in widget.status_label.text()


def test_rejected_frames_open_as_layers_of_their_own(tmp_path: Path) -> None:
    """napari's reader found "no arrays" in rejected/<series>.zarr and this plugin
    refused it unsaid (a user's trial): each reason and layout is a layer now."""
    from stream.store import RejectedStore

    store = RejectedStore(tmp_path, "cam")
    dup = [np.full(SHAPE, i, dtype="<u2") for i in range(3)]
    other = np.ones((4, 4), dtype="<f4")
    for i, frame in enumerate(dup):
        store.add("duplicate", 10 + i, frame, t_ns=100 + i, t_recv_ns=1000 + i)
    store.add("series_mismatch", 2, other, t_ns=None, t_recv_ns=2000)
    store.flush()
    path = str(tmp_path / "rejected" / "cam.zarr")
    reader = napari_get_reader(path)
    assert reader is not None and not is_series_store(path)
    (frames, kwargs, kind), (mismatch, mismatch_kwargs, _) = reader(path)
    assert (
        kind == "image" and kwargs["name"] == f"cam rejected duplicate uint16_{SHAPE[0]}x{SHAPE[1]}"
    )
    np.testing.assert_array_equal(np.asarray(frames), np.stack(dup))
    meta = kwargs["metadata"]["deepdenoise"]
    assert meta["index"] == [10, 11, 12] and meta["t_ns"] == [100, 101, 102]
    assert mismatch_kwargs["metadata"]["deepdenoise"]["reason"] == "series_mismatch"
    np.testing.assert_array_equal(np.asarray(mismatch), other[None])
    # a block's metadata damaged: the store and what is wrong are named (zarr's own
    # KeyError named neither)
    block = tmp_path / "rejected" / "cam.zarr" / "series_mismatch"
    next(p for p in block.rglob("zarr.json") if p.parent != block).write_text("[]")
    with pytest.raises(ValueError, match=r"cam.zarr is damaged: MetadataValidationError"):
        reader(path)
