// Socket behaviour that needs no service: loopback peers made with zeromq directly.

import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";

import * as zmq from "zeromq";

import {
  ClientTimeoutError,
  Control,
  EndpointError,
  Publisher,
  Subscriber,
  decodeValue,
  encodeValue,
} from "deepdenoise-client";

import { checkUsableAfterTimeout } from "./control_checks.js";

test("a control request that times out leaves the client usable (REQ reopened)", async () => {
  const rep = new zmq.Reply({ linger: 0 });
  await rep.bind("tcp://127.0.0.1:*");
  const ctl = new Control(rep.lastEndpoint, { timeoutMs: 2000 });
  try {
    await checkUsableAfterTimeout(rep, ctl, ClientTimeoutError);
  } finally {
    ctl.close();
    rep.close();
  }
});

test("an XPUB publisher waits for a subscriber, then frames reach it", async () => {
  const pub = await new Publisher({ mode: "pub", lingerMs: 0 }).bind("tcp://127.0.0.1:*");
  const sub = new zmq.Subscriber({ linger: 0 });
  try {
    await assert.rejects(pub.waitForSubscriber(50), ClientTimeoutError);
    sub.subscribe("frame");
    sub.connect(pub.endpoint);
    await pub.waitForSubscriber(5000);
    assert.equal(pub.subscribers, 1);
    const pixels = Uint8Array.from([1, 2, 3, 4, 5, 6]);
    await pub.sendFrame({ pixels, shape: [2, 3], series: "s", index: 0, tNs: 2n ** 62n });
    const [topic, header, payload] = await sub.receive();
    assert.equal(topic.toString(), "frame");
    assert.equal(decodeValue(header).t_ns, 2n ** 62n);
    assert.deepEqual(Array.from(payload), [1, 2, 3, 4, 5, 6]);
  } finally {
    pub.close();
    sub.close();
  }
});

test("the subscriber decodes output and its iteration ends after timeoutMs of silence", async () => {
  const out = new zmq.Publisher({ linger: 0 });
  await out.bind("tcp://127.0.0.1:*");
  const sub = new Subscriber({ topics: ["denoised"], timeoutMs: 300 }).connect(out.lastEndpoint);
  try {
    const header = encodeValue({ v: 1, series: "s", index: 3, dtype: "<f4", shape: [1, 2] });
    const payload = new Uint8Array(Float32Array.from([0.5, -2]).buffer);
    // A SUB joins asynchronously: publish until the first message gets through.
    let first = null;
    while (first === null) {
      await out.send(["denoised", header, payload]);
      first = await sub.receive({ timeoutMs: 50 }).catch(() => null);
    }
    assert.deepEqual(Array.from(first.pixels), [0.5, -2]);
    assert.equal(first.header.index, 3);
    await out.send(["denoised", header.subarray(0, 5), payload]); // a truncated header
    await out.send(["denoised", header, payload]);
    const seen = [];
    for await (const msg of sub) seen.push(msg); // drains the extra copies, then ends
    assert.ok(seen.length >= 1 && seen.every((m) => m.topic === "denoised"));
    assert.equal(sub.skipped, 1); // passed over, not the end of the loop
    assert.equal(sub.lastError.reason, "header_decode");
  } finally {
    sub.close();
    out.close();
  }
});

// A loopback port that nothing listens on (listened on, read, closed).
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test("a PUSH that connects to no service times out, then goes through once one binds", async () => {
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const waiting = new Publisher({ mode: "push", timeoutMs: 100, lingerMs: 0 }).connect(endpoint);
  try {
    // queued only on a live connection: nothing waits for a service that is not there
    await assert.rejects(waiting.start("s"), ClientTimeoutError);
  } finally {
    waiting.close();
  }
  const pull = new zmq.Pull({ linger: 0 });
  await pull.bind(endpoint);
  const pub = new Publisher({ mode: "push", timeoutMs: 5000, lingerMs: 0 }).connect(endpoint);
  try {
    await pub.start("s");
    const [topic] = await pull.receive();
    assert.equal(topic.toString(), "frame");
  } finally {
    pub.close();
    pull.close();
  }
});

test("a subscriber needs a topic, and refuses a typo", () => {
  assert.throws(() => new Subscriber({ topics: [] }), /at least one topic/);
  assert.throws(() => new Subscriber({ topics: ["triggers"] }), /no topic starts with "triggers"/);
  new Subscriber({ topics: ["trace", ""] }).close(); // prefixes of topics
});

test("a bind or connect that fails names the endpoint", async () => {
  const taken = new zmq.Pull({ linger: 0 });
  await taken.bind("tcp://127.0.0.1:*");
  const pub = new Publisher({ mode: "push", lingerMs: 0 });
  try {
    await assert.rejects(pub.bind(taken.lastEndpoint), (err) => {
      assert.ok(err instanceof EndpointError, err);
      assert.equal(err.code, "EADDRINUSE");
      assert.match(err.message, new RegExp(`cannot bind ${taken.lastEndpoint}`));
      return true;
    });
    assert.throws(
      () => new Subscriber().connect("127.0.0.1:5556"),
      /cannot connect to 127\.0\.0\.1:5556: .*expected an endpoint like tcp:\/\//,
    );
    assert.throws(() => new Control("127.0.0.1:5557"), EndpointError);
  } finally {
    pub.close();
    taken.close();
  }
});

test("a TCP port libzmq would take modulo 65536 is refused, naming the endpoint", async () => {
  // libzmq binds tcp://127.0.0.1:99999 on port 34463, or waits there for a connect
  const port = /cannot (bind|connect to) tcp:\/\/127\.0\.0\.1:(99999|65536)?: expected a TCP endpoint tcp:\/\/host:port with a port of 0-65535/;
  for (const endpoint of ["tcp://127.0.0.1:99999", "tcp://127.0.0.1:65536", "tcp://127.0.0.1:"]) {
    const pub = new Publisher({ mode: "push", lingerMs: 0 });
    try {
      await assert.rejects(pub.bind(endpoint), port);
      assert.throws(() => pub.connect(endpoint), port);
      assert.throws(() => new Subscriber().connect(endpoint), port);
      assert.throws(() => new Control(endpoint), port);
    } finally {
      pub.close();
    }
  }
});

test("closing a publisher while it waits says so", async () => {
  const pub = await new Publisher({ mode: "pub", lingerMs: 0 }).bind("tcp://127.0.0.1:*");
  const waiting = pub.waitForSubscriber(5000);
  pub.close();
  await assert.rejects(waiting, /was closed while waiting for a subscriber/);
});
