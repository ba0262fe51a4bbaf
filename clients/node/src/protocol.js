// Wire protocol v1 as pure functions: encode and decode messages, no sockets.
// Written from clients/PROTOCOL.md; the golden vectors in clients/vectors check it.

import { decode, encode } from "@msgpack/msgpack";

import { ProtocolError } from "./errors.js";
import { ARRAY, BOOL, INT, MAP, STR, WireError, scanHeader } from "./wire.js";

export const PROTOCOL_VERSION = 1;

/** Pixel types of a frame and the typed array that holds each. */
export const DTYPES = Object.freeze({
  "|u1": Uint8Array,
  "<u2": Uint16Array,
  "<i2": Int16Array,
  "<f4": Float32Array,
});

/** Label image types `set_rois` accepts. */
export const LABEL_DTYPES = Object.freeze({
  "|u1": Uint8Array,
  "<u2": Uint16Array,
  "<i2": Int16Array,
  "<u4": Uint32Array,
  "<i4": Int32Array,
  "<i8": BigInt64Array,
});

/** Canonical key order of every header; other keys follow in the order given. */
export const CANONICAL_KEYS = Object.freeze([
  "v",
  "kind",
  "series",
  "index",
  "dtype",
  "shape",
  "t_ns",
  "meta",
  "resend",
  "model",
  "t_recv_ns",
  "t_done_ns",
]);

export const KINDS = Object.freeze(["frame", "start", "end"]);

export const TOPICS = Object.freeze({
  frame: "frame",
  denoised: "denoised",
  status: "status",
  event: "event",
  traces: "traces",
  trigger: "trigger",
  raw: "raw", // received frames, when the service publishes them (publish_raw, opt-in)
});

/** The reference service's limits; a client checks them before sending. */
export const DEFAULT_LIMITS = Object.freeze({
  maxHeaderBytes: 64 * 1024,
  maxMetaBytes: 8 * 1024,
  maxSide: 16384,
  maxPayloadBytes: 256 * 1024 * 1024,
});

/**
 * The service's output may exceed its input limits by these factors (PROTOCOL.md,
 * section 7): a traces header lists every ROI's label, and a float32 output of the
 * largest |u1 frame is 4 times its size. `decodeMessage` without `strict` applies them.
 */
export const OUTPUT_HEADER_FACTOR = 16;
export const OUTPUT_PAYLOAD_FACTOR = 4;

const SERIES = /^(?!\.)[A-Za-z0-9._-]{1,64}$/;
const MAX_INDEX = 2 ** 40 - 1;
const MAX_T_NS = 2n ** 63n - 1n;

// Payloads are little-endian and typed arrays use the host's byte order, so a
// big-endian host would send and read every pixel swapped. No engine in use is
// big-endian; refuse rather than corrupt data if one ever is.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("deepdenoise-client needs a little-endian host (payloads are little-endian)");
}

const topicText = new TextDecoder();
const topicBytes = new TextEncoder();

// ------------------------------------------------------------------------ encode

/** `header` with its keys in the canonical order of PROTOCOL.md section 4. */
export function canonical(header) {
  const ordered = {};
  for (const key of CANONICAL_KEYS) if (key in header) ordered[key] = header[key];
  for (const [key, value] of Object.entries(header)) if (!(key in ordered)) ordered[key] = value;
  return ordered;
}

// @msgpack/msgpack with useBigInt64 writes every BigInt as 8 bytes and any Number
// of 2^32 and above as a float64. The canonical form is the smallest integer, so
// integers are handed to it as a Number below 2^32 (it then picks fixint..uint32)
// and as a BigInt from 2^32 on (uint64/int64 is then the smallest form anyway).
function prepare(value, where) {
  if (typeof value === "bigint") {
    if (value >= -(2n ** 31n) && value < 2n ** 32n) return Number(value);
    if (value < -(2n ** 63n) || value >= 2n ** 64n) {
      throw new ProtocolError("header_decode", `${where}: ${value} does not fit in 64 bits`);
    }
    return value;
  }
  if (typeof value === "number") {
    if (Number.isSafeInteger(value) && (value < -(2 ** 31) || value >= 2 ** 32)) {
      return BigInt(value);
    }
    return value; // a float (or an integer beyond 2^53, which only a float can hold)
  }
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (ArrayBuffer.isView(value)) return value; // bin
  if (Array.isArray(value)) return value.map((item, i) => prepare(item, `${where}[${i}]`));
  const proto = typeof value === "object" ? Object.getPrototypeOf(value) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    // A Date would become a msgpack ext type, a Map an empty map: neither is allowed.
    const what = value?.constructor?.name ?? typeof value;
    throw new ProtocolError("header_decode", `${where}: cannot encode a ${what} in a header`);
  }
  const out = {};
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined) out[key] = prepare(item, `${where}.${key}`);
  }
  return out;
}

