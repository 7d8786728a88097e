/**
 * NAT-lab tests: the topology of `_natlab.ts` behaves as the NAT kinds it
 * claims, checked with plain UDP (`_udp_probe.ts`) before any `pilot`
 * scenario relies on it. They need root, iproute2 and nftables; elsewhere
 * every test is registered as ignored with the reason in its name.
 */
import assert from "node:assert/strict";
import { fixture, waitFor } from "./_daemon_harness.ts";
import {
  NatLab,
  type NatLab as NatLabType,
  natPorts,
  PUBLIC_NODE_IP,
  RENDEZVOUS_IP,
  type UdpAgent,
  wanIp,
} from "./_natlab.ts";
import { labTest, listNamespaces, pidsIn, runOk } from "./_netlab.ts";

const REFLECTOR_PORT = 3478;
const RENDEZVOUS = { host: RENDEZVOUS_IP, port: REFLECTOR_PORT };
const PUBLIC = { host: PUBLIC_NODE_IP, port: REFLECTOR_PORT };
// Long enough for a datagram across three namespaces many times over.
const SILENCE_MS = 700;

/** Splits `IP:PORT`. */
function endpoint(text: string | null): { host: string; port: number } {
  assert.ok(text !== null, "the reflector answered");
  const i = text.lastIndexOf(":");
  return { host: text.slice(0, i), port: Number(text.slice(i + 1)) };
}

/** Asserts `seen` is the site's WAN address with a port of its current range. */
function assertMapped(
  seen: string | null,
  site: { wanIp: string; ports: { min: number; max: number } },
) {
  const e = endpoint(seen);
  assert.equal(e.host, site.wanIp, `${seen} is on the router's WAN address`);
  assert.ok(
    e.port >= site.ports.min && e.port <= site.ports.max,
    `${seen} in ${site.ports.min}-${site.ports.max}`,
  );
}

/** Reflectors on the rendezvous host and the public node: two public destinations. */
async function reflectors(lab: NatLabType): Promise<void> {
  await lab.udp(lab.rendezvous, REFLECTOR_PORT);
  await lab.udp(lab.public!, REFLECTOR_PORT);
}

labTest(
  "a cone NAT maps one socket to the same endpoint for two destinations, a symmetric NAT to two",
  async () => {
    await using lab = await NatLab.create({ sites: ["cone", "symmetric"] });
    await reflectors(lab);
    const [cone, symmetric] = lab.sites;
    for (const site of [cone!, symmetric!]) {
      const host = await lab.udp(site.host);
      const toRendezvous = await host.ask(RENDEZVOUS);
      const toPublic = await host.ask(PUBLIC);
      assertMapped(toRendezvous, site);
      assertMapped(toPublic, site);
      if (site.nat === "cone") {
        assert.equal(toPublic, toRendezvous, "cone: one mapping for every destination");
      } else {
        assert.notEqual(toPublic, toRendezvous, "symmetric: one mapping per destination");
      }
      // The host's private address never leaks: both saw only the router.
      assert.ok(!toRendezvous!.startsWith(site.hostIp));
    }
  },
);

labTest("a cone NAT lets a third party in only after its host sent to it", async () => {
  await using lab = await NatLab.create({ sites: ["cone"] });
  await lab.udp(lab.rendezvous, REFLECTOR_PORT);
  const third = await lab.udp(lab.public!, REFLECTOR_PORT);
  const site = lab.site(1);
  const host = await lab.udp(site.host);
  const mapped = endpoint(await host.ask(RENDEZVOUS));

  // The mapping exists (the rendezvous reaches it), but not for the third party yet.
  await third.send(mapped, "unsolicited", { count: 3, intervalMs: 50 });
  assert.deepEqual(await host.receive({ waitMs: SILENCE_MS }), [], "filtered");

  await host.send(PUBLIC, "hello");
  const hello = await third.receive({ waitMs: 3_000, count: 1 });
  assert.deepEqual(
    hello,
    [{ from: `${mapped.host}:${mapped.port}`, text: "hello" }],
    "the same mapping: the dropped unsolicited packets did not take the port",
  );

  await third.send(mapped, "answer");
  assert.deepEqual(await host.receive({ waitMs: 3_000, count: 1 }), [
    { from: `${PUBLIC_NODE_IP}:${REFLECTOR_PORT}`, text: "answer" },
  ]);
});

/**
 * Both hosts learn their mapping from the rendezvous, then send to each
 * other's at the same time; returns what each received from the other.
 */
async function punch(
  a: UdpAgent,
  b: UdpAgent,
): Promise<{ atA: string[]; atB: string[]; mappedA: string; mappedB: string }> {
  const mappedA = await a.ask(RENDEZVOUS);
  const mappedB = await b.ask(RENDEZVOUS);
  assert.ok(mappedA !== null && mappedB !== null, "both reach the rendezvous");
  const options = { count: 5, intervalMs: 100 };
  await Promise.all([
    a.send(endpoint(mappedB), "from a", options),
    b.send(endpoint(mappedA), "from b", options),
  ]);
  const [atA, atB] = await Promise.all([
    a.receive({ waitMs: SILENCE_MS, count: 1 }),
    b.receive({ waitMs: SILENCE_MS, count: 1 }),
  ]);
  return {
    atA: atA.map((d) => `${d.from} ${d.text}`),
    atB: atB.map((d) => `${d.from} ${d.text}`),
    mappedA,
    mappedB,
  };
}

