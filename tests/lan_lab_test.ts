/**
 * LAN discovery in the network lab (issue 10 item 3; PROTOCOL.md §14): nodes
 * on one bridge find each other by hostname with no rendezvous and no
 * `--peer`, and connect directly; a node on another segment, behind a router
 * that forwards its unicast traffic, hears none of them; `--no-lan` keeps a
 * node off the LAN.
 *
 * ```
 *        sw: bridge br0, 198.18.5.0/24                 other segment 198.18.6.0/24
 *   A 198.18.5.2   B 198.18.5.3   D 198.18.5.4   R 198.18.5.1 | 198.18.6.1   C 198.18.6.2
 *   (stealth)                     (--no-lan)     (router: forwards, no multicast routing)
 * ```
 */

import assert from "node:assert/strict";
import { fixture, waitFor } from "./_daemon_harness.ts";
import { ip, labPrefix, LabResources, labTest, runOk } from "./_netlab.ts";

const PORT = 7440;

labTest(
  "two nodes on one bridge find each other by hostname with no rendezvous, and nodes on another segment or with --no-lan do not",
  async () => {
    const p = labPrefix();
    const [sw, a, b, d, r, c] = ["sw", "a", "b", "d", "r", "c"].map((n) => `${p}-${n}`) as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const made = new LabResources();
    try {
      for (const ns of [sw, a, b, d, r, c]) await made.namespace(ns);
      await ip(["-n", sw, "link", "add", "br0", "type", "bridge"]);
      await ip(["-n", sw, "link", "set", "br0", "up"]);
      const members: [string, string][] = [
        [a, "198.18.5.2"],
        [b, "198.18.5.3"],
        [d, "198.18.5.4"],
        [r, "198.18.5.1"],
      ];
      for (const [i, [ns, address]] of members.entries()) {
        await ip(["-n", sw, "link", "add", `port${i}`, "type", "veth", "peer", "name", "eth0"]);
        await ip(["-n", sw, "link", "set", "eth0", "netns", ns]);
        await ip(["-n", sw, "link", "set", `port${i}`, "master", "br0", "up"]);
        await ip(["-n", ns, "address", "add", `${address}/24`, "dev", "eth0"]);
        await ip(["-n", ns, "link", "set", "eth0", "up"]);
        if (ns !== r) await ip(["-n", ns, "route", "add", "default", "via", "198.18.5.1"]);
      }
      await ip(["-n", c, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"]);
      await ip(["-n", c, "link", "set", "eth1", "netns", r]);
      await ip(["-n", r, "address", "add", "198.18.6.1/24", "dev", "eth1"]);
      await ip(["-n", r, "link", "set", "eth1", "up"]);
      await ip(["-n", c, "address", "add", "198.18.6.2/24", "dev", "eth0"]);
      await ip(["-n", c, "link", "set", "eth0", "up"]);
      await ip(["-n", c, "route", "add", "default", "via", "198.18.6.1"]);
      await runOk(r, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);

      const nodeA = await made.node(a, { name: "A", identity: 0 });
      const nodeB = await made.node(b, { name: "B", identity: 1 });
      const nodeC = await made.node(c, { name: "C", identity: 2 });
      const nodeD = await made.node(d, { name: "D", identity: 3 });
      const listen = ["--listen", `0.0.0.0:${PORT}`];
      // A demands mac1 (stealth): only initiators that know its key get an answer,
      // and a LAN neighbour knows it from the signed announcement.
      await nodeA.start(...listen, "--hostname", "lan-alpha", "--stealth");
      await nodeC.start(...listen, "--hostname", "lan-gamma");
      await nodeD.start(...listen, "--hostname", "lan-delta", "--no-lan");
      await nodeB.start(...listen, "--hostname", "lan-beta");

      // B solicits at start: A answers within a second or so.
      await waitFor("B to hear A", async () => (await nodeB.info()).lan?.known === 1);
      await waitFor("A to hear B", async () => (await nodeA.info()).lan?.known === 1);

      const found = await nodeB.ok("find", "lan-alpha");
      assert.equal(found.candidates.length, 1);
      const cand = found.candidates[0];
      assert.equal(cand.public_key, fixture(0).public_key);
      assert.equal(cand.address, fixture(0).address);
      assert.deepEqual(cand.sources, ["lan"]);
      assert.equal(cand.visibility, "private");
      assert.equal(cand.endpoint, `198.18.5.2:${PORT}`);
      assert.deepEqual(found.rendezvous, { asked: 0, answered: 0 });

      // A handshake by hostname: trust on first use, straight to A's LAN address.
      const asked = await nodeB.ok("handshake", "lan-alpha", "--reason", "lan test");
      assert.equal(asked.peer.public_key, fixture(0).public_key);
      assert.equal(asked.status, "pending");
      assert.equal(asked.first_contact, true);
      const peers = await nodeB.peers();
      assert.equal(peers.length, 1);
      assert.equal(peers[0].endpoint, `198.18.5.2:${PORT}`);
      assert.equal(peers[0].path, "direct");
      const pending = await nodeA.ok("pending");
      assert.deepEqual(pending.pending.map((x: { fingerprint: string }) => x.fingerprint), [
        fixture(1).fingerprint,
      ]);

      // C is routable from A and B, but multicast stays on the link: it heard nobody.
      const infoC = await nodeC.info();
      assert.equal(infoC.lan.known, 0);
      assert.ok(infoC.lan.announced >= 1, "C did announce, on its own segment");
      const lost = await nodeC.pilot("find", "lan-alpha", "--json");
      assert.equal(lost.json?.code, "not_found", lost.stdout);
      const unreachable = await nodeC.pilot("handshake", "lan-alpha", "--json", "--timeout", "3s");
      assert.equal(unreachable.json?.code, "not_found", unreachable.stdout);
      // D (--no-lan) neither announces nor hears, and A and B never heard of it or of C.
      assert.equal((await nodeD.info()).lan, null);
      const missD = await nodeD.pilot("find", "lan-alpha", "--json");
      assert.equal(missD.json?.code, "not_found", missD.stdout);
      for (const n of [nodeA, nodeB]) {
        for (const name of ["lan-gamma", "lan-delta"]) {
          const miss = await n.pilot("find", name, "--json");
          assert.equal(miss.json?.code, "not_found", `${n.name} find ${name}: ${miss.stdout}`);
        }
      }
      const infoA = await nodeA.info();
      assert.equal(infoA.lan.port, 27440);
      assert.equal(infoA.lan.known, 1);
      assert.ok(
        infoA.lan.dropped.self >= 1,
        "A hears its own announcements looped back and drops them",
      );
    } finally {
      await made.release((n) => n.pilot("daemon", "stop", "--timeout", "5s"));
    }
  },
);
