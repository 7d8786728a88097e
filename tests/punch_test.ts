/**
 * The puncher, sans-IO (daemon/punch.ts): what it sends to a trusted peer
 * on a relayed path, when, and to where; what it answers.
 */
import assert from "node:assert/strict";
import { PORT_PATH } from "../src/constants.ts";
import { type Endpoint, relayEndpoint } from "../src/discovery/endpoint.ts";
import {
  holdsNatMapping,
  PROBE_SCHEDULE_MS,
  PUNCH_NOTICE_MS,
  PUNCH_RETRY_MS,
  Puncher,
} from "../src/daemon/punch.ts";
import type { PeerStatus } from "../src/session/manager.ts";
import type { PortPacket } from "../src/wire/inner.ts";
import {
  decodePathMessage,
  encodePathMessage,
  type PathMessage,
} from "../src/wire/path_message.ts";
import { IDS, peerIdentityOf } from "./_session_helpers.ts";

const PEER = peerIdentityOf(IDS[1]!);
const RELAY = relayEndpoint({ via: peerIdentityOf(IDS[2]!).address, peer: PEER.address });
const THEIRS = { hostname: "198.18.0.20", port: 40_002 };
const OURS = { hostname: "198.18.0.10", port: 40_001 };

interface Sent {
  key: string;
  message: PathMessage;
  to: Endpoint | undefined;
}

function setup(options: { trusted?: boolean; endpoint?: Endpoint } = {}) {
  let now = 1_000;
  const sent: Sent[] = [];
  const punchRequests: string[] = [];
  let wakes = 0;
  const status = (): PeerStatus => ({
    identity: PEER,
    endpoint: options.endpoint ?? RELAY,
    trusted: options.trusted ?? true,
    sessionAgeS: 1,
    rttMs: null,
    dropped: 0,
    idleMs: null,
  });
  const puncher = new Puncher({
    sessions: {
      peers: () => [status()],
      send: (key: string, packet: Omit<PortPacket, "srcAddress" | "dstAddress">, o = {}) => {
        assert.equal(packet.kind, "datagram");
        if (packet.kind === "datagram") {
          assert.equal(packet.dstPort, PORT_PATH);
          sent.push({ key, message: decodePathMessage(packet.payload), to: o.to });
        }
        return Promise.resolve(true);
      },
    },
    candidates: () => [{ kind: "observed" as const, ...OURS }],
    requestPunch: (p) => punchRequests.push(p.identity.address),
    now: () => now,
    wake: () => wakes++,
  });
  const receive = (m: PathMessage) =>
    puncher.portService().onDatagram(
      {
        kind: "datagram",
        srcPort: PORT_PATH,
        dstPort: PORT_PATH,
        payload: encodePathMessage(m),
      } as PortPacket,
      {
        peer: PEER,
        endpoint: RELAY,
        binding: new Uint8Array(32),
        reply: () => Promise.resolve(),
      },
    );
  return {
    puncher,
    sent,
    punchRequests,
    receive,
    advance: (ms: number) => now += ms,
    wakes: () => wakes,
  };
}

Deno.test("puncher: a trusted peer on a relay gets our candidates at once, then with doubling backoff", () => {
  const { puncher, sent, advance } = setup();
  puncher.tick();
  assert.equal(sent.length, 1);
  assert.equal(sent[0]!.message.type, "candidates");
  assert.equal(sent[0]!.to, undefined, "along the session's path (the tunnel)");
  assert.deepEqual(
    sent[0]!.message.type === "candidates" && sent[0]!.message.endpoints,
    [OURS],
  );
  advance(PUNCH_RETRY_MS - 1);
  puncher.tick();
  assert.equal(sent.length, 1);
  advance(1);
  puncher.tick();
  assert.equal(sent.length, 2);
  advance(PUNCH_RETRY_MS);
  puncher.tick();
  assert.equal(sent.length, 2, "the second wait is twice as long");
  advance(PUNCH_RETRY_MS);
  puncher.tick();
  assert.equal(sent.length, 3);
});

Deno.test("puncher: no candidates to an untrusted peer, nor to one already on a direct path", () => {
  for (const options of [{ trusted: false }, { endpoint: THEIRS }]) {
    const { puncher, sent } = setup(options);
    puncher.tick();
    assert.deepEqual(sent, []);
  }
});

