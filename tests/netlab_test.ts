/**
 * Network-lab tests: two daemons in separate Linux network namespaces, the
 * private one behind an nftables NAT router (see `_netlab.ts`). They need
 * root, iproute2 and nftables; elsewhere every test is registered as ignored
 * with the reason in its name.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fixture, waitFor } from "./_daemon_harness.ts";
import {
  type LabNode,
  labTest,
  listNamespaces,
  NAT_PORTS,
  NetLab,
  pidsIn,
  PUBLIC_IP,
  REBOUND_NAT_PORTS,
  ROUTER_PUBLIC_IP,
  ROUTER_REBOUND_IP,
} from "./_netlab.ts";

const A_NAME = "secure-orchestrator";
const B_NAME = "data-processor-node";
const PORT = 7440;
const FIRST = '{"command":"run"}';
const SECOND = '{"command":"run","after":"rebinding"}';
// Persistent keepalives from A keep the NAT mapping used and show a rebinding within a second.
const FAST_KEEPALIVE = { timers: { persistent_keepalive_ms: 500 } };

/** Matches `IP:PORT` with the port inside `range`. */
function endpointIn(endpoint: unknown, ip: string, range: { min: number; max: number }): boolean {
  if (typeof endpoint !== "string" || !endpoint.startsWith(`${ip}:`)) return false;
  const port = Number(endpoint.slice(ip.length + 1));
  return port >= range.min && port <= range.max;
}

/** A (private, fixture 0) and B (public, fixture 1) running, A trusted by B and B by A. */
async function trustedPair(lab: NetLab): Promise<{ a: LabNode; b: LabNode }> {
  const a = await lab.node(lab.a, { name: "A", identity: 0, config: FAST_KEEPALIVE });
  const b = await lab.node(lab.b, { name: "B", identity: 1 });
  const startedB = await b.start("--listen", `0.0.0.0:${PORT}`, "--hostname", B_NAME);
  assert.equal(startedB.listen, `0.0.0.0:${PORT}`);
  await a.start(
    "--listen",
    `0.0.0.0:${PORT}`,
    "--hostname",
    A_NAME,
    "--peer",
    `${B_NAME}=${PUBLIC_IP}:${PORT}`,
  );

  const asked = await a.ok("handshake", B_NAME);
  assert.equal(asked.peer.public_key, fixture(1).public_key);
  assert.equal(asked.peer.hostname, B_NAME);
  const approved = await b.ok("approve", A_NAME);
  assert.equal(approved.peer.public_key, fixture(0).public_key);
  assert.equal(approved.delivered, true, "B's approval reached A through the NAT");
  return { a, b };
}

/** Sends `data` as JSON from A to B and checks the receipt. */
async function sendJson(a: LabNode, data: string): Promise<void> {
  const sent = await a.ok("send", B_NAME, "--data", data, "--type", "json");
  assert.equal(sent.to.public_key, fixture(1).public_key);
  assert.equal(sent.receipt.status, "stored");
}

// deno-lint-ignore no-explicit-any
async function inboxFromA(b: LabNode): Promise<any[]> {
  const inbox = await b.ok("inbox");
  // deno-lint-ignore no-explicit-any
  return inbox.messages.filter((m: any) => m.from_key === fixture(0).public_key);
}

labTest(
  "a node behind a NAT router handshakes, is approved and delivers a message to a public node",
  async () => {
    const lab = await NetLab.create();
    try {
      const { a, b } = await trustedPair(lab);
      await sendJson(a, FIRST);

      const got = await inboxFromA(b);
      assert.equal(got.length, 1, JSON.stringify(got));
      assert.equal(got[0].type, "json");
      assert.equal(got[0].data, FIRST);
      assert.equal(got[0].from, fixture(0).address);
      assert.equal(got[0].hostname, A_NAME);

      // B never saw 198.18.1.2 (it has no route there): A reached it only through the NAT.
      const seenByB = await b.peers();
      assert.equal(seenByB.length, 1, JSON.stringify(seenByB));
      assert.equal(seenByB[0].public_key, fixture(0).public_key);
      assert.equal(seenByB[0].trusted, true);
      assert.ok(
        endpointIn(seenByB[0].endpoint, ROUTER_PUBLIC_IP, NAT_PORTS),
        `B sees A at ${seenByB[0].endpoint}, not behind the NAT`,
      );
      const seenByA = await a.peers();
      assert.equal(seenByA.length, 1, JSON.stringify(seenByA));
      assert.equal(seenByA[0].public_key, fixture(1).public_key);
      assert.equal(seenByA[0].endpoint, `${PUBLIC_IP}:${PORT}`);
    } finally {
      await lab.destroy();
    }
  },
);

