/**
 * The resolver's naming rules: trusted bindings and `--peer` entries
 * resolve names, a hostname claimed on a session never does, and ambiguity
 * is a `conflict`, never a guess.
 */
import assert from "node:assert/strict";
import { classifyPeer, Resolver, staticSource } from "../src/discovery/resolver.ts";
import { sessionSource, trustSource } from "../src/daemon/peer_sources.ts";
import { PilotError } from "../src/errors.ts";
import { parseAddress } from "../src/identity/address.ts";
import type { PeerStatus } from "../src/session/manager.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import type { TrustEntry } from "../src/services/trust_types.ts";

const WORKER_KEY = "11".repeat(32);
const IMPOSTOR_KEY = "22".repeat(32);
const OTHER_KEY = "33".repeat(32);

function trusted(key: string, hostname: string | null, address: string, endpoint?: string) {
  const e: TrustEntry = { public_key: key, address, hostname, since: "", mutual: true };
  if (endpoint) e.endpoint = endpoint;
  return e;
}

function session(key: string, hostname: string, address: string, port: number): PeerStatus {
  const identity = {
    publicKey: Uint8Array.fromHex(key),
    keyHex: key,
    address: parseAddress(address),
    hostname,
  } as PeerIdentity;
  return {
    identity,
    endpoint: { hostname: "127.0.0.1", port, transport: "udp" } as PeerStatus["endpoint"],
    trusted: false,
    sessionAgeS: 1,
    rttMs: null,
    dropped: 0,
  };
}

function resolver(
  o: { trust?: TrustEntry[]; sessions?: PeerStatus[]; peers?: Record<string, string> },
) {
  return new Resolver([
    sessionSource(() => o.sessions ?? []),
    trustSource(() => o.trust ?? []),
    staticSource(o.peers ?? {}),
  ]);
}

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof PilotError) return e.code;
    throw e;
  }
  return "ok";
}

Deno.test("a hostname claimed on an untrusted session never resolves", () => {
  const r = resolver({
    sessions: [session(IMPOSTOR_KEY, "data-processor-node", "0a0b.0c0d.0e0f", 9)],
  });
  assert.equal(code(() => r.resolve("data-processor-node")), "not_found");
});

Deno.test("a --peer hostname resolves to its endpoint, not to a stranger claiming the name", () => {
  const r = resolver({
    sessions: [session(IMPOSTOR_KEY, "data-processor-node", "0a0b.0c0d.0e0f", 9)],
    peers: { "data-processor-node": "127.0.0.1:7440" },
  });
  const got = r.resolve("data-processor-node");
  assert.deepEqual(got.endpoint, { host: "127.0.0.1", port: 7440 });
  assert.deepEqual(got.expected, { hostname: "data-processor-node" });
  assert.equal(got.trusted, false);
  assert.equal(got.pinned, false, "first contact by a configured hostname is trust on first use");
});

Deno.test("a trusted binding keeps its name whatever a session or the --peer table claims", () => {
  const r = resolver({
    trust: [trusted(WORKER_KEY, "data-processor-node", "0102.0304.0506", "127.0.0.1:7440")],
    sessions: [session(IMPOSTOR_KEY, "data-processor-node", "0a0b.0c0d.0e0f", 9)],
    peers: { "data-processor-node": "127.0.0.1:7999" },
  });
  const got = r.resolve("data-processor-node");
  assert.equal(got.expected.publicKey?.toHex(), WORKER_KEY);
  // The configured endpoint says where to handshake; the trusted key, who must answer there.
  assert.deepEqual(got.endpoint, { host: "127.0.0.1", port: 7999 });
  assert.equal(got.trusted, true);
  assert.equal(got.pinned, true);
});

Deno.test("a trusted peer's remembered endpoint is used when nothing stronger knows one", () => {
  const r = resolver({
    trust: [trusted(WORKER_KEY, "w", "0102.0304.0506", "worker.example.com:4000")],
  });
  for (const name of ["w", "0102.0304.0506", WORKER_KEY]) {
    const got = r.resolve(name);
    assert.deepEqual(got.endpoint, { host: "worker.example.com", port: 4000 }, name);
    assert.equal(got.expected.publicKey?.toHex(), WORKER_KEY, name);
    assert.equal(got.trusted, true, name);
  }
});

