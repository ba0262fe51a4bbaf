#!/usr/bin/env node
// Print what the service publishes:
//
//   subscribe.js ENDPOINT DENOISED TRACES TRIGGERS
//
// Subscribes to denoised, traces, trigger and status on ENDPOINT (the service's
// output), prints "ready" after the first status message (the subscription is
// then live), then one JSON line per denoised, traces or trigger message. Exits 0
// once it has seen DENOISED, TRACES and TRIGGERS of them, 1 after 60 s.
//
// With DEEPDENOISE_CLIENT_KEY (this client's NAME.key_secret) and DEEPDENOISE_SERVER_KEY
// (the service's service.key) set, it connects with CURVE, for a service with
// [security]; only one of them set, or a key file that is not one, is bad usage (exit 2).

import { CurveKeys, Subscriber } from "deepdenoise-client";

const [endpoint, ...counts] = process.argv.slice(2);
if (counts.length !== 3) {
  console.error("usage: subscribe.js ENDPOINT DENOISED TRACES TRIGGERS");
  process.exit(2);
}
let curve;
try {
  curve = CurveKeys.fromEnv(); // null when neither variable is set
} catch (err) {
  console.error(`subscribe: ${err.message}`);
  process.exit(2);
}
const wanted = { denoised: Number(counts[0]), traces: Number(counts[1]), trigger: Number(counts[2]) };
const seen = { denoised: 0, traces: 0, trigger: 0 };
const done = () => Object.keys(wanted).every((topic) => seen[topic] >= wanted[topic]);

// What each line shows of a message, by topic (float sums as plain JSON numbers).
const summary = {
  denoised: ({ header, pixels }) => ({
    series: header.series,
    index: header.index,
    dtype: header.dtype,
    shape: header.shape,
    sum: pixels.reduce((total, p) => total + p, 0),
  }),
  traces: ({ header }) => ({
    series: header.series,
    index: header.index,
    shape: header.shape,
    labels: header.labels,
    columns: header.columns,
  }),
  trigger: ({ header }) => ({
    series: header.series,
    index: header.index,
    rule: header.rule,
    column: header.column,
    value: header.value,
  }),
};

const sub = new Subscriber({ topics: ["denoised", "traces", "trigger", "status"], curve }).connect(endpoint);
const timer = setTimeout(() => {
  console.error(`timed out after 60 s; seen ${JSON.stringify(seen)} of ${JSON.stringify(wanted)}`);
  process.exit(1);
}, 60000);

let ready = false;
for await (const msg of sub) {
  if (msg.topic === "status") {
    if (!ready) console.log("ready");
    ready = true;
  } else if (msg.topic in summary) {
    seen[msg.topic] += 1;
    console.log(JSON.stringify({ topic: msg.topic, ...summary[msg.topic](msg) }));
  }
  if (ready && done()) break;
}
clearTimeout(timer);
sub.close();
