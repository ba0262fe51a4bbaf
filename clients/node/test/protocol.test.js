// Behaviour the golden vectors do not pin down: sender-side validation, integer
// forms of BigInt/Number, and payload views (zero-copy when aligned, else a copy).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ProtocolError,
  decodeHeader,
  decodeMessage,
  encodeFrame,
  encodeHeader,
  encodeMessage,
  encodeSetRois,
} from "deepdenoise-client";

const frame = (over = {}) => ({
  pixels: new Uint16Array(6),
  shape: [2, 3],
  series: "cell-01",
  index: 0,
  ...over,
});

const rejects = (over, reason) =>
  assert.throws(
    () => encodeFrame(frame(over)),
    (err) => err instanceof ProtocolError && err.reason === reason,
  );

test("encodeFrame checks dtype, shape, series, index, t_ns and meta before sending", () => {
  rejects({ pixels: new Float64Array(6) }, "dtype");
  rejects({ pixels: new Uint8Array(16385), shape: [1, 16385] }, "shape");
  rejects({ shape: [2, 3, 1] }, "shape");
  rejects({ shape: [2.5, 3] }, "shape");
  rejects({ shape: [3, 3] }, "payload_length");
  for (const series of ["", ".hidden", "a/b", "é", "x".repeat(65)]) rejects({ series }, "series");
  rejects({ index: -1 }, "index");
  rejects({ index: 1.5 }, "index");
  rejects({ index: 2 ** 40 }, "index");
  rejects({ tNs: 1_700_000_000_000_000_000 }, "t_ns"); // a Number: digits already lost
  rejects({ tNs: 2n ** 63n }, "t_ns");
  rejects({ meta: [1, 2] }, "meta");
  rejects({ meta: { when: new Date(0) } }, "meta"); // would be an ext type
  rejects({ meta: { blob: "x".repeat(8200) } }, "meta");
  const nested = (lists) => ({ a: Array.from({ length: lists }).reduce((inner) => [inner], 0) });
  encodeFrame(frame({ meta: nested(14) })); // header, meta, 14 arrays: 16 levels
  rejects({ meta: nested(15) }, "header_decode"); // 17: the service would reject it
  rejects({ resend: 1 }, "resend");
});

test("validation messages say what was wrong: a dtype name, an index given as a string", () => {
  assert.throws(
    () => encodeFrame(frame({ pixels: new Uint8Array(12), dtype: "uint16" })),
    /expected dtype one of \|u1, <u2, <i2, <f4 .*got "uint16"/,
  );
  assert.throws(() => encodeFrame(frame({ index: "13" })), /got "13"/);
});

test("raw bytes with an explicit dtype are accepted", () => {
  const parts = encodeFrame(frame({ pixels: new Uint8Array(24), dtype: "<f4" }));
  assert.equal(decodeHeader(parts[1]).dtype, "<f4");
});

test("integers use the smallest form whether given as Number or BigInt", () => {
  const bytes = (value) => Array.from(encodeHeader({ x: value }).subarray(3));
  assert.deepEqual(bytes(5n), [0x05]);
  assert.deepEqual(bytes(300n), [0xcd, 0x01, 0x2c]);
  assert.deepEqual(bytes(2 ** 32), [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]); // not a float64
  assert.deepEqual(bytes(-(2 ** 31) - 1), [0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff]);
  assert.deepEqual(bytes(-33), [0xd0, 0xdf]);
  assert.deepEqual(bytes(0.5), [0xcb, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0]);
  // Decoding gives Numbers when exact, BigInt beyond 2^53.
  assert.deepEqual(decodeHeader(encodeHeader({ a: 2n ** 32n, b: 2n ** 60n })), { a: 2 ** 32, b: 2n ** 60n });
});

test("pixels view the payload in place when aligned and are copied when not", () => {
  const parts = encodeFrame(frame({ pixels: Float32Array.from([0.5, -1.25, 3, 1024, -0, 0.015625]) }));
  const aligned = decodeMessage(parts);
  assert.equal(aligned.pixels.buffer, parts[2].buffer); // same memory, no copy
  assert.equal(aligned.pixels[1], -1.25);

  const shifted = new Uint8Array(parts[2].length + 1).subarray(1); // byteOffset 1
  shifted.set(parts[2]);
  const copied = decodeMessage([parts[0], parts[1], shifted]);
  assert.notEqual(copied.pixels.buffer, shifted.buffer);
  assert.deepEqual(Array.from(copied.pixels), Array.from(aligned.pixels));
});

test("output is decoded against the output bounds, input against the input limits", () => {
  // A traces message with 20,000 ROIs: a row per ROI and a 100 KB header of labels.
  const traces = (rois, labels) =>
    encodeMessage(
      "traces",
      {
        v: 1,
        dtype: "<f4",
        shape: [rois, 3],
        labels: Array.from({ length: labels }, (_, i) => 70000 + i),
      },
      new Float32Array(rois * 3),
    );
  const reason = (parts, options) => {
    try {
      decodeMessage(parts, options);
      return "ok";
    } catch (err) {
      assert.ok(err instanceof ProtocolError);
      return err.reason;
    }
  };
  const small = { maxHeaderBytes: 1024, maxMetaBytes: 8192, maxSide: 64, maxPayloadBytes: 4096 };
  assert.equal(reason(traces(20000, 20000)), "ok");
  assert.equal(reason(traces(20000, 20000), { strict: true }), "header_size");
  assert.equal(reason(traces(1, 3300), { limits: small }), "header_size"); // over 16 x 1 KiB
  assert.equal(reason(traces(1, 1600), { limits: small }), "ok");
  assert.equal(reason(traces(1365, 0), { limits: small }), "ok"); // 16,380 bytes: 4 x 4096
  assert.equal(reason(traces(1366, 0), { limits: small }), "payload_size");
});

test("encodeSetRois sends fit and source after the labels, and refuses an unknown option", () => {
  // setRois dropped fit and source without a word (a new user's trial, 2026-12-06)
  const labels = { data: new Uint16Array([0, 1, 2, 0]), shape: [2, 2] };
  const request = decodeHeader(encodeSetRois(labels, { series: "s", fit: true, source: "stat.npy" }));
  assert.deepEqual(Object.keys(request), ["cmd", "series", "dtype", "shape", "labels", "fit", "source"]);
  assert.equal(request.fit, true);
  assert.equal(request.source, "stat.npy");
  assert.deepEqual(Object.keys(decodeHeader(encodeSetRois(null, { fit: false }))), ["cmd", "labels", "fit"]);
  assert.throws(() => encodeSetRois(labels, { fitted: true }), /expected options series, fit, source; got fitted/);
  assert.throws(() => encodeSetRois(labels, { fit: "yes" }), TypeError);
  assert.throws(() => encodeSetRois(labels, { source: "" }), TypeError);
  // characters as the service counts them: 1024 emoji are 2048 UTF-16 units, and fit
  const emoji = "\u{1F52C}".repeat(1024);
  assert.equal(decodeHeader(encodeSetRois(labels, { source: emoji })).source, emoji);
  assert.throws(() => encodeSetRois(labels, { source: `${emoji}x` }), /1 to 1024 characters, none a control character, got 1025/);
  assert.throws(() => encodeSetRois(labels, { source: "rois\tcells" }), /control character/);
});
