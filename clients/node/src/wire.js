// A structural walk over one msgpack header, run before @msgpack/msgpack decodes it.
//
// Why: once decoded, JavaScript cannot tell the float 1.0 from the integer 1, a
// decoder that accepts integer map keys turns them into strings, and TextDecoder
// replaces invalid UTF-8 instead of failing. The protocol needs all three
// distinctions (PROTOCOL.md sections 4 and 6), so this walk checks the bytes and
// records the wire type of each top-level value (and of the items of top-level
// arrays, for `shape`).

/** Wire type families: int, float, str, bin, array, map, nil, bool. */
export const INT = "int";
export const FLOAT = "float";
export const STR = "str";
export const BIN = "bin";
export const ARRAY = "array";
export const MAP = "map";
export const NIL = "nil";
export const BOOL = "bool";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Thrown for bytes that are not exactly one valid header map. */
export class WireError extends Error {}

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  need(n) {
    if (this.pos + n > this.bytes.length) {
      throw new WireError(`truncated at byte ${this.pos}: ${n} more bytes needed`);
    }
  }

  u8() {
    this.need(1);
    return this.bytes[this.pos++];
  }

  // Big-endian lengths, as every multi-byte number inside msgpack.
  uint(n) {
    this.need(n);
    const at = this.pos;
    this.pos += n;
    if (n === 1) return this.view.getUint8(at);
    if (n === 2) return this.view.getUint16(at);
    return this.view.getUint32(at);
  }

  skip(n) {
    this.need(n);
    this.pos += n;
  }

  // A str: its bytes must be valid UTF-8 (ASCII, the common case, needs no decoder).
  str(n) {
    this.need(n);
    const body = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    for (let i = 0; i < n; i++) {
      if (body[i] >= 0x80) {
        try {
          utf8.decode(body);
        } catch {
          throw new WireError(`invalid UTF-8 in a str at byte ${this.pos - n}`);
        }
        break;
      }
    }
  }
}

// Values of a fixed size after their type byte: [bytes to skip, family].
const FIXED = new Map([
  [0xc0, [0, NIL]],
  [0xc2, [0, BOOL]],
  [0xc3, [0, BOOL]],
  [0xca, [4, FLOAT]],
  [0xcb, [8, FLOAT]],
  [0xcc, [1, INT]],
  [0xcd, [2, INT]],
  [0xce, [4, INT]],
  [0xcf, [8, INT]],
  [0xd0, [1, INT]],
  [0xd1, [2, INT]],
  [0xd2, [4, INT]],
  [0xd3, [8, INT]],
]);

/**
 * Walk one value; returns its family. `keys` (top level only) collects, for each
 * map key, the family of its value, and for arrays the families of their items.
 */
function walk(r, depth, keys) {
  if (depth > 64) throw new WireError("header nested deeper than 64 levels");
  const b = r.u8();
  if (b <= 0x7f || b >= 0xe0) return INT; // positive and negative fixint
  if (b >= 0x80 && b <= 0x8f) return walkMap(r, b & 0x0f, depth, keys);
  if (b >= 0x90 && b <= 0x9f) return walkArray(r, b & 0x0f, depth, keys);
  if (b >= 0xa0 && b <= 0xbf) {
    r.str(b & 0x1f);
    return STR;
  }
  const fixed = FIXED.get(b);
  if (fixed) {
    r.skip(fixed[0]);
    return fixed[1];
  }
  if (b >= 0xc4 && b <= 0xc6) {
    r.skip(r.uint(1 << (b - 0xc4))); // bin 8/16/32
    return BIN;
  }
  if (b >= 0xd9 && b <= 0xdb) {
    r.str(r.uint(1 << (b - 0xd9))); // str 8/16/32
    return STR;
  }
  if (b === 0xdc || b === 0xdd) return walkArray(r, r.uint(b === 0xdc ? 2 : 4), depth, keys);
  if (b === 0xde || b === 0xdf) return walkMap(r, r.uint(b === 0xde ? 2 : 4), depth, keys);
  // c1 is never used; c7-c9 and d4-d8 are ext types, which the protocol forbids.
  throw new WireError(`type byte 0x${b.toString(16)} is not allowed in a header`);
}

function walkArray(r, n, depth, keys) {
  const items = [];
  for (let i = 0; i < n; i++) items.push(walk(r, depth + 1, null));
  if (keys && !(keys instanceof Map)) keys.items = items;
  return ARRAY;
}

function walkMap(r, n, depth, keys) {
  const top = keys instanceof Map; // only the top-level map records its keys
  for (let i = 0; i < n; i++) {
    const at = r.pos;
    const b = r.u8();
    r.pos = at;
    const isStr = (b >= 0xa0 && b <= 0xbf) || (b >= 0xd9 && b <= 0xdb);
    if (!isStr) throw new WireError(`map key at byte ${at} is not a msgpack str`);
    walk(r, depth + 1, null);
    const keyBytes = r.bytes.subarray(at, r.pos);
    const slot = top ? {} : null;
    const family = walk(r, depth + 1, slot);
    if (top) keys.set(keyName(keyBytes), { family, items: slot.items });
  }
  return MAP;
}

// The key's text, without its str header byte(s).
function keyName(keyBytes) {
  const b = keyBytes[0];
  const skip = b <= 0xbf ? 1 : 1 + (1 << (b - 0xd9));
  return utf8.decode(keyBytes.subarray(skip));
}

/**
 * Check that `bytes` hold exactly one msgpack map with str keys at every depth,
 * valid UTF-8 in every str and no ext types. Returns a Map from each top-level key
 * to `{family, items}` (items: the item families when the value is an array).
 * Throws WireError otherwise.
 */
export function scanHeader(bytes) {
  const r = new Reader(bytes);
  const b = r.u8();
  r.pos = 0;
  const isMap = (b >= 0x80 && b <= 0x8f) || b === 0xde || b === 0xdf;
  const keys = new Map();
  const family = walk(r, 0, isMap ? keys : null);
  if (family !== MAP) throw new WireError(`the header is a msgpack ${family}, not a map`);
  if (r.pos !== bytes.length) {
    throw new WireError(`${bytes.length - r.pos} bytes after the header map`);
  }
  return keys;
}