const ENCODE_OPTIONS = { useBigInt64: true, ignoreUndefined: true };

/** Any value as msgpack with the canonical integer forms (str as str, floats as float64). */
export function encodeValue(value) {
  return encode(prepare(value, "value"), ENCODE_OPTIONS);
}

/** Encode a header canonically: keys in canonical order, smallest integers, float64. */
export function encodeHeader(header) {
  return encode(prepare(canonical(header), "header"), ENCODE_OPTIONS);
}

/** Any message as its parts `[topic, header]` or `[topic, header, payload]`; no checks. */
export function encodeMessage(topic, header, payload = null) {
  const parts = [toTopic(topic), encodeHeader(header)];
  if (payload !== null && payload !== undefined) parts.push(asBytes(payload));
  return parts;
}

/**
 * Validate and encode one input frame as `[topic, header, payload]`.
 * The payload part is a view of `frame.pixels`, not a copy.
 * Throws ProtocolError with the code the service would reject the frame with.
 */
export function encodeFrame(frame, { topic = TOPICS.frame, limits = DEFAULT_LIMITS } = {}) {
  const { pixels, shape, series, index, tNs, meta, resend = false } = frame;
  const dtype = frameDtype(pixels, frame.dtype);
  const [height, width] = checkShape(shape, limits);
  const itemsize = DTYPES[dtype].BYTES_PER_ELEMENT;
  const nbytes = height * width * itemsize;
  if (nbytes > limits.maxPayloadBytes) {
    throw new ProtocolError(
      "payload_size",
      `a ${height}x${width} ${dtype} frame is ${nbytes} bytes, over the limit ${limits.maxPayloadBytes}`,
    );
  }
  if (pixels.byteLength !== nbytes) {
    throw new ProtocolError(
      "payload_length",
      `shape [${height}, ${width}] of ${dtype} needs ${nbytes} bytes, the pixels have ${pixels.byteLength}`,
    );
  }
  const header = {
    v: PROTOCOL_VERSION,
    kind: "frame",
    series: checkSeries(series),
    index: checkIndex(index),
    dtype,
    shape: [height, width],
  };
  if (tNs !== undefined && tNs !== null) header.t_ns = checkTNs(tNs);
  if (meta !== undefined && meta !== null) header.meta = checkMeta(meta, limits);
  if (typeof resend !== "boolean") {
    throw new ProtocolError("resend", `expected resend as a boolean, got ${typeof resend}`);
  }
  if (resend) header.resend = true;
  const parts = encodeMessage(topic, header, pixels);
  checkHeaderSize(parts[1].length, limits.maxHeaderBytes);
  return parts;
}

/** The `start` message of a series (header only). */
export function encodeStart(series, { tNs, topic = TOPICS.frame } = {}) {
  return encodeMark("start", series, tNs, topic);
}

/** The `end` message of a series: the service flushes it and emits `series_end`. */
export function encodeEnd(series, { tNs, topic = TOPICS.frame } = {}) {
  return encodeMark("end", series, tNs, topic);
}

function encodeMark(kind, series, tNs, topic) {
  const header = { v: PROTOCOL_VERSION, kind, series: checkSeries(series) };
  if (tNs !== undefined && tNs !== null) header.t_ns = checkTNs(tNs);
  return encodeMessage(topic, header);
}

/** A control request: the map `{cmd, ...args}`, `cmd` first, then the arguments in order. */
export function encodeRequest(cmd, args = {}) {
  return encodeValue({ cmd, ...args });
}

