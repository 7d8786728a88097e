/**
 * Hole punching in the NAT lab (issue 9): two nodes behind endpoint-
 * independent ("cone") NATs that know only a rendezvous and each other's
 * hostname start on the relay and end `direct` after punching; when one
 * NAT then maps its node to another address mid-session, the pair keeps
 * delivering (the dead direct path falls back to the relay) and punches
 * its way back to direct. Needs root, iproute2 and nftables; elsewhere the
 * tests are registered as ignored with the reason in their names.
 */
import assert from "node:assert/strict";
import { fixture, waitFor } from "./_daemon_harness.ts";
import { NatLab } from "./_natlab.ts";
import { type LabNode, netlabUnavailable } from "./_netlab.ts";

const unavailable = await netlabUnavailable();
const WORKER = "data-processor-node";
const ORCHESTRATOR = "secure-orchestrator";

function labTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: unavailable === null ? name : `${name} (skipped: ${unavailable})`,
    ignore: unavailable !== null,
    fn,
  });
}

/** `self`'s entry for the node of fixture `identity` in `pilot peers --json`, if any. */
// deno-lint-ignore no-explicit-any
async function entry(self: LabNode, identity: number): Promise<any> {
  return (await self.peers()).find((p: { address: string }) =>
    p.address === fixture(identity).address
  );
}

async function waitPath(self: LabNode, identity: number, path: "direct" | "relay", ms: number) {
  await waitFor(`${self.name} on a ${path} path to ${identity}`, async () => {
    return (await entry(self, identity))?.path === path;
  }, ms);
}

async function send(from: LabNode, to: LabNode, hostname: string, data: string) {
  const sent = await from.pilot("send", hostname, "--data", data, "--timeout", "30s", "--json");
  assert.equal(sent.code, 0, `${from.name} → ${hostname}: ${sent.stdout}${sent.stderr}`);
  const inbox = await to.ok("inbox");
  assert.ok(inbox.messages.some((m: { data: string }) => m.data === data), data);
}

labTest(
  "two nodes behind cone NATs find each other by hostname, start on the relay and end direct after punching; a NAT rebinding mid-session falls back to the relay and punches back",
  async () => {
    await using lab = await NatLab.create({ sites: ["cone", "cone"], publicNode: false });
    const rendezvous = await lab.startRendezvous();
    const [s1, s2] = lab.sites;
    const start = async (ns: string, identity: number, hostname: string) => {
      const node = await lab.node(ns, { name: hostname, identity });
      await node.start(
        "--listen",
        "0.0.0.0:7440",
        "--hostname",
        hostname,
        "--rendezvous",
        rendezvous.at,
      );
      return node;
    };
    const worker = await start(s1!.host, 1, WORKER);
    const orchestrator = await start(s2!.host, 2, ORCHESTRATOR);
    await waitFor("both records", async () => {
      return (await rendezvous.node.ok("rendezvous", "status")).records === 2;
    }, 20_000);

    await orchestrator.ok("handshake", WORKER, "--reason", "run jobs");
    assert.equal((await entry(orchestrator, 1))?.path, "relay", "a stranger: through the relay");
    await worker.ok("approve", fixture(2).address);
    await send(orchestrator, worker, WORKER, "first");

    // Trusted now: both punch, and both paths end direct at the other's router.
    await waitPath(orchestrator, 1, "direct", 30_000);
    await waitPath(worker, 2, "direct", 30_000);
    const o1 = await entry(orchestrator, 1);
    assert.equal(o1.endpoint, `${s1!.wanIp}:${o1.endpoint.split(":")[1]}`, JSON.stringify(o1));
    assert.equal(o1.via, null);
    await send(orchestrator, worker, WORKER, "direct");
    const info = await worker.ok("info");
    assert.equal(info.reachability.observed.split(":")[0], s1!.wanIp, JSON.stringify(info));
    assert.ok(info.reachability.rendezvous[0].published, JSON.stringify(info.reachability));

    // The worker's router moves it to another address and port range.
    const moved = await lab.rebindNat(1);
    await send(worker, orchestrator, ORCHESTRATOR, "after the rebinding, from the worker");
    await send(orchestrator, worker, WORKER, "after the rebinding, to the worker");
    await waitPath(orchestrator, 1, "direct", 90_000);
    await waitFor("the orchestrator's path at the worker's new address", async () => {
      const e = await entry(orchestrator, 1);
      return e?.path === "direct" && e.endpoint.startsWith(`${moved.wanIp}:`);
    }, 90_000);
    await send(orchestrator, worker, WORKER, "direct again");
  },
);
