/**
 * Handshake admission's lanes on their own (src/session/admission.ts): who
 * gets the known lane's priority, and what the work budget does with the
 * rest. Driven on a fake clock; no crypto runs.
 */

import assert from "node:assert/strict";
import { FakeClock } from "./_session_helpers.ts";
import {
  HANDSHAKE_COMPUTE_CONCURRENCY,
  HANDSHAKE_RATE_KNOWN,
  MAX_HANDSHAKES_IN_FLIGHT,
} from "../src/constants.ts";
import { type Admission, HandshakeAdmission } from "../src/session/admission.ts";
import type { Endpoint } from "../src/discovery/endpoint.ts";

const FRIEND: Endpoint = { hostname: "198.18.0.7", port: 7000 };

function candidate(from: Endpoint, proven: boolean) {
  return { from, proven, mac1Valid: () => Promise.resolve(true), halfOpen: 0 };
}

function lanes(results: Admission[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    const k = r.kind === "admit" ? r.lane : r.kind === "drop" ? r.reason : r.kind;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

Deno.test("HandshakeAdmission gives other ports of a trusted peer's IP the known lane only within that IP's bucket, proven or not", async () => {
  for (const proven of [false, true]) {
    const clock = new FakeClock();
    const admission = new HandshakeAdmission(clock.now);
    admission.noteKnown(FRIEND);
    const results: Admission[] = [];
    // Someone else behind the friend's NAT, knowing our key (mac1), from 200 ports.
    for (let port = 20_000; port < 20_200; port++) {
      const r = await admission.admitInit(candidate({ hostname: FRIEND.hostname, port }, proven));
      if (r.kind === "admit") admission.done();
      results.push(r);
    }
    const got = lanes(results);
    assert.equal(
      got.known,
      HANDSHAKE_RATE_KNOWN.burst,
      `proven: ${proven}: ${JSON.stringify(got)}`,
    );
  }
});

Deno.test("HandshakeAdmission keeps the known lane for a trusted peer's exact endpoint once it proved itself, whoever drained the lane", async () => {
  const clock = new FakeClock();
  const admission = new HandshakeAdmission(clock.now);
  admission.noteKnown(FRIEND);
  // Spoofed copies of the friend's exact endpoint drain its lane...
  for (let i = 0; i < 100; i++) {
    const r = await admission.admitInit(candidate(FRIEND, false));
    if (r.kind === "admit") admission.done();
  }
  // ...but only the friend receives the cookie, so a proven message 1 from there is the friend.
  const r = await admission.admitInit(candidate(FRIEND, true));
  assert.deepEqual(r.kind === "admit" ? r.lane : r, "known");
});

Deno.test("HandshakeAdmission bounds computations in flight, waiting ones included, and counts the rest", async () => {
  const clock = new FakeClock();
  const admission = new HandshakeAdmission(clock.now);
  const results: Admission[] = [];
  // Proven sources may wait for the budget, so the slots bind before it does.
  for (let k = 0; k < 2 * MAX_HANDSHAKES_IN_FLIGHT; k++) {
    results.push(
      await admission.admitInit(candidate({ hostname: `198.19.9.${k}`, port: 7000 }, true)),
    );
  }
  const got = lanes(results);
  assert.deepEqual(got, {
    proven: MAX_HANDSHAKES_IN_FLIGHT,
    handshakes_busy: MAX_HANDSHAKES_IN_FLIGHT,
  });
  assert.ok(results.some((r) => r.kind === "admit" && r.waitMs > 0), "some wait for the refill");
  for (let k = 0; k < MAX_HANDSHAKES_IN_FLIGHT; k++) admission.done();
  const again = await admission.admitInit(candidate({ hostname: "198.19.10.1", port: 7000 }, true));
  assert.equal(again.kind, "admit", "a slot is free again once one is done");
});

Deno.test("HandshakeAdmission reads the known endpoints from its source when first needed after an expiry, not at the expiry", async () => {
  const clock = new FakeClock();
  let reads = 0;
  let trusted: Endpoint[] = [FRIEND];
  const admission = new HandshakeAdmission(clock.now, () => {
    reads++;
    return trusted;
  });
  assert.equal(reads, 0, "nothing is read before it is needed");
  assert.equal(admission.isKnownEndpoint(FRIEND), true);
  assert.equal(admission.isKnownEndpoint({ ...FRIEND, port: 7001 }), false);
  assert.equal(reads, 1, "read once, then kept until an expiry");
  // Sweeps expire them every second; an idle node never reads them again.
  admission.expireKnown();
  admission.expireKnown();
  assert.equal(reads, 1);
  // Trust revoked: the next message 1 from there sees the new list, and is no longer known.
  trusted = [];
  const r = await admission.admitInit(candidate(FRIEND, true));
  assert.equal(reads, 2);
  assert.notDeepEqual(r.kind === "admit" ? r.lane : r, "known");
  // A session made meanwhile is known at once, until the next expiry.
  admission.noteKnown({ ...FRIEND, port: 7002 });
  assert.equal(admission.isKnownEndpoint({ ...FRIEND, port: 7002 }), true);
  admission.expireKnown();
  assert.equal(admission.isKnownEndpoint({ ...FRIEND, port: 7002 }), false);
  assert.equal(reads, 3);
});

Deno.test("HandshakeAdmission.compute() runs a trusted peer's computation at once, strangers' a few at a time", async () => {
  const admission = new HandshakeAdmission(new FakeClock().now);
  let running = 0;
  let most = 0;
  const gates: (() => void)[] = [];
  const stranger = () =>
    admission.compute("stranger", async () => {
      running++;
      most = Math.max(most, running);
      await new Promise<void>((resolve) => gates.push(resolve));
      running--;
    });
  const strangers = Array.from({ length: 3 * HANDSHAKE_COMPUTE_CONCURRENCY }, stranger);
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(running, HANDSHAKE_COMPUTE_CONCURRENCY);
  // The known lane does not queue behind them.
  assert.equal(await admission.compute("known", () => Promise.resolve("rekeyed")), "rekeyed");
  while (gates.length > 0 || running > 0) {
    gates.shift()?.();
    await new Promise((r) => setTimeout(r, 0));
  }
  await Promise.all(strangers);
  assert.equal(most, HANDSHAKE_COMPUTE_CONCURRENCY);
});