/**
 * The `set_rois` request. `labels`: `{data, shape, dtype?}` with an integer typed
 * array (dtype inferred from it) or raw bytes plus `dtype`; or null to remove the ROIs.
 * Options: `series` (one series, or all), `fit` (the image is the ROIs' extent from the
 * frame's top-left corner), `source` (where the labels came from, 1 to 1024 characters).
 */
export function encodeSetRois(labels, options = {}) {
  const { series, fit, source, ...unknown } = options;
  const others = Object.keys(unknown);
  if (others.length) {
    // a misspelt option must not be dropped without a word
    throw new TypeError(`setRois: expected options series, fit, source; got ${others.join(", ")}`);
  }
  const args = series === undefined || series === null ? {} : { series: checkSeries(series) };
  const tail = {};
  if (fit !== undefined) {
    if (typeof fit !== "boolean") throw new TypeError(`setRois: expected fit as a boolean, got ${describe(fit)}`);
    tail.fit = fit;
  }
  if (source !== undefined) {
    // characters as the service counts them (code points, not UTF-16 units), no control ones
    const characters = typeof source === "string" ? [...source].length : 0;
    if (characters < 1 || characters > 1024 || /[\u0000-\u001f\u007f-\u009f]/u.test(source)) {
      throw new TypeError(
        `setRois: expected source as 1 to 1024 characters, none a control character, got ${
          typeof source === "string" ? `${characters} characters` : describe(source)
        }${typeof source === "string" && /[\u0000-\u001f\u007f-\u009f]/u.test(source) ? " with a control character" : ""}`,
      );
    }
    tail.source = source;
  }
  if (labels === null || labels === undefined) return encodeRequest("set_rois", { ...args, labels: null, ...tail });
  const { data, shape } = labels;
  const dtype = labels.dtype ?? dtypeOf(data, LABEL_DTYPES);
  if (!(dtype in LABEL_DTYPES) || !ArrayBuffer.isView(data)) {
    throw new ProtocolError(
      "dtype",
      `expected labels as one of ${Object.keys(LABEL_DTYPES).join(", ")} (an integer typed array), got ${describe(data)}`,
    );
  }
  const [height, width] = checkShape(shape, { maxSide: Number.MAX_SAFE_INTEGER });
  const nbytes = height * width * LABEL_DTYPES[dtype].BYTES_PER_ELEMENT;
  if (data.byteLength !== nbytes) {
    throw new ProtocolError(
      "payload_length",
      `labels of shape [${height}, ${width}] ${dtype} need ${nbytes} bytes, got ${data.byteLength}`,
    );
  }
  return encodeRequest("set_rois", { ...args, dtype, shape: [height, width], labels: asBytes(data), ...tail });
}

function toTopic(topic) {
  return typeof topic === "string" ? topicBytes.encode(topic) : asBytes(topic);
}

/** A Uint8Array over the same memory as any buffer or typed array (no copy). */
export function asBytes(part) {
  if (part instanceof ArrayBuffer || part instanceof SharedArrayBuffer) return new Uint8Array(part);
  if (ArrayBuffer.isView(part)) return new Uint8Array(part.buffer, part.byteOffset, part.byteLength);
  throw new TypeError(`expected a Buffer, typed array or ArrayBuffer, got ${describe(part)}`);
}

// ------------------------------------------------------------- client-side checks

/** `series` if it is a valid series id, else ProtocolError("series"). */
export function checkSeries(series) {
  if (typeof series !== "string" || !SERIES.test(series)) {
    throw new ProtocolError(
      "series",
      `expected a series id of 1-64 characters from [A-Za-z0-9._-], not starting with '.', got ${JSON.stringify(series)}`,
    );
  }
  return series;
}

function isInteger(value) {
  return typeof value === "bigint" || Number.isSafeInteger(value);
}

function checkIndex(index) {
  if (!isInteger(index) || index < 0 || index > MAX_INDEX) {
    throw new ProtocolError("index", `expected index as an integer 0..2**40-1, got ${describeValue(index)}`);
  }
  return index;
}

