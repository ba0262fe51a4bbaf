#!/usr/bin/env node
// Send one series to the service as an acquisition program would:
//
//   publish.js ENDPOINT SERIES FRAMES HEIGHT WIDTH
//
// PUSH-connects to ENDPOINT (a service with input_mode = "pull" that binds its
// input), sends `start`, FRAMES uint16 frames and `end`, then exits 0. Frame i holds
// (1000 i + WIDTH r + c) mod 65536 at row r, column c, and t_ns = T0_NS + i.
//
// With DEEPDENOISE_CLIENT_KEY (this client's NAME.key_secret) and DEEPDENOISE_SERVER_KEY
// (the service's service.key) set, it connects with CURVE, for a service with
// [security]; only one of them set, or a key file that is not one, is bad usage (exit 2).

import { CurveKeys, Publisher } from "deepdenoise-client";

const T0_NS = 1_700_000_000_000_000_000n; // beyond 2^53: t_ns must be a BigInt

const [endpoint, series, frames, height, width] = process.argv.slice(2);
if (width === undefined) {
  console.error("usage: publish.js ENDPOINT SERIES FRAMES HEIGHT WIDTH");
  process.exit(2);
}
const [count, h, w] = [frames, height, width].map((text) => (/^[0-9]+$/.test(text) ? Number(text) : NaN));
if (!Number.isSafeInteger(count) || !(h >= 1) || !(w >= 1)) {
  console.error(
    `publish: expected FRAMES a whole number and HEIGHT, WIDTH whole numbers of 1 or more, got ${frames} ${height} ${width}\n` +
      "usage: publish.js ENDPOINT SERIES FRAMES HEIGHT WIDTH",
  );
  process.exit(2);
}
let curve;
try {
  curve = CurveKeys.fromEnv(); // null when neither variable is set
} catch (err) {
  console.error(`publish: ${err.message}`);
  process.exit(2);
}

function patternFrame(index) {
  const pixels = new Uint16Array(h * w);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) pixels[r * w + c] = (1000 * index + w * r + c) % 65536;
  }
  return pixels;
}

// lingerMs: on exit, wait up to 10 s for queued frames to reach the service.
const pub = new Publisher({ mode: "push", timeoutMs: 30000, lingerMs: 10000, curve }).connect(endpoint);
try {
  await pub.start(series, { tNs: T0_NS });
  for (let i = 0; i < count; i++) {
    // A fresh array per frame: large payloads are sent without a copy.
    await pub.sendFrame({ pixels: patternFrame(i), shape: [h, w], series, index: i, tNs: T0_NS + BigInt(i) });
  }
  await pub.end(series);
} catch (err) {
  // one line, as the C, C++ and Octave programs say it (a refused frame, a send timeout)
  console.error(`publish: ${err.message}`);
  process.exitCode = 1;
} finally {
  pub.close();
}
if (process.exitCode) process.exit();
console.log(`sent ${count} frames of ${h}x${w} <u2 to ${endpoint}`);
