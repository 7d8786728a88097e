/**
 * The resolver's naming rules: trusted bindings and `--peer` entries
 * resolve names, a hostname claimed on a session never does, and ambiguity
 * is a `conflict`, never a guess. With the discovery sources (LAN,
 * rendezvous, DHT): one merge rule over every source's answer, trust never
 * overridden, the first endpoint by rank, and a failing source hiding none.
 */
import assert from "node:assert/strict";
import {
  classifyPeer,
  type DiscoveryAnswer,
  type DiscoverySource,
  mergeCandidates,
  type PeerQuery,
  resolutionOf,
  Resolver,
  staticSource,
} from "../src/discovery/resolver.ts";
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
    idleMs: null,
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

// ---- Discovery sources and the merge rule ----

const WORKER_ADDRESS = "0102.0304.0506";
const IMPOSTOR_ADDRESS = "0a0b.0c0d.0e0f";

/** A discovery source's answer: a verified record's key, address, hostname and endpoint. */
function record(
  key: string,
  address: string,
  hostname: string,
  port?: number,
): DiscoveryAnswer["candidates"][number] {
  return {
    publicKey: Uint8Array.fromHex(key),
    address: parseAddress(address),
    hostname,
    record: { visibility: port === undefined ? "private" : "public", serial: 1 },
    ...(port === undefined ? {} : { endpoint: { host: "192.0.2.1", port } }),
  };
}

/** A discovery source that answers `candidates` and counts how often it was asked. */
function says(...candidates: DiscoveryAnswer["candidates"]): DiscoverySource & { asked: number } {
  const f = Object.assign(() => {
    f.asked++;
    return Promise.resolve({ candidates });
  }, { asked: 0 });
  return f;
}

const HOSTNAME: PeerQuery = { kind: "hostname", hostname: "data-processor-node" };

Deno.test("trust wins over discovery: a LAN or rendezvous claim of a trusted hostname is listed, not followed", async () => {
  const r = resolver({
    trust: [trusted(WORKER_KEY, "data-processor-node", WORKER_ADDRESS, "127.0.0.1:7440")],
  });
  const lan = says(record(IMPOSTOR_KEY, IMPOSTOR_ADDRESS, "data-processor-node", 9));
  const rendezvous = says(record(IMPOSTOR_KEY, IMPOSTOR_ADDRESS, "data-processor-node", 9));
  const found = await r.candidates(HOSTNAME, {
    timeoutMs: 1_000,
    discovery: { lan, rendezvous },
    thorough: true,
  });
  const d = found.decision;
  assert.deepEqual([d.outcome, d.key, d.source, d.trusted], ["found", WORKER_KEY, "trust", true]);
  assert.deepEqual(d.endpoint, { host: "127.0.0.1", port: 7440 }, "the remembered endpoint");
  assert.equal(d.endpointSource, "remembered");
  assert.equal(d.keyChanged, true, "only another key claims the trusted name out there");
  assert.deepEqual(
    d.claimants.map((k) => [k.key, k.sources]),
    [[WORKER_KEY, ["trust", "remembered"]], [IMPOSTOR_KEY, ["lan", "rendezvous"]]],
  );
  assert.deepEqual(
    found.sources.map((s) => [s.source, s.status]),
    [
      ["trust", "answered"],
      ["static", "none"],
      ["session", "none"],
      ["remembered", "answered"],
      ["lan", "answered"],
      ["rendezvous", "answered"],
      ["dht", "not_configured"],
    ],
  );
  assert.equal(resolutionOf("data-processor-node", found).expected.publicKey?.toHex(), WORKER_KEY);
  // The trusted key also heard on the LAN: no key change, and the name still needs no discovery.
  const also = await r.candidates(HOSTNAME, {
    timeoutMs: 1_000,
    discovery: { lan: says(record(WORKER_KEY, WORKER_ADDRESS, "data-processor-node", 9)) },
    thorough: true,
  });
  assert.equal(also.decision.keyChanged, false);
  const quick = await r.candidates(HOSTNAME, { timeoutMs: 1_000, discovery: { lan, rendezvous } });
  assert.deepEqual(
    quick.sources.slice(4).map((s) => s.status),
    ["skipped", "skipped", "not_configured"],
    "what this node knows settles it: the network is not asked",
  );
});