function checkTNs(tNs) {
  // A Number above 2^53 has already lost its last digits (and would be sent as a
  // float, which the service rejects): nanosecond timestamps must be BigInt.
  if (!isInteger(tNs) || tNs < 0 || BigInt(tNs) > MAX_T_NS) {
    const hint = typeof tNs === "number" && Number.isInteger(tNs) ? " (pass it as a BigInt)" : "";
    throw new ProtocolError("t_ns", `expected t_ns as an integer 0..2**63-1, got ${String(tNs)}${hint}`);
  }
  return tNs;
}

function checkShape(shape, limits) {
  const ok =
    Array.isArray(shape) &&
    shape.length === 2 &&
    shape.every((s) => Number.isSafeInteger(s) && s >= 1 && s <= limits.maxSide);
  if (!ok) {
    throw new ProtocolError(
      "shape",
      `expected shape [height, width], each an integer 1..${limits.maxSide}, got ${JSON.stringify(shape)}`,
    );
  }
  return shape;
}

function checkMeta(meta, limits) {
  if (meta === null || typeof meta !== "object" || Array.isArray(meta) || ArrayBuffer.isView(meta)) {
    throw new ProtocolError("meta", `expected meta as a plain object, got ${describe(meta)}`);
  }
  let size;
  try {
    size = encodeValue(meta).length;
  } catch (err) {
    throw new ProtocolError("meta", `meta cannot be encoded: ${err.message}`);
  }
  if (size > limits.maxMetaBytes) {
    throw new ProtocolError("meta", `meta is ${size} bytes encoded, limit ${limits.maxMetaBytes}`);
  }
  const levels = 1 + nestingLevels(meta); // the header's own map is the first
  if (levels > MAX_HEADER_LEVELS) {
    throw new ProtocolError(
      "header_decode",
      `expected a header nested at most ${MAX_HEADER_LEVELS} levels deep, meta makes it ${levels}`,
    );
  }
  return meta;
}

/** Levels of maps and arrays a header may nest, its own map the first (PROTOCOL.md). */
export const MAX_HEADER_LEVELS = 16;

/** Levels of objects and arrays in `value` (a scalar: 0), counted without recursion. */
function nestingLevels(value) {
  let deepest = 0;
  const stack = [[value, 1]];
  while (stack.length > 0) {
    const [item, level] = stack.pop();
    if (item === null || typeof item !== "object" || ArrayBuffer.isView(item)) continue;
    deepest = Math.max(deepest, level);
    for (const child of Array.isArray(item) ? item : Object.values(item)) stack.push([child, level + 1]);
  }
  return deepest;
}

function checkHeaderSize(size, limit) {
  if (size > limit) {
    throw new ProtocolError("header_size", `header is ${size} bytes, limit ${limit}`);
  }
}

function dtypeOf(data, table) {
  for (const [dtype, Ctor] of Object.entries(table)) if (data instanceof Ctor) return dtype;
  return null;
}

function frameDtype(pixels, dtype) {
  if (!ArrayBuffer.isView(pixels)) {
    throw new ProtocolError("dtype", `expected pixels as a typed array, got ${describe(pixels)}`);
  }
  // Uint8ClampedArray holds uint8 too; explicit `dtype` lets raw bytes be any type.
  const found = dtype ?? (pixels instanceof Uint8ClampedArray ? "|u1" : dtypeOf(pixels, DTYPES));
  if (dtype !== undefined && !(dtype in DTYPES)) {
    throw new ProtocolError(
      "dtype",
      `expected dtype one of ${Object.keys(DTYPES).join(", ")} (or none: taken from the typed array), ` +
        `got ${JSON.stringify(dtype)}`,
    );
  }
  if (!(found in DTYPES)) {
    throw new ProtocolError(
      "dtype",
      `expected pixels as Uint8Array (|u1), Uint16Array (<u2), Int16Array (<i2) or Float32Array (<f4), ` +
        `got ${dtype === undefined ? describe(pixels) : JSON.stringify(dtype)}` +
        (pixels instanceof Float64Array ? "; convert with Float32Array.from(pixels)" : ""),
    );
  }
  return found;
}

/** A value as a message shows it: strings quoted, so "13" is not read as 13. */
function describeValue(value) {
  return typeof value === "string" ? JSON.stringify(value) : String(value);
}

function describe(value) {
  if (value === null) return "null";
  if (typeof value === "object") return value.constructor?.name ?? "object";
  return typeof value;
}

