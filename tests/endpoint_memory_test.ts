/**
 * Remembered endpoints: a trusted peer's last authenticated endpoint is
 * kept in trust.json (`endpoint`, `last_seen`) so it survives a restart;
 * writes are coalesced to at most one per peer per minute, and one file
 * write carries every peer that is due. Old trust files without the fields
 * still load.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  EndpointMemory,
  LAST_SEEN_REFRESH_MS,
  REMEMBER_MIN_INTERVAL_MS,
} from "../src/daemon/endpoint_memory.ts";
import { TrustStore } from "../src/daemon/trust_store.ts";
import { tempDir } from "./_tmp.ts";

// Valid Ed25519 keys of the committed fixtures.
import fixtures from "./fixtures/identities.json" with { type: "json" };

const [F0, F1] = fixtures as { public_key: string; address: string }[];
const KEY0 = F0!.public_key;
const KEY1 = F1!.public_key;

function entry(key: string, address: string, extra: Record<string, unknown> = {}) {
  return { public_key: key, address, hostname: null, since: "x", mutual: true, ...extra };
}

async function writeTrust(dir: string, trusted: unknown[]): Promise<void> {
  const path = join(dir, "trust.json");
  await Deno.writeTextFile(path, JSON.stringify({ version: 1, trusted }), { mode: 0o600 });
  await Deno.chmod(path, 0o600);
}

async function readTrust(dir: string): Promise<Record<string, unknown>[]> {
  return JSON.parse(await Deno.readTextFile(join(dir, "trust.json"))).trusted;
}

/** A store whose file writes are counted. */
async function counted(dir: string): Promise<{ store: TrustStore; writes: () => number }> {
  const store = await TrustStore.load(dir);
  let n = 0;
  const remember = store.remember.bind(store);
  store.remember = (u) => {
    n++;
    return remember(u);
  };
  return { store, writes: () => n };
}

Deno.test("an old trust.json without endpoint or last_seen still loads", async () => {
  await using home = await tempDir("pilot-test-mem-");
  await writeTrust(home.path, [entry(KEY0, F0!.address)]);
  const store = await TrustStore.load(home.path);
  assert.equal(store.get(KEY0)?.endpoint, undefined);
  assert.equal(store.get(KEY0)?.last_seen, undefined);
});

Deno.test("TrustStore refuses a remembered endpoint or last_seen that does not parse", async () => {
  await using home = await tempDir("pilot-test-mem-");
  for (
    const [extra, why] of [
      [{ endpoint: "3fa2.09c1.77e4:1001" }, /bad endpoint/],
      [{ endpoint: 7440 }, /bad endpoint/],
      [{ endpoint: "127.0.0.1:7440", last_seen: "yesterday" }, /bad last_seen/],
      [{ endpoint: "127.0.0.1:7440", last_seen: 5 }, /bad last_seen/],
    ] as const
  ) {
    await writeTrust(home.path, [entry(KEY0, F0!.address, extra)]);
    await assert.rejects(TrustStore.load(home.path), why);
  }
  await writeTrust(home.path, [
    entry(KEY0, F0!.address, {
      endpoint: "worker.example.com:4000",
      last_seen: "2026-01-01T00:00:00.000Z",
    }),
  ]);
  const store = await TrustStore.load(home.path);
  assert.equal(store.get(KEY0)?.endpoint, "worker.example.com:4000");
  assert.equal(store.get(KEY0)?.last_seen, "2026-01-01T00:00:00.000Z");
});

Deno.test("a remembered endpoint survives a reload, and replacing the entry keeps it", async () => {
  await using home = await tempDir("pilot-test-mem-");
  await writeTrust(home.path, [entry(KEY0, F0!.address)]);
  const store = await TrustStore.load(home.path);
  const memory = new EndpointMemory(store);
  memory.observe(KEY0, "127.0.0.1:7440");
  assert.equal(await memory.flush(), 1);
  const again = await TrustStore.load(home.path);
  assert.equal(again.get(KEY0)?.endpoint, "127.0.0.1:7440");
  assert.ok(!Number.isNaN(Date.parse(again.get(KEY0)?.last_seen ?? "")));
  // The trust flow rewrites an entry (mutual, accept hashes) without the remembered fields.
  await again.put(entry(KEY0, F0!.address, { mutual: false }));
  assert.equal((await TrustStore.load(home.path)).get(KEY0)?.endpoint, "127.0.0.1:7440");
});

