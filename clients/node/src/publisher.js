// The acquisition side: send `start`, frames and `end` to the service's input.

import * as zmq from "zeromq";

import { CURVE_HINT, CURVE_SERVER_HINT } from "./curve.js";
import { ClientTimeoutError, checkOptions, checkPort, endpointError, ipv6For } from "./errors.js";
import { DEFAULT_LIMITS, TOPICS, asBytes, encodeEnd, encodeFrame, encodeStart } from "./protocol.js";

export const DEFAULT_INPUT = "tcp://127.0.0.1:5555";

const topicBytes = new TextEncoder();

/**
 * Sends frames to the service. One socket; await each call before the next (a
 * zeromq.js socket allows one pending send at a time).
 *
 * mode "pub": an XPUB socket the service's SUB connects to. Sends never block;
 *   call `waitForSubscriber()` before the first frame, since a PUB socket drops
 *   what it sends before a subscription has arrived (the "slow joiner").
 * mode "push": a PUSH socket for a service with `input_mode = "pull"`. A send waits
 *   while the service is not keeping up (back-pressure), at most `timeoutMs`.
 *
 * `curve` (CurveKeys) for a service with `[security]`: bound, the socket is a CURVE
 * server with this key pair (the service's `security.input_server_key` is its public
 * key); connected, a CURVE client (the keys need the service's public key).
 */
const OPTIONS = ["mode", "topic", "timeoutMs", "lingerMs", "limits", "context", "curve"];

export class Publisher {
  constructor(options = {}) {
    checkOptions("Publisher", options, OPTIONS);
    const {
      mode = "pub",
      topic = TOPICS.frame,
      timeoutMs = null,
      lingerMs = 1000,
      limits = DEFAULT_LIMITS,
      context,
      curve = null,
    } = options;
    if (mode !== "pub" && mode !== "push") {
      throw new TypeError(`expected mode "pub" or "push", got ${JSON.stringify(mode)}`);
    }
    this.mode = mode;
    this.topic = typeof topic === "string" ? topicBytes.encode(topic) : asBytes(topic);
    this.limits = limits;
    this.lingerMs = lingerMs;
    this.curve = curve;
    this.bound = false; // which CURVE hint a timeout gives
    this.endpoint = null;
    this.subscribers = 0;
    const socketOptions = context ? { context } : {};
    if (mode === "pub") {
      this.socket = new zmq.XPublisher(socketOptions);
      // Report every subscription and unsubscription, not only the first per
      // topic, so the count stays right with several services attached.
      this.socket.verbosity = "allSubsUnsubs";
    } else {
      this.socket = new zmq.Push(socketOptions);
      this.socket.sendTimeout = timeoutMs === null ? -1 : timeoutMs;
      // Queue only on a live connection: a connecting PUSH with no service there
      // waits (and times out) instead of queueing frames that close would discard.
      this.socket.immediate = true;
      // A few frames queued here, not libzmq's 1000: a send that returned is a frame
      // the service is about to read, and back-pressure comes as it falls behind.
      this.socket.sendHighWaterMark = 8;
    }
    this.socket.linger = lingerMs === null ? -1 : lingerMs;
  }

  /** Bind (the service connects); `tcp://127.0.0.1:*` picks a free port, see `endpoint`. */
  async bind(endpoint = DEFAULT_INPUT) {
    this.curve?.apply(this.socket, { bind: true });
    checkPort("bind", endpoint);
    ipv6For(this.socket, endpoint);
    try {
      await this.socket.bind(endpoint);
    } catch (err) {
      throw endpointError(err, "bind", endpoint);
    }
    this.endpoint = this.socket.lastEndpoint;
    this.bound = true;
    return this;
  }

  /** Connect to a service that binds its input (`input_bind = true`). */
  connect(endpoint = DEFAULT_INPUT) {
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
   * Pub mode: resolve once a subscriber to a prefix of `topic` is attached (at once
   * if one already is); frames sent afterwards reach it. Rejects with
   * ClientTimeoutError after `timeoutMs`.
   */
  async waitForSubscriber(timeoutMs = 10000) {
    if (this.mode !== "pub") throw new Error(`waitForSubscriber needs mode "pub", not "${this.mode}"`);
    const deadline = Date.now() + timeoutMs;
    while (this.subscribers === 0) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        throw new ClientTimeoutError(
          `no subscriber to topic "${new TextDecoder().decode(this.topic)}" on ${this.endpoint} ` +
            `within ${timeoutMs} ms: is the service running, its input connected to this endpoint?` +
            this.curveHint(),
        );
      }
      let msg;
      try {
        this.socket.receiveTimeout = remaining;
        [msg] = await this.socket.receive();
      } catch (err) {
        if (err.code === "EAGAIN" && !this.socket.closed) continue; // reported above
        throw this.closedWhile(err, "waiting for a subscriber");
      }
      this.countSubscription(msg);
    }
  }

  // An XPUB receives 0x01 + prefix for a subscription, 0x00 + prefix when it ends.
  countSubscription(msg) {
    if (msg.length === 0) return;
    const prefix = msg.subarray(1);
    const matches = prefix.length <= this.topic.length && prefix.every((b, i) => b === this.topic[i]);
    if (!matches) return;
    if (msg[0] === 1) this.subscribers += 1;
    else if (msg[0] === 0) this.subscribers = Math.max(0, this.subscribers - 1);
  }

  /**
   * Validate and send one frame: `{pixels, shape, series, index, tNs?, meta?, resend?, dtype?}`.
   * `pixels` is sent without a copy when large: do not write into it until this resolves.
   * Rejects with ProtocolError (its `reason` is the service's code) before sending anything.
   */
  async sendFrame(frame) {
    await this.send(encodeFrame(frame, { topic: this.topic, limits: this.limits }));
  }

  /** Announce a series (optional: a first frame also starts it). */
  async start(series, { tNs } = {}) {
    await this.send(encodeStart(series, { tNs, topic: this.topic }));
  }

  /** End a series: the service flushes it to disk and emits a `series_end` event. */
  async end(series, { tNs } = {}) {
    await this.send(encodeEnd(series, { tNs, topic: this.topic }));
  }

  async send(parts) {
    try {
      await this.socket.send(parts);
    } catch (err) {
      if (err.code !== "EAGAIN" || this.socket.closed) throw this.closedWhile(err, "sending");
      throw new ClientTimeoutError(
        `could not queue a message on ${this.endpoint} within ${this.socket.sendTimeout} ms: ` +
          `no PULL peer connected, or the service is not keeping up.${this.curveHint()}`,
      );
    }
  }

  // With keys, a refused handshake is dropped without a word: a timeout says what to check.
  curveHint() {
    if (!this.curve) return "";
    return this.bound ? CURVE_SERVER_HINT : CURVE_HINT;
  }

  // zeromq.js rejects a pending call on a socket closed meanwhile with a bare EAGAIN or
  // ENOTSOCK; say what happened instead.
  closedWhile(err, doing) {
    if (!this.socket.closed) return err;
    const closed = new Error(`the publisher on ${this.endpoint} was closed while ${doing}`, { cause: err });
    closed.code = "ENOTSOCK";
    return closed;
  }

  /** Close; queued messages still get up to `lingerMs` (default: the constructor's) to go out. */
  close({ lingerMs = this.lingerMs } = {}) {
    if (this.socket.closed) return;
    this.socket.linger = lingerMs === null ? -1 : lingerMs;
    this.socket.close();
  }
}