// ------------------------------------------------------------------------ decode

// Integers come out of @msgpack/msgpack (useBigInt64) as BigInt when written in 8
// bytes and as Number otherwise. Make that depend on the value instead: Number
// whenever it is exact as a Number, BigInt only beyond 2^53 (t_ns and friends).
function normalizeInts(value) {
  if (typeof value === "bigint") {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value;
  }
  if (value === null || typeof value !== "object" || ArrayBuffer.isView(value)) return value;
  if (Array.isArray(value)) return value.map(normalizeInts);
  for (const key of Object.keys(value)) value[key] = normalizeInts(value[key]);
  return value;
}

// Decode a header; also returns the wire types of its top-level values.
function readHeader(bytes) {
  let wire;
  try {
    wire = scanHeader(bytes);
  } catch (err) {
    if (err instanceof WireError || err instanceof RangeError) {
      throw new ProtocolError("header_decode", `header is not a valid msgpack map: ${err.message}`);
    }
    throw err;
  }
  let header;
  try {
    header = decode(bytes, { useBigInt64: true });
  } catch (err) {
    throw new ProtocolError("header_decode", `header is not a valid msgpack map: ${err.message}`);
  }
  return { header: normalizeInts(header), wire };
}

/**
 * Decode one header part: exactly one msgpack map, str keys at every depth, valid
 * UTF-8 in every str. Integers are Numbers, or BigInts beyond 2^53; bin is Uint8Array.
 */
export function decodeHeader(bytes) {
  return readHeader(asBytes(bytes)).header;
}

/** Decode any msgpack value (a control reply, say) with the same integer rules. */
export function decodeValue(bytes) {
  return normalizeInts(decode(asBytes(bytes), { useBigInt64: true }));
}

const wireIs = (wire, key, family) => wire.get(key)?.family === family;

function inRange(value, low, high) {
  const big = BigInt(value);
  return big >= BigInt(low) && big <= BigInt(high);
}

/**
 * Decode one message (its parts as received from ZeroMQ).
 *
 * With `strict: false` (the service's output) only what is needed to read it safely
 * is checked: part count, header size and decoding, `v`, and for a message with a
 * payload its dtype, shape and length, against the output bounds
 * (`OUTPUT_HEADER_FACTOR`, `OUTPUT_PAYLOAD_FACTOR`; no `maxSide`). With `strict: true` every rule for input
 * messages is applied in the order of PROTOCOL.md section 6, so `err.reason` is
 * the code the service would report.
 *
 * `pixels` is a typed array over the received payload, not a copy, whenever its
 * offset is a multiple of the item size (always, for ZeroMQ buffers); otherwise a
 * copy, since typed arrays need aligned offsets.
 */
