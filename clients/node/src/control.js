// Control the running service over its REP socket (PROTOCOL.md section 8).

import * as zmq from "zeromq";

import { CURVE_HINT } from "./curve.js";
import { ClientTimeoutError, ControlError, checkOptions, EndpointError, checkPort, endpointError, ipv6For } from "./errors.js";
import { checkSeries, decodeValue, encodeRequest, encodeSetRois } from "./protocol.js";

export const DEFAULT_CONTROL = "tcp://127.0.0.1:5557";

/**
 * Sends commands and waits for replies. Each method resolves with the reply map
 * (`ok` is true) and rejects with ControlError when the service answers `ok: false`
 * (the reply is `err.reply`) or ClientTimeoutError when no reply comes in time.
 *
 * A REQ socket that gave up waiting can send nothing more, so after a timeout the
 * socket is closed with linger 0 and a new one is opened: the client stays usable.
 * One request at a time: await each call. `curve` (CurveKeys, with the service's public
 * key) makes it a CURVE client of a service with `[security]`.
 */
export class Control {
  constructor(endpoint = DEFAULT_CONTROL, options = {}) {
    checkOptions("Control", options, ["timeoutMs", "context", "curve"]);
    const { timeoutMs = 5000, context, curve = null } = options;
    this.endpoint = endpoint;
    this.timeoutMs = timeoutMs;
    this.context = context;
    this.curve = curve;
    this.socket = this.open();
  }

  open() {
    const socket = new zmq.Request(this.context ? { context: this.context } : {});
    const ms = this.timeoutMs === null ? -1 : this.timeoutMs;
    socket.sendTimeout = ms;
    socket.receiveTimeout = ms;
    socket.linger = 0;
    try {
      this.curve?.apply(socket, { bind: false }); // again on each new socket, after a timeout
    } catch (err) {
      socket.close();
      throw err;
    }
    try {
      checkPort("connect to", this.endpoint);
      ipv6For(socket, this.endpoint);
      socket.connect(this.endpoint);
    } catch (err) {
      socket.close();
      throw err instanceof EndpointError ? err : endpointError(err, "connect to", this.endpoint);
    }
    return socket;
  }

  reset() {
    this.socket.linger = 0;
    this.socket.close();
    this.socket = this.open();
  }

  /** Send `{cmd, ...args}` and resolve with the reply. */
  async request(cmd, args = {}) {
    return this.exchange(cmd, encodeRequest(cmd, args));
  }

  async exchange(cmd, request) {
    if (this.socket.closed) throw new Error("this Control is closed");
    let raw;
    try {
      await this.socket.send(request);
      [raw] = await this.socket.receive();
    } catch (err) {
      if (err.code !== "EAGAIN") throw err;
      this.reset();
      // a service with [security] drops a refused key's handshake: a timeout too
      const keys = this.curve ? CURVE_HINT : "";
      throw new ClientTimeoutError(
        `no reply to "${cmd}" from ${this.endpoint} within ${this.timeoutMs} ms: ` +
          `is the service running with its control socket there?${keys}`,
      );
    }
    let reply;
    try {
      reply = decodeValue(raw);
    } catch (err) {
      throw new ControlError(`reply to "${cmd}" is not valid msgpack: ${err.message}`);
    }
    if (reply === null || typeof reply !== "object" || typeof reply.ok !== "boolean") {
      throw new ControlError(`reply to "${cmd}" is not a map with a boolean "ok"`, reply);
    }
    if (!reply.ok) {
      throw new ControlError(`service refused "${cmd}": ${reply.error ?? "no error message given"}`, reply);
    }
    return reply;
  }

  /** The service's counters: the fields of a `status` message, plus `ok`. */
  status() {
    return this.request("status");
  }

  /** Stop denoising; raw frames are still recorded. */
  pause() {
    return this.request("pause");
  }

  resume() {
    return this.request("resume");
  }

  /** Resolves once every frame received so far is on disk. */
  flush() {
    return this.request("flush");
  }

  /** Drain the queues and shut the service down. */
  stop() {
    return this.request("stop");
  }

  /** Swap the model between two frames; `path` is opened on the service's machine. */
  loadModel(path) {
    return this.request("load_model", { path: String(path) });
  }

  /**
   * End an open series as its sender's `end` would (a sender that crashed with it open);
   * the reply's `last_index` is the last frame received (-1: none). A bad series name
   * throws at once; a series that is not open is refused (ControlError).
   */
  endSeries(series) {
    return this.request("end_series", { series: checkSeries(series) });
  }

  /**
   * Replace the ROIs between two frames: `labels` `{data, shape, dtype?}` (an integer
   * label image, 0 = background), or null to remove them; options `series` (one series,
   * or all), `fit` and `source` (PROTOCOL.md, `set_rois`).
   */
  setRois(labels, options = {}) {
    return this.exchange("set_rois", encodeSetRois(labels, options));
  }

  close() {
    if (!this.socket.closed) this.socket.close();
  }
}
