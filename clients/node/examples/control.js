#!/usr/bin/env node
// Send one control request and print the reply as one JSON line:
//
//   control.js ENDPOINT status | pause | resume | flush | stop
//   control.js ENDPOINT load_model PATH
//   control.js ENDPOINT end_series SERIES
//   control.js ENDPOINT set_rois [--fit] [--source TEXT] FILE DTYPE HEIGHT WIDTH [SERIES]
//   control.js ENDPOINT set_rois none [SERIES]
//   control.js ENDPOINT CMD        any other CMD goes out as {cmd: CMD}; the service
//                                  answers an unknown one with ok: false
//
// FILE holds the label image as raw bytes, C order, in DTYPE (|u1, <u2, <i2, <u4,
// <i4 or <i8); `none` removes the ROIs. --fit: the image is the ROIs' extent from the
// frames' top-left corner, not a whole frame; --source TEXT: where the labels came from
// (1 to 1024 characters, none a control character), named by the service's status and stored traces. The reply is printed whether ok is true or
// false, with bin values as "<bin N bytes>". Exit status: 0 for ok: true; 1 for
// ok: false; 2 for bad usage (a wrong command line, a FILE that cannot be read or
// does not hold HEIGHT x WIDTH labels of DTYPE, a request the encoder refuses); 3 when
// no reply came within 10 s or another transport error.
//
// With DEEPDENOISE_CLIENT_KEY (this client's NAME.key_secret) and DEEPDENOISE_SERVER_KEY
// (the service's service.key) set, it connects with CURVE, for a service with
// [security]; only one of them set, or a key file that is not one, is bad usage (exit 2).

import { readFileSync } from "node:fs";

import {
  Control,
  ControlError,
  CurveKeys,
  EndpointError,
  checkSeries,
  encodeRequest,
  encodeSetRois,
} from "deepdenoise-client";

/** Endpoint errors that mean the command line is wrong, not the transport. */
const MALFORMED = new Set(["EINVAL", "EPROTONOSUPPORT"]);

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

function side(text) {
  if (!/^[0-9]+$/.test(text) || Number(text) === 0) usage(`HEIGHT and WIDTH must be positive integers, not ${text}`);
  return Number(text);
}

// The command line as one call on a Control, checked (and encoded once) before
// anything is sent: every mistake here is a usage error.
function prepare() {
  switch (cmd) {
    case "load_model": {
      if (args.length !== 1) usage("load_model needs PATH");
      const path = args[0];
      return (control) => control.loadModel(path);
    }
    case "end_series": {
      if (args.length !== 1) usage("end_series needs SERIES");
      const series = checkSeries(args[0]);
      return (control) => control.endSeries(series);
    }
    case "set_rois": {
      if (args[0] === "none") {
        if (args.length > 2) usage("set_rois none takes at most SERIES");
        const series = args[1];
        encodeSetRois(null, { series });
        return (control) => control.setRois(null, { series });
      }
      const options = {};
      while (args[0]?.startsWith("--")) {
        const flag = args.shift();
        if (flag === "--fit") options.fit = true;
        else if (flag === "--source" && args.length) options.source = args.shift();
        else usage(flag === "--source" ? "--source needs TEXT" : `unknown option ${flag}`);
      }
      if (args[0] === "none") usage("set_rois none takes no options");
      if (args.length !== 4 && args.length !== 5) {
        usage("set_rois needs [--fit] [--source TEXT] FILE DTYPE HEIGHT WIDTH [SERIES] or none [SERIES]");
      }
      const [file, dtype, height, width, series] = args;
      const labels = { data: new Uint8Array(readFileSync(file)), dtype, shape: [side(height), side(width)] };
      encodeSetRois(labels, { series, ...options });
      return (control) => control.setRois(labels, { series, ...options });
    }
    default:
      // status, pause, resume, flush, stop, or any other command as-is.
      if (args.length !== 0) usage(`${cmd} takes no arguments`);
      encodeRequest(cmd);
      return (control) => control.request(cmd);
  }
}

let send, curve;
try {
  send = prepare();
} catch (err) {
  usage(`control: ${err.message}`);
}
try {
  curve = CurveKeys.fromEnv(); // null when neither variable is set
} catch (err) {
  console.error(`control: ${err.message}`); // the command line was fine: no usage line
  process.exit(2);
}

let control;
try {
  control = new Control(endpoint, { timeoutMs: 10000, curve });
  console.log(toJson(await send(control)));
} catch (err) {
  if (err instanceof ControlError && err.reply?.ok === false) {
    console.log(toJson(err.reply));
    console.error(err.message);
    process.exitCode = 1;
  } else if (err instanceof EndpointError && MALFORMED.has(err.code)) {
    console.error(`control: ${err.message}`); // a malformed ENDPOINT: bad usage, nothing sent
    process.exitCode = 2;
  } else {
    console.error(err.message); // no reply within 10 s, or a transport error
    process.exitCode = 3;
  }
} finally {
  control?.close();
}