export function decodeMessage(parts, { strict = false, limits = DEFAULT_LIMITS } = {}) {
  if (parts.length !== 2 && parts.length !== 3) {
    throw new ProtocolError("parts", `expected 2 or 3 message parts, got ${parts.length}`);
  }
  const topic = topicText.decode(asBytes(parts[0]));
  const headerBytes = asBytes(parts[1]);
  checkHeaderSize(
    headerBytes.length,
    strict ? limits.maxHeaderBytes : OUTPUT_HEADER_FACTOR * limits.maxHeaderBytes,
  );
  const { header, wire } = readHeader(headerBytes);
  if (!(wireIs(wire, "v", INT) && header.v === PROTOCOL_VERSION)) {
    throw new ProtocolError("version", `expected protocol version v=1, got v=${show(header.v)}`);
  }
  const hasPayload = parts.length === 3;
  const message = { topic, header, payload: null, pixels: null, dtype: null, shape: null };

  if (strict) {
    const kind = wire.has("kind") ? header.kind : "frame";
    if (wire.has("kind") && !(wireIs(wire, "kind", STR) && KINDS.includes(kind))) {
      throw new ProtocolError("kind", `expected kind "frame", "start" or "end", got ${show(header.kind)}`);
    }
    if (!(wireIs(wire, "series", STR) && SERIES.test(header.series))) {
      throw new ProtocolError(
        "series",
        `expected series of 1-64 characters from [A-Za-z0-9._-], not starting with '.', got ${show(header.series)}`,
      );
    }
    // nil is the same as no t_ns
    if (header.t_ns != null && !(wireIs(wire, "t_ns", INT) && inRange(header.t_ns, 0, MAX_T_NS))) {
      throw new ProtocolError("t_ns", `expected t_ns as an integer 0..2**63-1, got ${show(header.t_ns)}`);
    }
    if (wire.has("meta")) {
      if (!wireIs(wire, "meta", MAP)) {
        throw new ProtocolError("meta", `expected meta as a map, got ${show(header.meta)}`);
      }
      // Measured re-encoded canonically: equal to its span on the wire whenever the
      // sender encoded canonically.
      const size = encodeValue(header.meta).length;
      if (size > limits.maxMetaBytes) {
        throw new ProtocolError("meta", `meta is ${size} bytes encoded, limit ${limits.maxMetaBytes}`);
      }
    }
    if (wire.has("resend") && !wireIs(wire, "resend", BOOL)) {
      throw new ProtocolError("resend", `expected resend as a bool, got ${show(header.resend)}`);
    }
    if (kind !== "frame") {
      if (hasPayload) throw new ProtocolError("payload_unexpected", `a "${kind}" message has no payload`);
      return message;
    }
    if (!hasPayload) {
      throw new ProtocolError("parts", "a frame needs 3 parts [topic, header, payload], got 2");
    }
    if (!(wireIs(wire, "index", INT) && inRange(header.index, 0, MAX_INDEX))) {
      throw new ProtocolError("index", `expected index as an integer 0..2**40-1, got ${show(header.index)}`);
    }
  }
  if (!hasPayload) return message;

  const dtype = header.dtype;
  if (!(wireIs(wire, "dtype", STR) && dtype in DTYPES)) {
    throw new ProtocolError(
      "dtype",
      `expected dtype one of ${Object.keys(DTYPES).join(", ")}, got ${show(dtype)}`,
    );
  }
  // Output sides have no maxSide: a traces payload has a row per ROI.
  const maxBytes = strict ? limits.maxPayloadBytes : OUTPUT_PAYLOAD_FACTOR * limits.maxPayloadBytes;
  const maxSide = strict ? limits.maxSide : Math.min(maxBytes, 2 ** 32 - 1);
  const shape = header.shape;
  const items = wire.get("shape")?.items;
  const shapeOk =
    wireIs(wire, "shape", ARRAY) &&
    items.length === 2 &&
    items.every((family) => family === INT) &&
    shape.every((s) => inRange(s, 1, maxSide));
  if (!shapeOk) {
    throw new ProtocolError("shape", `expected shape [height, width], each 1..${maxSide}, got ${show(shape)}`);
  }
  const Ctor = DTYPES[dtype];
  const count = Number(shape[0]) * Number(shape[1]);
  const expected = count * Ctor.BYTES_PER_ELEMENT;
  if (expected > maxBytes) {
    throw new ProtocolError(
      "payload_size",
      `a ${shape[0]}x${shape[1]} ${dtype} array needs ${expected} bytes, over the limit ${maxBytes}`,
    );
  }
  const payload = asBytes(parts[2]);
  if (payload.byteLength !== expected) {
    throw new ProtocolError(
      "payload_length",
      `shape ${show(shape)} ${dtype} needs ${expected} payload bytes, got ${payload.byteLength}`,
    );
  }
  message.payload = payload;
  message.dtype = dtype;
  message.shape = [shape[0], shape[1]];
  message.pixels = pixelView(Ctor, payload, count);
  return message;
}

// A typed array over the payload; a copy only when its offset is misaligned
// (PROTOCOL.md section 11: `new Float32Array(buf, offset)` needs offset % 4 == 0).
function pixelView(Ctor, bytes, count) {
  if (bytes.byteOffset % Ctor.BYTES_PER_ELEMENT === 0) {
    return new Ctor(bytes.buffer, bytes.byteOffset, count);
  }
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Ctor(copy.buffer, 0, count);
}

function show(value) {
  if (value === undefined) return "(missing)";
  if (typeof value === "bigint") return value.toString();
  if (ArrayBuffer.isView(value)) return `<bin ${value.byteLength} bytes>`;
  try {
    return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  } catch {
    return String(value);
  }
}