labTest(
  "simultaneous sends punch a hole between two cone sites but not between two symmetric sites",
  async () => {
    await using lab = await NatLab.create({
      sites: ["cone", "cone", "symmetric", "symmetric"],
      publicNode: false,
    });
    await lab.udp(lab.rendezvous, REFLECTOR_PORT);
    const [c1, c2, s3, s4] = await Promise.all(lab.sites.map((s) => lab.udp(s.host)));

    const cone = await punch(c1!, c2!);
    assert.ok(cone.atA.length >= 1, `site 1 got nothing from site 2: ${JSON.stringify(cone)}`);
    assert.ok(cone.atB.length >= 1, `site 2 got nothing from site 1: ${JSON.stringify(cone)}`);
    assert.equal(cone.atA[0], `${cone.mappedB} from b`, "from the endpoint the rendezvous saw");
    assert.equal(cone.atB[0], `${cone.mappedA} from a`);

    const symmetric = await punch(s3!, s4!);
    assert.deepEqual(symmetric.atA, [], "site 3 got nothing");
    assert.deepEqual(symmetric.atB, [], "site 4 got nothing");
  },
);

labTest("rebinding moves a site's mapping to a new WAN address and port range", async () => {
  await using lab = await NatLab.create({ sites: ["cone", "symmetric"], publicNode: false });
  await lab.udp(lab.rendezvous, REFLECTOR_PORT);
  for (const before of lab.sites) {
    const host = await lab.udp(before.host);
    assertMapped(await host.ask(RENDEZVOUS), before);
    const after = await lab.rebindNat(before.index);
    assert.equal(after.wanIp, wanIp(before.index, 1));
    assert.deepEqual(after.ports, natPorts(1));
    assert.notEqual(after.ports.min, before.ports.min);
    // The same socket, the same destination: only the router changed its mind.
    assertMapped(await host.ask(RENDEZVOUS), after);
  }
});

labTest(
  "nodes behind a cone and a symmetric NAT publish to the lab's rendezvous and find each other there",
  async () => {
    await using lab = await NatLab.create({ sites: ["cone", "symmetric"], publicNode: false });
    const rendezvous = await lab.startRendezvous();
    assert.equal((await rendezvous.node.ok("rendezvous", "status")).running, true);
    const nodes = [];
    for (const site of lab.sites) {
      const node = await lab.node(site.host, { name: `h${site.index}`, identity: site.index });
      const name = `host-${site.index}`;
      await node.start(
        "--listen",
        "0.0.0.0:7440",
        "--hostname",
        name,
        "--rendezvous",
        rendezvous.at,
      );
      nodes.push(node);
    }
    await waitFor("both nodes' records at the rendezvous", async () => {
      const s = await rendezvous.node.ok("rendezvous", "status");
      return s.records === 2 ? s : undefined;
    }, 15_000);
    const found = await nodes[0]!.ok("find", "host-2");
    assert.equal(found.candidates.length, 1, JSON.stringify(found));
    assert.equal(found.candidates[0].public_key, fixture(2).public_key);
    assert.equal(found.candidates[0].source, "rendezvous");
  },
);

labTest("destroying a lab leaves no namespace, veth, nft table or process behind", async () => {
  const linksBefore = await hostLinks();
  const lab = await NatLab.create({ sites: ["cone", "symmetric"] });
  let names: string[] = [];
  let agentPid = 0;
  try {
    names = lab.namespaces;
    assert.equal(names.length, 7, names.join(" "));
    assert.ok(names.every((n) => n.startsWith(`${lab.prefix}-`)));
    const listed = await listNamespaces();
    for (const ns of names) assert.ok(listed.includes(ns), `${ns} exists while the lab runs`);
    const coreVeths = await runOk(lab.core, ["ip", "-o", "link", "show", "type", "veth"]);
    assert.equal(coreVeths.trim().split("\n").length, 4, coreVeths);
    for (const site of lab.sites) {
      const tables = await runOk(site.router, ["nft", "list", "tables"]);
      assert.match(tables, /table ip pilot_natlab/);
    }
    await lab.udp(lab.site(1).host);
    const pids = await pidsIn(lab.site(1).host);
    assert.equal(pids.length, 1, "the agent runs in the host namespace");
    agentPid = pids[0]!;
  } finally {
    await lab.destroy();
  }
  const left = await listNamespaces();
  for (const ns of names) assert.ok(!left.includes(ns), `${ns} was deleted`);
  assert.deepEqual(await hostLinks(), linksBefore, "no link appeared in the host's namespace");
  const tables = await command("nft", ["list", "tables"]);
  assert.ok(!tables.includes("pilot_natlab"), tables);
  let alive = true;
  try {
    alive = !(await Deno.readTextFile(`/proc/${agentPid}/stat`)).includes(") Z ");
  } catch {
    alive = false;
  }
  assert.equal(alive, false, `agent ${agentPid} exited`);
});

async function command(program: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" }).output();
  return new TextDecoder().decode(out.stdout);
}

/** Names of the links in the host's own namespace. */
async function hostLinks(): Promise<string[]> {
  const out = await command("ip", ["-o", "link", "show"]);
  return out.split("\n").filter((l) => l !== "").map((l) => l.split(": ")[1]!.split("@")[0]!)
    .sort();
}
