/**
 * docs/PROTOCOL.md cannot drift from the code: its generated regions must
 * equal what scripts/protocol_examples.ts produces now, every hex dump in it
 * must sit inside such a region, and the real handshake, trust and data
 * code must accept the documented bytes and answer with the documented ones.
 */

import assert from "node:assert/strict";
import {
  exampleNode,
  generateExamples,
  PROTOCOL_DOC,
  readRegions,
  renderRegions,
  stripRegions,
  WORKED,
  WORKED_DATA,
  WORKED_TRUST,
  workedSession,
  writeRegions,
} from "../scripts/protocol_examples.ts";
import { MAX_DATAGRAM, MESSAGE_CHUNK, MSG1_SIZE, PORT_DATA } from "../src/constants.ts";
import { TrustFlowStore } from "../src/daemon/trust_flow_store.ts";
import { TrustStore } from "../src/daemon/trust_store.ts";
import { DataService } from "../src/services/data.ts";
import type { DatagramContext } from "../src/services/port_service.ts";
import { TrustService } from "../src/services/trust.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import { utf8 } from "../src/wire/bytes.ts";
import {
  decodeDataPacket,
  decodeEnvelope,
  encodeDataPacket,
  type Envelope,
} from "../src/wire/data_message.ts";
import { encodeInner } from "../src/wire/inner.ts";
import { checkTrustMessage, decodeTrustMessage } from "../src/wire/trust_message.ts";
import { decodeTrustPacket } from "../src/wire/trust_packet.ts";
import { mac1Key, verifyMac1 } from "../src/session/cookie.ts";
import { InitiatorHandshake, ResponderHandshake } from "../src/session/handshake.ts";
import { verifyPeerPayload } from "../src/session/peer_identity.ts";
import { DATA_HEADER_SIZE, decodeFrame } from "../src/wire/frames.ts";
import { decodeHandshakePayload } from "../src/wire/handshake_payload.ts";
import { decodeInner } from "../src/wire/inner.ts";

const doc = await Deno.readTextFile(PROTOCOL_DOC);
const generated = await generateExamples();
const regions = readRegions(doc);

/** Reads the bytes back from a hex dump as hexDump() writes it. */
function parseDump(block: string): Uint8Array {
  const m = /```text\n# (\d+) bytes\n([\s\S]*?)\n```/.exec(block);
  assert.ok(m, "a hex dump");
  const hex = m[2]!.split("\n").map((line) => line.slice(6).replaceAll(" ", "")).join("");
  const bytes = Uint8Array.fromHex(hex);
  assert.equal(bytes.length, Number(m[1]));
  return bytes;
}

/** The hex dumps of one region, in order. */
function dumps(id: string): Uint8Array[] {
  const body = regions.get(id);
  assert.ok(body !== undefined, `region ${id} is in the document`);
  return [...body.matchAll(/```text\n[\s\S]*?\n```/g)].map((m) => parseDump(m[0]));
}

Deno.test("every generated example region in docs/PROTOCOL.md equals the script's output", () => {
  for (const [id, body] of Object.entries(generated)) {
    assert.ok(regions.has(id), `region "${id}" is missing from docs/PROTOCOL.md`);
    assert.equal(
      regions.get(id),
      body,
      `region "${id}" drifted: run deno run -A scripts/protocol_examples.ts --write`,
    );
  }
  for (const id of regions.keys()) {
    assert.ok(id in generated, `region "${id}" in the document is not generated`);
  }
  assert.equal(writeRegions(doc, generated), doc);
});