Deno.test("an untrusted key's endpoint is never remembered", async () => {
  await using home = await tempDir("pilot-test-mem-");
  await writeTrust(home.path, [entry(KEY0, F0!.address)]);
  const { store, writes } = await counted(home.path);
  const memory = new EndpointMemory(store);
  memory.observe(KEY1, "127.0.0.1:9");
  assert.equal(await memory.flush(), 0);
  assert.equal(writes(), 0);
  assert.deepEqual((await readTrust(home.path)).map((e) => e.public_key), [KEY0]);
});

Deno.test("a roaming peer is written at most once a minute; the latest endpoint lands after it", async () => {
  await using home = await tempDir("pilot-test-mem-");
  await writeTrust(home.path, [entry(KEY0, F0!.address)]);
  const { store, writes } = await counted(home.path);
  let now = 1_000_000;
  const memory = new EndpointMemory(store, { now: () => now, wallNow: () => now });
  memory.observe(KEY0, "127.0.0.1:1");
  assert.equal(await memory.flush(), 1);
  // A peer roaming on every packet: many observations, no write within the minute.
  for (let i = 2; i < 500; i++) {
    now += 100;
    memory.observe(KEY0, `127.0.0.1:${i}`);
    assert.equal(await memory.flush(), 0);
  }
  assert.equal(writes(), 1);
  assert.equal(store.get(KEY0)?.endpoint, "127.0.0.1:1");
  now = 1_000_000 + REMEMBER_MIN_INTERVAL_MS;
  assert.equal(await memory.flush(), 1);
  assert.equal(writes(), 2);
  assert.equal(store.get(KEY0)?.endpoint, "127.0.0.1:499");
  assert.equal((await readTrust(home.path))[0]!.endpoint, "127.0.0.1:499");
});

Deno.test("a peer that stays put is rewritten only when last_seen gets old", async () => {
  await using home = await tempDir("pilot-test-mem-");
  await writeTrust(home.path, [entry(KEY0, F0!.address)]);
  const { store, writes } = await counted(home.path);
  let now = 5_000_000;
  const memory = new EndpointMemory(store, { now: () => now, wallNow: () => now });
  memory.observe(KEY0, "127.0.0.1:1");
  await memory.flush();
  now += LAST_SEEN_REFRESH_MS - 1;
  memory.observe(KEY0, "127.0.0.1:1");
  assert.equal(await memory.flush(), 0);
  now += 1;
  memory.observe(KEY0, "127.0.0.1:1");
  assert.equal(await memory.flush(), 1);
  assert.equal(writes(), 2);
  assert.equal(store.get(KEY0)?.last_seen, new Date(now).toISOString());
});

Deno.test("every peer due is written in one file write", async () => {
  await using home = await tempDir("pilot-test-mem-");
  await writeTrust(home.path, [entry(KEY0, F0!.address), entry(KEY1, F1!.address)]);
  const { store, writes } = await counted(home.path);
  const memory = new EndpointMemory(store);
  memory.observe(KEY0, "127.0.0.1:1");
  memory.observe(KEY1, "[::1]:2");
  assert.equal(await memory.flush(), 2);
  assert.equal(writes(), 1);
  const file = await readTrust(home.path);
  assert.deepEqual(file.map((e) => e.endpoint), ["127.0.0.1:1", "[::1]:2"]);
});

Deno.test("flush({ force: true }) writes what the minute held back (daemon stopping)", async () => {
  await using home = await tempDir("pilot-test-mem-");
  await writeTrust(home.path, [entry(KEY0, F0!.address)]);
  const { store } = await counted(home.path);
  let now = 0;
  const memory = new EndpointMemory(store, { now: () => now, wallNow: () => 1e12 + now });
  memory.observe(KEY0, "127.0.0.1:1");
  await memory.flush();
  now += 1_000;
  memory.observe(KEY0, "127.0.0.1:2");
  assert.equal(await memory.flush(), 0);
  assert.equal(await memory.flush({ force: true }), 1);
  assert.equal((await TrustStore.load(home.path)).get(KEY0)?.endpoint, "127.0.0.1:2");
});

Deno.test("a peer untrusted while its endpoint waits is not written back", async () => {
  await using home = await tempDir("pilot-test-mem-");
  await writeTrust(home.path, [entry(KEY0, F0!.address)]);
  const store = await TrustStore.load(home.path);
  const memory = new EndpointMemory(store);
  memory.observe(KEY0, "127.0.0.1:1");
  await store.remove(KEY0);
  assert.equal(await memory.flush({ force: true }), 0);
  assert.deepEqual(await readTrust(home.path), []);
});