Deno.test("puncher: candidates received are probed straight over UDP on a schedule, at most once a second, and ours go back", async () => {
  const { puncher, sent, receive, advance, wakes } = setup();
  assert.equal(puncher.probing, false);
  await receive({ type: "candidates", endpoints: [THEIRS] });
  const probes = () => sent.filter((s) => s.message.type === "probe");
  assert.equal(sent.filter((s) => s.message.type === "candidates").length, 1, "ours, back");
  assert.equal(probes().length, 1, "the first probe at once");
  // The rest are due within the second: the daemon's timer is woken to tick finely.
  assert.equal(puncher.probing, true);
  assert.equal(wakes(), 1);
  assert.deepEqual(probes()[0]!.to, THEIRS);
  // A flood of candidates within the second is ignored: no probes, nothing sent back.
  for (let i = 0; i < 50; i++) await receive({ type: "candidates", endpoints: [THEIRS] });
  assert.equal(sent.filter((s) => s.message.type === "candidates").length, 1);
  assert.equal(probes().length, 1);
  for (const d of PROBE_SCHEDULE_MS.slice(1)) {
    advance(d - (PROBE_SCHEDULE_MS[PROBE_SCHEDULE_MS.indexOf(d) - 1] ?? 0));
    puncher.sendDueProbes();
  }
  assert.equal(probes().length, PROBE_SCHEDULE_MS.length, "the schedule, once");
  assert.equal(puncher.probing, false, "nothing left to time finely");
  advance(60_000);
  puncher.sendDueProbes();
  assert.equal(probes().length, PROBE_SCHEDULE_MS.length, "then no more");
  await receive({ type: "candidates", endpoints: [THEIRS] });
  assert.equal(probes().length, PROBE_SCHEDULE_MS.length + 1, "a later announce starts over");
});

Deno.test("puncher: a probe is acknowledged along the session's path with its nonce", async () => {
  const { puncher, sent, receive } = setup();
  await receive({ type: "probe", nonce: 77n });
  assert.deepEqual(sent, [{
    key: PEER.keyHex,
    message: { type: "probe_ack", nonce: 77n },
    to: undefined,
  }]);
  await receive({ type: "probe_ack", nonce: 77n });
  assert.equal(puncher.stats.probesAcked, 1);
  await puncher.portService().onDatagram(
    {
      kind: "datagram",
      srcPort: PORT_PATH,
      dstPort: PORT_PATH,
      payload: Uint8Array.of(9),
    } as PortPacket,
    { peer: PEER, endpoint: RELAY, binding: new Uint8Array(32), reply: () => Promise.resolve() },
  );
  assert.equal(puncher.stats.malformed, 1);
});

Deno.test("puncher: each round of candidates also asks the rendezvous to tell the peer where it sees us", () => {
  const { puncher, punchRequests, advance } = setup();
  puncher.tick();
  assert.deepEqual(punchRequests, [PEER.address]);
  advance(PUNCH_RETRY_MS);
  puncher.tick();
  assert.deepEqual(punchRequests, [PEER.address, PEER.address]);
});

Deno.test("puncher: a rendezvous's punch notice gets the endpoint it saw probed on the schedule", () => {
  const { puncher, sent, advance, wakes } = setup();
  puncher.punchFrom(PEER.keyHex, THEIRS);
  const probes = () => sent.filter((s) => s.message.type === "probe");
  assert.equal(probes().length, 1);
  assert.equal(puncher.probing, true);
  assert.equal(wakes(), 1);
  assert.deepEqual(probes()[0]!.to, THEIRS);
  advance(PROBE_SCHEDULE_MS.at(-1)!);
  puncher.sendDueProbes();
  assert.equal(probes().length, PROBE_SCHEDULE_MS.length);
  // A flood of notices gets one schedule a second, no more (its first probe at once).
  for (let i = 0; i < 100; i++) puncher.punchFrom(PEER.keyHex, THEIRS);
  puncher.sendDueProbes();
  assert.equal(probes().length, PROBE_SCHEDULE_MS.length + 1);
  advance(PUNCH_NOTICE_MS);
  for (let i = 0; i < 100; i++) puncher.punchFrom(PEER.keyHex, THEIRS);
  advance(PROBE_SCHEDULE_MS.at(-1)!);
  puncher.sendDueProbes();
  assert.equal(probes().length, 3 * PROBE_SCHEDULE_MS.length, "three schedules, all sent");
});

Deno.test("holdsNatMapping: keepalives hold a trusted peer's direct path, unless it is loopback or known not to be behind a NAT", () => {
  const direct = { hostname: "198.18.0.9", port: 7000 };
  assert.equal(
    holdsNatMapping(direct, true, null),
    true,
    "without a rendezvous it cannot tell: keep",
  );
  assert.equal(holdsNatMapping(direct, true, true), true);
  assert.equal(
    holdsNatMapping(direct, true, false),
    false,
    "the rendezvous sees us where we listen",
  );
  assert.equal(holdsNatMapping(direct, false, true), false, "not for a stranger");
  assert.equal(holdsNatMapping({ hostname: "relay/a/b", port: 0 }, true, true), false);
  for (const hostname of ["127.0.0.1", "127.0.3.7", "::1"]) {
    assert.equal(holdsNatMapping({ hostname, port: 7000 }, true, null), false, hostname);
  }
});
