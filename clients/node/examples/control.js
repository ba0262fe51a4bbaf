#!/usr/bin/env node
// Send one control request and print the reply as one JSON line:
//
//   control.js ENDPOINT status | pause | resume | flush | stop
//   control.js ENDPOINT load_model PATH
//   control.js ENDPOINT set_rois FILE DTYPE HEIGHT WIDTH [SERIES]
//   control.js ENDPOINT set_rois none [SERIES]
//
// FILE holds the label image as raw bytes, C order, in DTYPE (|u1, <u2, <i2, <u4,
// <i4 or <i8); `none` removes the ROIs. The reply is printed whether ok is true or
// false, with bin values as "<bin N bytes>"; the exit status is 0 when a reply
// came, 1 when none came within 10 s, 2 for a wrong command line.

import { readFileSync } from "node:fs";

import { ClientTimeoutError, Control, ControlError } from "deepdenoise-client";

const [endpoint, cmd, ...args] = process.argv.slice(2);
const usage = (why) => {
  console.error(`${why}\nusage: control.js ENDPOINT CMD [ARGS...] (see the comment at the top)`);
  process.exit(2);
};
if (cmd === undefined) usage("missing ENDPOINT or CMD");

// JSON with integers beyond 2^53 (BigInt) written out exactly.
function toJson(value) {
  if (typeof value === "bigint") return value.toString();
  if (ArrayBuffer.isView(value)) return JSON.stringify(`<bin ${value.byteLength} bytes>`);
  if (Array.isArray(value)) return `[${value.map(toJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`)
      .join(",")}}`;
  }
  return JSON.stringify(value) ?? "null"; // NaN and Infinity become null, as in JSON.stringify
}

async function send(control) {
  switch (cmd) {
    case "status":
    case "pause":
    case "resume":
    case "flush":
    case "stop":
      return control[cmd]();
    case "load_model":
      if (args.length !== 1) usage("load_model needs PATH");
      return control.loadModel(args[0]);
    case "set_rois": {
      if (args[0] === "none") return control.setRois(null, { series: args[1] });
      if (args.length < 4) usage("set_rois needs FILE DTYPE HEIGHT WIDTH [SERIES] or none [SERIES]");
      const [file, dtype, height, width, series] = args;
      const labels = {
        data: new Uint8Array(readFileSync(file)),
        dtype,
        shape: [Number(height), Number(width)],
      };
      return control.setRois(labels, { series });
    }
    default:
      // Any other command goes out as-is; the service answers ok: false if unknown.
      return control.request(cmd);
  }
}

const control = new Control(endpoint, { timeoutMs: 10000 });
try {
  console.log(toJson(await send(control)));
} catch (err) {
  if (err instanceof ControlError && err.reply) console.log(toJson(err.reply));
  else if (err instanceof ClientTimeoutError) {
    console.error(err.message);
    process.exitCode = 1;
  } else throw err;
} finally {
  control.close();
}
