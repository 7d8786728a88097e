/** Received datagrams admitted into processing: count and byte caps, in all and for strangers. */
import assert from "node:assert/strict";
import { INFLIGHT_LIMITS, InflightDatagrams } from "../src/daemon/inflight.ts";
import { MAX_INFLIGHT_STRANGER_DATAGRAMS } from "../src/constants.ts";

const LIMITS = { count: 10, bytes: 1_000, strangerCount: 3, strangerBytes: 300 };

Deno.test("datagrams are admitted up to the count and the byte caps, whichever binds first", () => {
  const f = new InflightDatagrams(LIMITS);
  for (let i = 0; i < 10; i++) assert.ok(f.admit(10, false), `small datagram ${i}`);
  assert.equal(f.admit(10, false), false, "the count binds");
  for (let i = 0; i < 10; i++) f.release(10, false);
  assert.deepEqual(f.load, { count: 0, bytes: 0, strangerCount: 0, strangerBytes: 0 });
  assert.ok(f.admit(600, false));
  assert.equal(f.admit(401, false), false, "the bytes bind");
  assert.ok(f.admit(400, false), "exactly at the cap is admitted");
  f.release(600, false);
  assert.ok(f.admit(600, false), "released bytes are admitted again");
});

Deno.test("strangers have their own smaller share, and a trusted peer's datagrams still pass beside it", () => {
  const f = new InflightDatagrams(LIMITS);
  assert.ok(f.admit(200, true));
  assert.equal(f.admit(101, true), false, "the strangers' bytes bind");
  assert.ok(f.admit(100, true));
  assert.ok(f.admit(500, false), "a trusted peer's datagram passes");
  assert.deepEqual(f.load, { count: 3, bytes: 800, strangerCount: 2, strangerBytes: 300 });
  f.release(200, true);
  assert.ok(f.admit(200, true));
  // Strangers' datagrams count in the total too.
  assert.equal(f.admit(201, false), false);
  const g = new InflightDatagrams(LIMITS);
  for (let i = 0; i < 3; i++) assert.ok(g.admit(1, true));
  assert.equal(g.admit(1, true), false, "the strangers' count binds");
  assert.ok(g.admit(1, false));
});

Deno.test("the daemon's caps: large datagrams meet the byte cap long before the count", () => {
  const f = new InflightDatagrams();
  let admitted = 0;
  while (f.admit(65_507, false)) admitted++;
  assert.equal(admitted, Math.floor(INFLIGHT_LIMITS.bytes / 65_507));
  assert.ok(admitted < INFLIGHT_LIMITS.count);
  // Handshake-sized datagrams from strangers fill their count before their bytes.
  const g = new InflightDatagrams();
  let strangers = 0;
  while (g.admit(1_400, true)) strangers++;
  assert.equal(strangers, MAX_INFLIGHT_STRANGER_DATAGRAMS);
});
