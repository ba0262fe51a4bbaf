// Shared by the socket tests: a Control whose request timed out still works.

import assert from "node:assert/strict";

import { decodeValue, encodeValue } from "deepdenoise-client";

/**
 * `ctl`'s first request reaches `rep` (a bound REP socket) and is left unanswered, so it
 * is rejected with `firstRejection`; the next goes out on the new REQ socket the client
 * opened (one that gave up can send nothing more) and gets its reply. `ctl` should have
 * a timeout that a loaded machine's loopback round trip fits in easily.
 */
export async function checkUsableAfterTimeout(rep, ctl, firstRejection) {
  const first = ctl.status();
  const [request] = await rep.receive(); // received, but not answered in time
  assert.deepEqual(decodeValue(request), { cmd: "status" });
  await assert.rejects(first, firstRejection);
  await rep.send(encodeValue({ ok: true })); // goes to the closed REQ: dropped

  const second = ctl.pause();
  const [next] = await rep.receive();
  assert.deepEqual(decodeValue(next), { cmd: "pause" });
  await rep.send(encodeValue({ ok: true, paused: true }));
  assert.deepEqual(await second, { ok: true, paused: true });
}
