/**
 * The node's rendezvous link (daemon/features/rendezvous_link.ts), on its
 * own: punch notices from a rendezvous are shed past a small rate before the
 * path layer spends a look through the session table on each.
 */
import assert from "node:assert/strict";
import type { NodeContext } from "../src/daemon/context.ts";
import { RendezvousLink } from "../src/daemon/features/rendezvous_link.ts";
import { encodeRendezvousMessage } from "../src/wire/rendezvous_message.ts";
import type { PortPacket } from "../src/wire/inner.ts";
import { IDS, peerIdentityOf } from "./_session_helpers.ts";

Deno.test("punch notices past the per-rendezvous rate are dropped and counted before any lookup", async () => {
  const rendezvous = peerIdentityOf(IDS[2]!);
  const ctx = {
    sessions: { send: () => Promise.resolve(true) },
    reach: { endpointOf: () => null },
  } as unknown as NodeContext;
  const link = new RendezvousLink(
    ctx,
    [{ key: rendezvous.publicKey, endpoint: { host: "198.18.0.2", port: 7445 }, text: "rv" }],
    IDS[0]!,
    {
      hostname: null,
      visibility: "private",
      listen: () => ({ hostname: "0.0.0.0", port: 7440 }),
      onRelayed: () => {},
    },
  );
  const heard: string[] = [];
  link.onPunchFrom((from) => heard.push(from));
  const payload = encodeRendezvousMessage({
    type: "punch_from",
    id: 0,
    from: peerIdentityOf(IDS[1]!).address,
    endpoint: { hostname: "198.18.0.20", port: 40_002 },
  });
  const service = link.portService();
  for (let i = 0; i < 100; i++) {
    await service.onDatagram(
      { kind: "datagram", srcPort: 445, dstPort: 445, payload } as PortPacket,
      {
        peer: rendezvous,
        endpoint: { hostname: "198.18.0.2", port: 7445 },
        binding: new Uint8Array(32),
        reply: () => Promise.resolve(),
      },
    );
  }
  assert.ok(heard.length >= 16 && heard.length <= 17, `${heard.length} notices taken`);
  assert.equal(link.relayDropped.punch_rate, 100 - heard.length);
});