Deno.test("every hex dump in docs/PROTOCOL.md lies inside a generated region", () => {
  const outside = stripRegions(doc);
  assert.doesNotMatch(outside, /```text\n# \d+ bytes/);
  assert.doesNotMatch(outside, /^<!-- \/?example/m, "unbalanced region markers");
});

Deno.test("the protocol examples are the same on every run", async () => {
  const again = await generateExamples();
  assert.equal(renderRegions(again), renderRegions(generated));
});

Deno.test("the real responder accepts the documented message 1 and answers in the documented shape", async () => {
  const bob = exampleNode(WORKED.responderFixture, WORKED.responderHostname);
  const [msg1] = dumps("worked-msg1");
  const [, msg2] = dumps("worked-msg2");
  assert.ok(msg1 && msg2);
  assert.equal(msg1.length, MSG1_SIZE);
  const init = decodeFrame(msg1);
  assert.ok(init.type === "init");
  assert.ok(await verifyMac1(msg1, init.mac1, await mac1Key(bob.identity.publicKey)));
  const responder = await ResponderHandshake.start({
    local: { staticKey: bob.identity.staticKey, payload: bob.payload },
    localIndex: WORKED.responderIndex,
    init,
    endpoint: WORKED.initiatorEndpoint,
    now: 0,
  });
  // Its ephemeral key is random, so only the header and the length can match.
  assert.equal(responder.response.length, msg2.length);
  assert.equal(responder.response.subarray(0, 9).toHex(), msg2.subarray(0, 9).toHex());
});

Deno.test("the real initiator builds message 1 as documented, up to its random ephemeral key", async () => {
  const alice = exampleNode(WORKED.initiatorFixture, WORKED.initiatorHostname);
  const bob = exampleNode(WORKED.responderFixture, WORKED.responderHostname);
  const [msg1] = dumps("worked-msg1");
  assert.ok(msg1);
  const key = await mac1Key(bob.identity.publicKey);
  const initiator = await InitiatorHandshake.start({
    local: { staticKey: alice.identity.staticKey, payload: alice.payload },
    localIndex: WORKED.initiatorIndex,
    endpoint: WORKED.responderEndpoint,
    expected: { publicKey: bob.identity.publicKey },
    mac1Key: key,
    now: 0,
  });
  const real = await initiator.frame();
  assert.equal(real.length, msg1.length);
  assert.equal(real.subarray(0, 5).toHex(), msg1.subarray(0, 5).toHex(), "type and index");
  assert.equal(real.subarray(37, 352).toHex(), msg1.subarray(37, 352).toHex(), "padding");
  assert.equal(real.subarray(368).toHex(), msg1.subarray(368).toHex(), "mac2 without a cookie");
  assert.ok(await verifyMac1(real, real.subarray(352, 368), key));
  assert.equal(initiator.echo.toHex(), real.subarray(5, 21).toHex());
});

Deno.test("the documented handshake payloads decode and verify against the documented static keys", () => {
  for (
    const [id, fixture, hostname] of [
      ["worked-msg2", WORKED.responderFixture, WORKED.responderHostname],
      ["worked-msg3", WORKED.initiatorFixture, WORKED.initiatorHostname],
    ] as const
  ) {
    const node = exampleNode(fixture, hostname);
    const [payload] = dumps(id);
    assert.ok(payload);
    const peer = verifyPeerPayload(
      decodeHandshakePayload(payload),
      node.identity.staticKey.publicKey,
    );
    assert.equal(peer.address, node.identity.address);
    assert.equal(peer.hostname, hostname);
  }
});

Deno.test("the documented data frames decode as documented", () => {
  const [keepalive] = dumps("worked-keepalive");
  const [data] = dumps("worked-data");
  assert.ok(keepalive && data);
  const k = decodeFrame(keepalive);
  assert.ok(k.type === "data" && k.receiverIndex === WORKED.initiatorIndex && k.counter === 0);
  assert.equal(k.body.length, 16, "a keepalive is a bare tag");
  const d = decodeFrame(data);
  assert.ok(d.type === "data" && d.receiverIndex === WORKED.responderIndex && d.counter === 0);
  assert.equal(decodeInner(new Uint8Array(0)).kind, "keepalive");
});

// ---------------------------------------------------------------------------
// Port 444 and port 1001 (§7.6, §8.4)

const session = await workedSession();

/** A trust service for a worked-example node, with real stores in a temporary home. */
async function trustServiceFor(
  node: "alice" | "bob",
  home: string,
): Promise<{ service: TrustService; trust: TrustStore; flow: TrustFlowStore }> {
  const n = session[node];
  const trust = await TrustStore.load(home);
  const flow = await TrustFlowStore.load(home);
  const service = new TrustService({
    seed: n.identity.seed,
    publicKey: n.identity.publicKey,
    stamp: n.identity.stamp,
    hostname: n.hostname,
    trust,
    flow,
    send: () => Promise.resolve(false),
    binding: () => session.handshakeHash,
    autoApprove: () => false,
    publish: () => {},
    onUntrusted: () => {},
    now: () => WORKED_TRUST.acceptCreated,
  });
  return { service, trust, flow };
}

/** Delivers one datagram to a service and returns what it answered. */
async function answer(
  service: { onDatagram(p: { payload: Uint8Array }, ctx: DatagramContext): Promise<void> },
  payload: Uint8Array,
  peer: PeerIdentity,
): Promise<Uint8Array[]> {
  const replies: Uint8Array[] = [];
  await service.onDatagram({ payload }, {
    peer,
    binding: session.handshakeHash,
    reply: (bytes) => {
      replies.push(bytes);
      return Promise.resolve();
    },
  });
  return replies;
}

async function withHome(f: (home: string) => Promise<void>): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "pilot-protocol-examples-" });
  try {
    await f(home);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

Deno.test("the documented trust request is bound to the documented session and refused on any other", async () => {
  const [request] = dumps("worked-trust-request");
  const [accept] = dumps("worked-trust-accept");
  assert.ok(request && accept);
  const r = await decodeTrustMessage(request);
  assert.equal(r.message.kind, "request");
  assert.equal(r.message.reason, WORKED_TRUST.reason);
  assert.equal(r.message.binding.toHex(), session.handshakeHash.toHex());
  assert.ok(
    regions.get("worked-split")!.includes(session.handshakeHash.toHex()),
    "bound to the handshake hash documented in §6.7",
  );
  const atBob = {
    localKey: session.bob.identity.publicKey,
    sessionPeerKey: session.peerA.publicKey,
    now: 0,
  };
  assert.deepEqual(checkTrustMessage(r, { ...atBob, sessionBinding: session.handshakeHash }), {
    ok: true,
  });
  const other = Uint8Array.from(session.handshakeHash);
  other[31]! ^= 0x80;
  const elsewhere = checkTrustMessage(r, { ...atBob, sessionBinding: other });
  assert.ok(!elsewhere.ok && elsewhere.code === "wrong_binding");
  const fromBob = checkTrustMessage(r, {
    ...atBob,
    sessionPeerKey: session.bob.identity.publicKey,
    sessionBinding: session.handshakeHash,
  });
  assert.ok(!fromBob.ok && fromBob.code === "wrong_sender");
  const offline = checkTrustMessage(r, { localKey: session.bob.identity.publicKey, now: 0 });
  assert.ok(!offline.ok && offline.code === "wrong_binding");
  const a = await decodeTrustMessage(accept);
  assert.equal(a.message.kind, "accept");
  assert.equal(a.message.requestHash!.toHex(), r.hash.toHex(), "the accept names the request");
  assert.ok(regions.get("worked-trust-request")!.includes(r.hash.toHex()));
});

Deno.test("a real trust service answers the documented request with the documented ack and holds it pending", async () => {
  const [requestPacket, requestAck] = dumps("worked-trust-packets");
  const [request] = dumps("worked-trust-request");
  assert.ok(requestPacket && requestAck && request);
  const p = decodeTrustPacket(requestPacket);
  assert.ok(p.op === "message");
  assert.equal(p.message.toHex(), request.toHex());
  await withHome(async (home) => {
    const { service, flow } = await trustServiceFor("bob", home);
    const replies = await answer(service, requestPacket, session.peerA);
    assert.deepEqual(replies.map((b) => b.toHex()), [requestAck.toHex()]);
    const hash = (await decodeTrustMessage(request)).hash.toHex();
    assert.equal(flow.pending.length, 1);
    assert.equal(flow.pending[0]!.request_hash, hash);
    assert.equal(flow.pending[0]!.reason, WORKED_TRUST.reason);
    assert.equal(flow.pending[0]!.address, session.alice.identity.address);
    // A repeat of the same packet is answered from the ack cache, not processed again.
    assert.deepEqual((await answer(service, requestPacket, session.peerA)).map((b) => b.toHex()), [
      requestAck.toHex(),
    ]);
    assert.equal(flow.pending.length, 1);
    // The same bytes from any other peer are refused: the signer is not that peer.
    const [refusal] = await answer(service, requestPacket, session.peerB);
    const ack = decodeTrustPacket(refusal!);
    assert.ok(ack.op === "ack" && ack.status === "refused" && ack.detail === "wrong_sender");
  });
});

Deno.test("a real trust service on the requesting side records the documented accept with the documented ack", async () => {
  const [, , acceptPacket, acceptAck] = dumps("worked-trust-packets");
  const [request] = dumps("worked-trust-request");
  const [accept] = dumps("worked-trust-accept");
  assert.ok(acceptPacket && acceptAck && request && accept);
  const bobKey = session.bob.identity.publicKey.toHex();
  await withHome(async (home) => {
    const { service, trust } = await trustServiceFor("alice", home);
    // An accept that names no request of ours is refused.
    const [early] = await answer(service, acceptPacket, session.peerB);
    const refused = decodeTrustPacket(early!);
    assert.ok(refused.op === "ack" && refused.detail === "unknown_request");
    assert.equal(trust.has(bobKey), false);
  });
  await withHome(async (home) => {
    const { service, trust, flow } = await trustServiceFor("alice", home);
    await flow.putOutgoing({
      public_key: bobKey,
      address: session.bob.identity.address,
      hostname: session.bob.hostname,
      reason: WORKED_TRUST.reason,
      created_at: new Date(WORKED_TRUST.requestCreated).toISOString(),
      expires_at: WORKED_TRUST.requestCreated + 60_000,
      status: "pending",
      hashes: [(await decodeTrustMessage(request)).hash.toHex()],
    });
    const replies = await answer(service, acceptPacket, session.peerB);
    assert.deepEqual(replies.map((b) => b.toHex()), [acceptAck.toHex()]);
    const entry = trust.get(bobKey);
    assert.ok(entry !== undefined && entry.mutual);
    assert.deepEqual(entry.accept_hashes, [(await decodeTrustMessage(accept)).hash.toHex()]);
    assert.equal(flow.outgoingTo(bobKey)!.status, "approved");
  });
});

Deno.test("the documented envelope decodes as documented and a real data service answers its fragment with the documented receipt", async () => {
  const [envelope] = dumps("worked-data-envelope");
  const [frag, receipt] = dumps("worked-data-packets");
  assert.ok(envelope && frag && receipt);
  const expected: Envelope = {
    id: WORKED_DATA.id,
    type: WORKED_DATA.type,
    correlationId: "",
    inReplyTo: "",
    expiresAt: 0,
    meta: {},
    data: utf8(WORKED_DATA.data),
  };
  assert.deepEqual(decodeEnvelope(envelope), expected);
  const f = decodeDataPacket(frag);
  assert.ok(f.op === "fragment" && f.index === 0 && f.count === 1);
  assert.equal(f.chunk.toHex(), envelope.toHex());
  const stored: Envelope[] = [];
  const service = new DataService({
    sink: {
      store: (peer, e) => {
        assert.equal(peer.keyHex, session.peerA.keyHex);
        stored.push(e);
        return Promise.resolve({ seq: WORKED_DATA.seq, duplicate: false });
      },
    },
    send: () => Promise.resolve(false),
  });
  const replies = await answer(service, frag, session.peerA);
  assert.deepEqual(replies.map((b) => b.toHex()), [receipt.toHex()]);
  assert.deepEqual(stored, [expected]);
  // A repeated fragment is answered from the receipt cache and stored nothing more.
  assert.deepEqual((await answer(service, frag, session.peerA)).map((b) => b.toHex()), [
    receipt.toHex(),
  ]);
  assert.equal(stored.length, 1);
});

Deno.test("a full message fragment stays within the 1400-byte datagram limit", () => {
  const full = encodeDataPacket({
    op: "fragment",
    transfer: new Uint8Array(8),
    index: 0,
    count: 2,
    chunk: new Uint8Array(MESSAGE_CHUNK),
  });
  const inner = encodeInner({
    kind: "datagram",
    srcAddress: session.peerA.addressBytes,
    dstAddress: session.peerB.addressBytes,
    srcPort: PORT_DATA,
    dstPort: PORT_DATA,
    payload: full,
  });
  const frame = DATA_HEADER_SIZE + inner.length + 16;
  assert.ok(frame <= MAX_DATAGRAM, `${frame} bytes`);
  assert.ok(regions.get("worked-data-packets")!.includes(`${frame} as a data frame`));
});
