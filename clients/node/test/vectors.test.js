// The golden vectors of clients/vectors (PROTOCOL.md section 10): decode every
// valid message to its listed header and pixels, re-encode every canonical one
// byte for byte, and reject every invalid one with its listed reason.
//
// No vector is skipped: the `*_float` invalid vectors (a float where an integer
// belongs), which PROTOCOL.md allows JavaScript to skip, are caught by the wire
// type walk in src/wire.js.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  DTYPES,
  LABEL_DTYPES,
  ProtocolError,
  decodeHeader,
  decodeMessage,
  encodeEnd,
  encodeFrame,
  encodeHeader,
  encodeMessage,
  encodeRequest,
  encodeSetRois,
  encodeStart,
} from "deepdenoise-client";

const HERE = dirname(fileURLToPath(import.meta.url));
const VECTORS = process.env.DEEPDENOISE_VECTORS ?? join(HERE, "..", "..", "vectors");

// JSON.parse turns t_ns = 1700000000123456789 into ...456800. Integers beyond
// 2^53 are therefore rewritten as tagged strings (outside JSON strings only) and
// revived as BigInt.
const BIG = "bigint:"; // never the start of a real string in vectors.json
function parseJsonBig(text) {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (c === "-" || (c >= "0" && c <= "9")) {
      const token = /^-?\d+(\.\d+)?([eE][-+]?\d+)?/.exec(text.slice(i))[0];
      const integer = /^-?\d+$/.test(token);
      out += integer && !Number.isSafeInteger(Number(token)) ? `"${BIG}${token}"` : token;
      i += token.length;
    } else {
      out += c;
      i += 1;
    }
  }
  return JSON.parse(out, (_key, v) =>
    typeof v === "string" && v.startsWith(BIG) ? BigInt(v.slice(BIG.length)) : v,
  );
}

const spec = parseJsonBig(readFileSync(join(VECTORS, "vectors.json"), "utf8"));

/** The parts of a vector file: each a uint32 little-endian length, then the bytes. */
function readParts(file) {
  const data = new Uint8Array(readFileSync(join(VECTORS, file)));
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const parts = [];
  for (let pos = 0; pos < data.length;) {
    const n = view.getUint32(pos, true);
    parts.push(data.subarray(pos + 4, pos + 4 + n));
    pos += 4 + n;
  }
  return parts;
}

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");
const FLOATS = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity };
const expectedPixel = (p) => (typeof p === "string" ? FLOATS[p] : p);

/** The expected header; `"<bin: pixels>"` (set_rois) becomes the label bytes. */
function expectedHeader(vector) {
  const header = structuredClone(vector.header);
  if (header.labels === "<bin: pixels>") {
    const Ctor = LABEL_DTYPES[header.dtype];
    const values = vector.pixels.map((p) => (Ctor === BigInt64Array ? BigInt(p) : p));
    header.labels = new Uint8Array(Ctor.from(values).buffer);
  }
  return header;
}

/** Same keys in the same (wire) order at every depth, then the same values. */
function assertSameHeader(actual, expected, where = "header") {
  if (expected !== null && typeof expected === "object" && !ArrayBuffer.isView(expected)) {
    if (!Array.isArray(expected)) {
      assert.deepEqual(Object.keys(actual), Object.keys(expected), `${where}: key order`);
    }
    for (const key of Object.keys(expected)) assertSameHeader(actual[key], expected[key], `${where}.${key}`);
    return;
  }
  assert.deepStrictEqual(actual, expected, where);
}

const valid = spec.vectors.filter((v) => v.valid);
const invalid = spec.vectors.filter((v) => !v.valid);