Deno.test("a remembered endpoint ranks below a live session and a --peer entry", () => {
  const remembered = trusted(WORKER_KEY, "w", "0102.0304.0506", "127.0.0.1:1111");
  const live = session(WORKER_KEY, "w", "0102.0304.0506", 2222);
  const bySession = resolver({
    trust: [remembered],
    sessions: [live],
    peers: { w: "127.0.0.1:3333" },
  });
  assert.deepEqual(bySession.resolve(WORKER_KEY).endpoint, { host: "127.0.0.1", port: 2222 });
  assert.deepEqual(bySession.resolve("0102.0304.0506").endpoint, {
    host: "127.0.0.1",
    port: 2222,
  });
  const byConfig = resolver({ trust: [remembered], peers: { w: "127.0.0.1:3333" } });
  assert.deepEqual(byConfig.resolve("w").endpoint, { host: "127.0.0.1", port: 3333 });
  assert.equal(byConfig.resolve("w").expected.publicKey?.toHex(), WORKER_KEY);
});

Deno.test("a remembered endpoint never names a key: a stranger's session there is not followed", () => {
  // A stranger now answers at the trusted peer's old endpoint: the name still
  // expects the trusted key (the handshake there then fails with key_changed).
  const r = resolver({
    trust: [trusted(WORKER_KEY, "w", "0102.0304.0506", "127.0.0.1:1111")],
    sessions: [session(IMPOSTOR_KEY, "w", "0a0b.0c0d.0e0f", 1111)],
  });
  const got = r.resolve("w");
  assert.equal(got.expected.publicKey?.toHex(), WORKER_KEY);
  assert.deepEqual(got.endpoint, { host: "127.0.0.1", port: 1111 });
});

Deno.test("staticSource() reads its table at every lookup (peer add / peer remove)", () => {
  const table: Record<string, string> = {};
  const r = resolver({ peers: table });
  assert.equal(code(() => r.resolve("late")), "not_found");
  table.late = "127.0.0.1:4444";
  assert.deepEqual(r.resolve("late").endpoint, { host: "127.0.0.1", port: 4444 });
  delete table.late;
  assert.equal(code(() => r.resolve("late")), "not_found");
});

Deno.test("a trusted peer's live session gives its current endpoint first (roaming)", () => {
  const r = resolver({
    trust: [trusted(WORKER_KEY, "w", "0102.0304.0506", "127.0.0.1:7440")],
    sessions: [session(WORKER_KEY, "w", "0102.0304.0506", 7555)],
  });
  assert.deepEqual(r.resolve("0102.0304.0506").endpoint, { host: "127.0.0.1", port: 7555 });
});

Deno.test("two trusted peers with one hostname are a conflict", () => {
  const r = resolver({
    trust: [
      trusted(WORKER_KEY, "twin", "0102.0304.0506"),
      trusted(OTHER_KEY, "twin", "0a0b.0c0d.0e0f"),
    ],
  });
  assert.equal(code(() => r.resolve("twin")), "conflict");
});

Deno.test("an address resolves through a live session (an address proves itself) and is pinned", () => {
  const r = resolver({ sessions: [session(OTHER_KEY, "x", "0a0b.0c0d.0e0f", 9)] });
  const got = r.resolve("0a0b.0c0d.0e0f");
  assert.equal(got.expected.publicKey?.toHex(), OTHER_KEY);
  assert.equal(got.pinned, true);
  assert.equal(got.trusted, false);
});

Deno.test("two live sessions sharing an address are a conflict", () => {
  const r = resolver({
    sessions: [
      session(OTHER_KEY, "x", "0a0b.0c0d.0e0f", 9),
      session(IMPOSTOR_KEY, "y", "0a0b.0c0d.0e0f", 10),
    ],
  });
  assert.equal(code(() => r.resolve("0a0b.0c0d.0e0f")), "conflict");
});

Deno.test("a full key is pinned even with no endpoint known", () => {
  const got = resolver({}).resolve(WORKER_KEY.toUpperCase());
  assert.equal(got.expected.publicKey?.toHex(), WORKER_KEY);
  assert.equal(got.endpoint, undefined);
  assert.equal(got.pinned, true);
});

Deno.test("an endpoint expects no key and is not pinned", () => {
  const got = resolver({}).resolve("127.0.0.1:7440");
  assert.deepEqual(got.expected, {});
  assert.equal(got.pinned, false);
});

Deno.test("an unknown hostname is not_found and bad text is invalid_argument", () => {
  assert.equal(code(() => resolver({}).resolve("nobody")), "not_found");
  assert.equal(code(() => resolver({}).resolve("no such peer!")), "invalid_argument");
});

Deno.test("classifyPeer() tells endpoints, keys, addresses and hostnames apart", () => {
  assert.equal(classifyPeer("udp://example.org:7440").kind, "endpoint");
  assert.equal(classifyPeer("[::1]:7440").kind, "endpoint");
  assert.equal(classifyPeer("10.0.0.1:7440").kind, "endpoint");
  assert.equal(classifyPeer("ab".repeat(32)).kind, "key");
  assert.equal(classifyPeer("3FA209C177E4").kind, "address");
  assert.equal(classifyPeer("worker-7").kind, "hostname");
});