Deno.test("two keys claiming one hostname across the LAN and the rendezvous are a conflict, never a guess", async () => {
  const lan = says(record(WORKER_KEY, WORKER_ADDRESS, "data-processor-node", 7440));
  const rendezvous = says(record(IMPOSTOR_KEY, IMPOSTOR_ADDRESS, "data-processor-node", 9));
  for (const thorough of [true, false]) {
    const found = await resolver({}).candidates(HOSTNAME, {
      timeoutMs: 1_000,
      discovery: { lan, rendezvous },
      thorough,
    });
    assert.equal(found.decision.outcome, "conflict", `thorough: ${thorough}`);
    assert.deepEqual(found.decision.claimants.map((k) => k.key), [WORKER_KEY, IMPOSTOR_KEY]);
    assert.throws(
      () => resolutionOf("data-processor-node", found),
      (e) =>
        e instanceof PilotError && e.code === "conflict" &&
        e.message.includes(WORKER_ADDRESS) && e.message.includes(IMPOSTOR_ADDRESS),
    );
  }
  assert.equal(rendezvous.asked, 2, "a LAN answer alone does not settle a hostname");
  // A claimant the rendezvous names by address only counts too.
  const byAddress = mergeCandidates(HOSTNAME, [
    { source: "lan", ...record(WORKER_KEY, WORKER_ADDRESS, "data-processor-node", 7440) },
    { source: "rendezvous", address: parseAddress(IMPOSTOR_ADDRESS) },
  ]);
  assert.equal(byAddress.outcome, "conflict");
  assert.deepEqual(byAddress.claimants.map((k) => [k.key, k.address]), [
    [WORKER_KEY, WORKER_ADDRESS],
    [null, IMPOSTOR_ADDRESS],
  ]);
});

Deno.test("the handshake endpoint comes from the first source by rank: session, --peer, remembered, LAN, rendezvous, DHT", () => {
  const key = { kind: "key", keyHex: WORKER_KEY } as const;
  const at = (port: number) => ({ host: "192.0.2.1", port });
  const publicKey = Uint8Array.fromHex(WORKER_KEY);
  const all = [
    { source: "dht" as const, publicKey, endpoint: at(6) },
    { source: "rendezvous" as const, publicKey, endpoint: at(5) },
    { source: "lan" as const, publicKey, endpoint: at(4) },
    { source: "remembered" as const, publicKey, endpoint: at(3) },
    { source: "static" as const, endpoint: at(2) },
    { source: "session" as const, publicKey, endpoint: at(1) },
  ];
  for (let n = all.length; n > 0; n--) {
    const d = mergeCandidates(key, all.slice(0, n));
    assert.equal(d.endpointSource, all[n - 1]!.source);
    assert.deepEqual(d.endpoint, all[n - 1]!.endpoint);
  }
  // Another key's endpoint is never used for this one.
  const other = mergeCandidates(key, [
    { source: "lan", publicKey: Uint8Array.fromHex(OTHER_KEY), endpoint: at(9) },
  ]);
  assert.equal(other.endpoint, null);
});

Deno.test("a discovery source that throws or times out hides none of the others' answers", async () => {
  const never: DiscoverySource = () => new Promise(() => {});
  const found = await resolver({}).candidates(HOSTNAME, {
    timeoutMs: 50,
    discovery: {
      lan: () => {
        throw new Error("socket closed");
      },
      rendezvous: says(record(WORKER_KEY, WORKER_ADDRESS, "data-processor-node", 7440)),
      dht: never,
    },
    thorough: true,
  });
  assert.deepEqual(
    found.sources.slice(4).map((s) => [s.source, s.status, s.error?.code]),
    [["lan", "failed", "internal"], ["rendezvous", "answered", undefined], [
      "dht",
      "failed",
      "timeout",
    ]],
  );
  assert.match(found.sources[4]!.error!.message, /socket closed/);
  assert.equal(found.decision.outcome, "found");
  assert.equal(found.decision.key, WORKER_KEY);
  assert.equal(found.decision.endpointSource, "rendezvous");
});

Deno.test("a full key found on the LAN settles it: the rendezvous and the DHT are not asked", async () => {
  const rendezvous = says(record(WORKER_KEY, WORKER_ADDRESS, "w", 9));
  const dht = says();
  const found = await resolver({}).candidates({ kind: "key", keyHex: WORKER_KEY }, {
    timeoutMs: 1_000,
    discovery: { lan: says(record(WORKER_KEY, WORKER_ADDRESS, "w", 7440)), rendezvous, dht },
  });
  assert.deepEqual(found.decision.endpoint, { host: "192.0.2.1", port: 7440 });
  assert.deepEqual([rendezvous.asked, dht.asked], [0, 0]);
  assert.deepEqual(found.sources.slice(4).map((s) => s.status), ["answered", "skipped", "skipped"]);
});

Deno.test("a name no source knows is not_found, saying whether any rendezvous answered", async () => {
  const found = await resolver({}).candidates(HOSTNAME, {
    timeoutMs: 1_000,
    discovery: { rendezvous: () => ({ candidates: [], servers: { asked: 2, answered: 1 } }) },
  });
  assert.equal(found.decision.outcome, "not_found");
  assert.throws(
    () => resolutionOf("data-processor-node", found),
    (e) =>
      e instanceof PilotError && e.code === "not_found" && /no rendezvous knows it/.test(e.message),
  );
  // A private node whose record names no endpoint and no relay: unreachable, saying why.
  const hidden = await resolver({}).candidates(HOSTNAME, {
    timeoutMs: 1_000,
    discovery: {
      dht: says({ ...record(WORKER_KEY, WORKER_ADDRESS, "w"), unreachable: "a private node" }),
    },
  });
  assert.throws(
    () => resolutionOf("data-processor-node", hidden),
    (e) => e instanceof PilotError && e.code === "unreachable" && e.message === "a private node",
  );
});