describe("valid vectors decode to their header and pixels", () => {
  for (const vector of valid) {
    test(vector.name, () => {
      const parts = readParts(vector.file);
      assert.equal(parts.length, vector.parts);
      if (vector.direction === "control") {
        assertSameHeader(decodeHeader(parts[0]), expectedHeader(vector));
        return;
      }
      // Input messages get every check the service makes; output the receiving ones.
      const msg = decodeMessage(parts, { strict: vector.direction === "input" });
      assert.equal(msg.topic, vector.topic);
      assertSameHeader(msg.header, expectedHeader(vector));
      if (vector.payload_bytes === null) {
        assert.equal(msg.pixels, null);
        return;
      }
      assert.equal(msg.dtype, vector.dtype);
      assert.deepEqual(msg.shape, vector.shape);
      assert.equal(msg.payload.byteLength, vector.payload_bytes);
      assert.equal(sha256(msg.payload), vector.payload_sha256);
      assert.ok(msg.pixels instanceof DTYPES[vector.dtype]);
      if (vector.pixels !== null) {
        // Object.is: NaN equals NaN, and -0.0 must stay negative.
        const got = Array.from(msg.pixels);
        const want = vector.pixels.map(expectedPixel);
        assert.equal(got.length, want.length);
        got.forEach((p, i) => assert.ok(Object.is(p, want[i]), `pixel ${i}: ${p} != ${want[i]}`));
      }
    });
  }
});

describe("canonical vectors re-encode byte for byte", () => {
  for (const vector of valid.filter((v) => v.canonical)) {
    test(vector.name, () => {
      const parts = readParts(vector.file);
      const header = expectedHeader(vector);
      let encoded;
      if (vector.direction === "control") {
        const { cmd, ...args } = header;
        encoded = [encodeRequest(cmd, args)];
      } else {
        encoded = encodeMessage(vector.topic, header, parts[2] ?? null);
      }
      assert.equal(encoded.length, parts.length);
      encoded.forEach((part, i) => assert.deepEqual(Buffer.from(part), Buffer.from(parts[i]), `part ${i}`));
    });
  }
});

// The same bytes again, this time from the typed API a program uses (encodeFrame,
// encodeStart/End, encodeSetRois) for every vector that API can express.
describe("the typed encoders reproduce the vectors they can express", () => {
  const FRAME_KEYS = ["v", "kind", "series", "index", "dtype", "shape", "t_ns", "meta", "resend"];
  // encodeFrame always writes `kind` and knows no vendor keys.
  const expressible = (v) =>
    v.direction === "input" &&
    v.canonical &&
    "kind" in v.header &&
    Object.keys(v.header).every((k) => FRAME_KEYS.includes(k));
  for (const vector of valid.filter(expressible)) {
    test(vector.name, () => {
      const parts = readParts(vector.file);
      const h = vector.header;
      let encoded;
      if (h.kind === "start") encoded = encodeStart(h.series, { tNs: h.t_ns, topic: vector.topic });
      else if (h.kind === "end") encoded = encodeEnd(h.series, { tNs: h.t_ns, topic: vector.topic });
      else {
        const bytes = parts[2].slice(); // a fresh, aligned buffer for the typed array
        const pixels = new DTYPES[h.dtype](bytes.buffer, 0, h.shape[0] * h.shape[1]);
        const frame = { pixels, shape: h.shape, series: h.series, index: h.index, tNs: h.t_ns };
        encoded = encodeFrame({ ...frame, meta: h.meta, resend: h.resend }, { topic: vector.topic });
      }
      encoded.forEach((part, i) => assert.deepEqual(Buffer.from(part), Buffer.from(parts[i]), `part ${i}`));
    });
  }
  for (const vector of valid.filter((v) => v.name.startsWith("control_set_rois"))) {
    test(vector.name, () => {
      const header = expectedHeader(vector);
      const labels =
        header.labels === null
          ? null
          : { data: new LABEL_DTYPES[header.dtype](header.labels.buffer), shape: header.shape };
      const encoded = encodeSetRois(labels, { series: header.series, fit: header.fit, source: header.source });
      assert.deepEqual(Buffer.from(encoded), Buffer.from(readParts(vector.file)[0]));
    });
  }
  test("frame_key_order comes out in canonical key order", () => {
    const vector = valid.find((v) => v.name === "frame_key_order");
    const keys = Object.keys(decodeHeader(encodeHeader(vector.header)));
    assert.deepEqual(keys, ["v", "kind", "series", "index", "dtype", "shape", "t_ns"]);
  });
});

describe("invalid vectors are rejected with their reason", () => {
  for (const vector of invalid) {
    test(`${vector.name} -> ${vector.reject_reason}`, () => {
      const parts = readParts(vector.file);
      assert.throws(
        () => decodeMessage(parts, { strict: true }),
        (err) => {
          assert.ok(err instanceof ProtocolError, `${err}`);
          assert.equal(err.reason, vector.reject_reason, err.message);
          return true;
        },
      );
    });
  }
});
