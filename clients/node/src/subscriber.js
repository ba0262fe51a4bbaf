// The output side: denoised frames, traces, trigger, status and event messages.

import * as zmq from "zeromq";

import { CURVE_HINT } from "./curve.js";
import { ClientTimeoutError, ProtocolError, checkOptions, checkPort, endpointError, ipv6For } from "./errors.js";
import { DEFAULT_LIMITS, TOPICS, decodeMessage } from "./protocol.js";

export const DEFAULT_OUTPUT = "tcp://127.0.0.1:5556";

/**
 * Receives the service's output. `for await (const msg of sub)` yields decoded
 * messages `{topic, header, payload, pixels, dtype, shape}`; `pixels` is a typed
 * array over the received ZeroMQ buffer (no copy). Iteration ends when `timeoutMs`
 * passes without a message (never, with the default null) or the socket is closed; it
 * passes over a malformed message (counted in `skipped`, the error in `lastError`),
 * which `receive()` rejects with ProtocolError.
 *
 * SUB filtering matches prefixes: subscribe to "traces" and "trigger" in full.
 * A SUB socket misses what is published before its connection is up. `curve`
 * (CurveKeys, with the service's public key): a CURVE client of a service with `[security]`.
 */
export class Subscriber {
  constructor(options = {}) {
    checkOptions("Subscriber", options, ["topics", "timeoutMs", "limits", "context", "curve"]);
    const { topics = [TOPICS.denoised], timeoutMs = null, limits = DEFAULT_LIMITS, context, curve = null } = options;
    if (typeof topics === "string") {
      throw new TypeError(`expected an array of topics like ["denoised"], got the single "${topics}"`);
    }
    this.topics = [...topics];
    if (this.topics.length === 0) {
      // zeromq.js would subscribe to every topic; the other clients to none: neither is meant
      throw new TypeError('expected at least one topic ("" for every topic), got none');
    }
    const known = Object.values(TOPICS); // the service's output, and an acquisition's "frame"
    for (const topic of this.topics) {
      // a prefix no topic has (a typo) would receive nothing
      if (typeof topic === "string" && !known.some((name) => name.startsWith(topic))) {
        throw new TypeError(
          `no topic starts with ${JSON.stringify(topic)}: expected a prefix of ${known.join(", ")}`,
        );
      }
    }
    this.timeoutMs = timeoutMs;
    this.limits = limits;
    this.skipped = 0; // malformed messages the iteration passed over
    this.lastError = null;
    this.endpoint = null;
    this.curve = curve;
    this.socket = new zmq.Subscriber(context ? { context } : {});
    this.socket.linger = 0;
    this.socket.subscribe(...this.topics);
  }

  /** Connect to the service's output (it binds). */
  connect(endpoint = DEFAULT_OUTPUT) {
    this.curve?.apply(this.socket, { bind: false });
    checkPort("connect to", endpoint);
    ipv6For(this.socket, endpoint);
    try {
      this.socket.connect(endpoint);
    } catch (err) {
      throw endpointError(err, "connect to", endpoint);
    }
    this.endpoint = endpoint;
    return this;
  }

  /**
   * Receive and decode one message. Rejects with ClientTimeoutError after
   * `timeoutMs` (default: the constructor's; null waits forever) and with
   * ProtocolError for a malformed message.
   */
  async receive({ timeoutMs = this.timeoutMs } = {}) {
    this.socket.receiveTimeout = timeoutMs === null ? -1 : timeoutMs;
    let parts;
    try {
      parts = await this.socket.receive();
    } catch (err) {
      if (err.code !== "EAGAIN") throw err;
      throw new ClientTimeoutError(
        `no message on topics ${JSON.stringify(this.topics)} from ${this.endpoint} within ${timeoutMs} ms` +
          (this.curve ? `.${CURVE_HINT}` : ""),
      );
    }
    return decodeMessage(parts, { limits: this.limits });
  }

  async *[Symbol.asyncIterator]() {
    while (!this.socket.closed) {
      let msg;
      try {
        msg = await this.receive();
      } catch (err) {
        if (err instanceof ClientTimeoutError || this.socket.closed) return;
        if (!(err instanceof ProtocolError)) throw err;
        // one malformed message ends no loop (as the C and C++ subscribers skip it):
        // counted in `skipped`, the latest kept in `lastError`
        this.skipped += 1;
        this.lastError = err;
        continue;
      }
      yield msg;
    }
  }

  close() {
    if (!this.socket.closed) this.socket.close();
  }
}