labTest(
  "when the NAT maps the private node to a new address and port, its session follows without a new handshake",
  async () => {
    const lab = await NetLab.create();
    try {
      const { a, b } = await trustedPair(lab);
      await sendJson(a, FIRST);
      // An age of at least 1 s makes a reset to 0 visible.
      const before = await waitFor("B's session with A to be 1 s old", async () => {
        const p = await b.peers();
        return p.length === 1 && p[0].session_age_s >= 1 ? p[0] : undefined;
      });
      assert.ok(endpointIn(before.endpoint, ROUTER_PUBLIC_IP, NAT_PORTS), before.endpoint);
      const sessionsBefore = (await b.info()).sessions;

      await lab.rebindNat();
      // A's keepalives alone (every 500 ms) must move B's idea of where A is.
      const after = await waitFor("B to see A at its new external endpoint", async () => {
        const p = await b.peers();
        return p.length === 1 && endpointIn(p[0].endpoint, ROUTER_REBOUND_IP, REBOUND_NAT_PORTS)
          ? p[0]
          : undefined;
      });
      assert.equal(after.public_key, fixture(0).public_key, "the same peer");
      assert.ok(
        after.session_age_s >= before.session_age_s,
        `session age went from ${before.session_age_s} to ${after.session_age_s}`,
      );
      assert.equal((await b.info()).sessions, sessionsBefore, "no new session");

      await sendJson(a, SECOND);
      const got = await inboxFromA(b);
      assert.deepEqual(got.map((m) => m.data), [FIRST, SECOND]);
      const last = await b.peers();
      assert.equal(last.length, 1);
      assert.ok(
        endpointIn(last[0].endpoint, ROUTER_REBOUND_IP, REBOUND_NAT_PORTS),
        last[0].endpoint,
      );
      assert.ok(last[0].session_age_s >= after.session_age_s, "still the same session");
    } finally {
      await lab.destroy();
    }
  },
);

const GARBAGE_INIT_SIZE = 384;
const FRAME_HANDSHAKE_INIT = 0x01;
const FRAME_HANDSHAKE_RESP = 0x02;
const PLAIN_PORT = 7441;

function garbageInit(): Uint8Array {
  const bytes = crypto.getRandomValues(new Uint8Array(GARBAGE_INIT_SIZE));
  bytes[0] = FRAME_HANDSHAKE_INIT;
  return bytes;
}

labTest(
  "a stealth node answers nothing to a prober without its key but lets a node that trusts it connect",
  async () => {
    const lab = await NetLab.create();
    try {
      const stealth = await lab.node(lab.b, { name: "B stealth", identity: 1 });
      await stealth.start("--listen", `0.0.0.0:${PORT}`, "--hostname", B_NAME, "--stealth");
      // The control: the same probe to a plain node on the same host is answered,
      // so silence from the stealth node is its choice, not a broken path.
      const plain = await lab.node(lab.b, { name: "B plain", identity: 2 });
      await plain.start("--listen", `0.0.0.0:${PLAIN_PORT}`);
      const a = await lab.node(lab.a, {
        name: "A",
        identity: 0,
        trust: [{
          public_key: fixture(1).public_key,
          address: fixture(1).address,
          hostname: B_NAME,
          since: new Date().toISOString(),
          mutual: false,
          endpoint: `${PUBLIC_IP}:${PORT}`,
        }],
      });
      await a.start("--listen", `0.0.0.0:${PORT}`, "--hostname", A_NAME);

      const answered = await lab.probe(lab.a, { host: PUBLIC_IP, port: PLAIN_PORT }, {
        bytes: garbageInit(),
        waitMs: 2_000,
      });
      assert.equal(answered.replies, 1, "the plain node answers a well-formed message 1");
      assert.equal(answered.firstType, FRAME_HANDSHAKE_RESP);
      assert.ok(answered.firstLength! <= GARBAGE_INIT_SIZE, "no amplification");

      const dropsBefore = (await stealth.info()).drops.mac1 ?? 0;
      const silent = await lab.probe(lab.a, { host: PUBLIC_IP, port: PORT }, {
        bytes: garbageInit(),
        waitMs: 2_000,
      });
      assert.deepEqual(silent, { replies: 0 }, "the stealth node sends nothing back");
      const drops = (await stealth.info()).drops;
      assert.equal(
        drops.mac1 ?? 0,
        dropsBefore + 1,
        "the probe arrived and was dropped for its mac1",
      );

      // A real pilot initiator that names the node only by endpoint has no key for mac1.
      const blind = await a.pilot("connect", `${PUBLIC_IP}:${PORT}`, "--timeout", "2s", "--json");
      assert.equal(blind.code, 5, blind.stdout + blind.stderr);
      assert.equal(blind.json?.code, "unreachable", blind.stdout);
      assert.deepEqual(await stealth.peers(), []);

      const known = await a.ok("connect", B_NAME);
      assert.equal(known.peer.public_key, fixture(1).public_key);
      const seen = await stealth.peers();
      assert.equal(seen.length, 1, JSON.stringify(seen));
      assert.equal(seen[0].public_key, fixture(0).public_key);
      assert.ok(endpointIn(seen[0].endpoint, ROUTER_PUBLIC_IP, NAT_PORTS), seen[0].endpoint);
    } finally {
      await lab.destroy();
    }
  },
);

labTest("tearing a lab down removes its namespaces and kills daemons left running", async () => {
  const lab = await NetLab.create();
  let names: string[] = [];
  let pid = 0;
  try {
    names = lab.namespaces;
    const listed = await listNamespaces();
    for (const ns of names) assert.ok(listed.includes(ns), `${ns} exists while the lab runs`);
    const b = await lab.node(lab.b, { name: "B", identity: 1 });
    pid = (await b.start("--listen", `0.0.0.0:${PORT}`)).pid;
    assert.ok((await pidsIn(lab.b)).includes(pid), "the daemon runs inside B's namespace");
    // Without its control file `daemon stop` cannot find the daemon, as after a
    // test that lost track of it: destroy must kill it anyway.
    await Deno.remove(join(b.home, "control.json"));
  } finally {
    await lab.destroy();
  }
  const left = await listNamespaces();
  for (const ns of names) assert.ok(!left.includes(ns), `${ns} was deleted`);
  let alive = true;
  try {
    alive = !(await Deno.readTextFile(`/proc/${pid}/stat`)).includes(") Z ");
  } catch {
    alive = false;
  }
  assert.equal(alive, false, `daemon ${pid} was killed`);
});
