/**
 * docs/PROTOCOL.md cannot drift from the code: its generated regions must
 * equal what scripts/protocol_examples/mod.ts produces now, every hex dump in it
 * must sit inside such a region, and the real handshake, trust, stream,
 * data-exchange and pub/sub code must accept the documented bytes and answer
 * with the documented ones.
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
  WORKED_PUBSUB,
  WORKED_STREAM,
  WORKED_TRUST,
  workedSession,
  writeRegions,
} from "../scripts/protocol_examples/mod.ts";
import { MAX_DATAGRAM, MSG1_SIZE, PORT_MESSAGES, PORT_PUBSUB } from "../src/constants.ts";
import { ReceivedFiles } from "../src/daemon/received_files.ts";
import { TrustFlowStore } from "../src/daemon/trust_flow_store.ts";
import { TrustStore } from "../src/daemon/trust_store.ts";
import { type MessageSink, MessagesServer } from "../src/services/messages/server.ts";
import type { DatagramContext } from "../src/services/port_service.ts";
import { PubSubBroker } from "../src/services/pubsub/broker.ts";
import { TrustService } from "../src/services/trust.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import { type Connection, mssFor, StreamMux, type StreamPacket } from "../src/stream/mod.ts";
import { utf8 } from "../src/bytes.ts";
import { decodeEnvelope, type Envelope } from "../src/wire/data_message.ts";
import { encodeFrame, MESSAGE_FRAMES, nextMessageFrame } from "../src/wire/message_frame.ts";
import { FrameReader } from "../src/wire/framing.ts";
import {
  decodeBody,
  encodeFrame as encodePubSubFrame,
  PUBSUB_FRAMES,
} from "../src/wire/pubsub_frame.ts";
import { decodeSegment, SEG_ACK } from "../src/wire/stream_segment.ts";
import { SimLink, track } from "./_sim_link.ts";
import { tempDir } from "./_tmp.ts";
import { checkTrustMessage, decodeTrustMessage } from "../src/wire/trust_message.ts";
import { decodeTrustPacket } from "../src/wire/trust_packet.ts";
import { mac1Key, verifyMac1 } from "../src/session/cookie.ts";
import { InitiatorHandshake, ResponderHandshake } from "../src/session/handshake.ts";
import { verifyPeerPayload } from "../src/session/peer_identity.ts";
import { decodeFrame } from "../src/wire/frames.ts";
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
      `region "${id}" drifted: run deno run -A scripts/protocol_examples/mod.ts --write`,
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

Deno.test("the documented handshake payloads decode and verify against the documented static keys", async () => {
  for (
    const [id, fixture, hostname] of [
      ["worked-msg2", WORKED.responderFixture, WORKED.responderHostname],
      ["worked-msg3", WORKED.initiatorFixture, WORKED.initiatorHostname],
    ] as const
  ) {
    const node = exampleNode(fixture, hostname);
    const [payload] = dumps(id);
    assert.ok(payload);
    const peer = await verifyPeerPayload(
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
// Port 444 (§7.6)

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
    endpoint: { hostname: "198.18.0.1", port: 7440 },
    binding: session.handshakeHash,
    reply: (bytes) => {
      replies.push(bytes);
      return Promise.resolve();
    },
  });
  return replies;
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
  await using home = await tempDir("pilot-protocol-examples-");
  const { service, flow } = await trustServiceFor("bob", home.path);
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

Deno.test("a real trust service on the requesting side records the documented accept with the documented ack", async () => {
  const [, , acceptPacket, acceptAck] = dumps("worked-trust-packets");
  const [request] = dumps("worked-trust-request");
  const [accept] = dumps("worked-trust-accept");
  assert.ok(acceptPacket && acceptAck && request && accept);
  const bobKey = session.bob.identity.publicKey.toHex();
  {
    await using home = await tempDir("pilot-protocol-examples-");
    const { service, trust } = await trustServiceFor("alice", home.path);
    // An accept that names no request of ours is refused.
    const [early] = await answer(service, acceptPacket, session.peerB);
    const refused = decodeTrustPacket(early!);
    assert.ok(refused.op === "ack" && refused.detail === "unknown_request");
    assert.equal(trust.has(bobKey), false);
  }
  {
    await using home = await tempDir("pilot-protocol-examples-");
    const { service, trust, flow } = await trustServiceFor("alice", home.path);
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
  }
});

// ---------------------------------------------------------------------------
// Streams, port 1001 and port 1002 (§8.8, §9.5, §10.4)

/** Runs a simulated link, 1 ms at a time (real file I/O runs beside it), until `p` settles. */
async function settle<T>(link: SimLink, p: Promise<T>, maxMs = 60_000): Promise<T> {
  const t = track(p);
  const limit = link.clock.now + maxMs;
  while (!t.settled) {
    if (link.clock.now > limit) throw new Error(`Not settled after ${maxMs} simulated ms`);
    await link.advance(1);
  }
  if ("error" in t) throw t.error;
  return t.value as T;
}

Deno.test("the documented ACK is the worked example of stream_segment_test.ts", () => {
  const [ack] = dumps("worked-stream-ack");
  assert.ok(ack);
  const w = WORKED_STREAM.ack;
  const s = decodeSegment(ack);
  assert.equal(s.flags, SEG_ACK);
  assert.deepEqual(
    { connId: s.connId, seq: s.seq, ack: s.ack, window: s.window, data: s.data.length },
    { connId: w.connId, seq: w.seq, ack: w.ack, window: w.window, data: 0 },
  );
  assert.deepEqual(s.sack, [{ start: w.sack[0], end: w.sack[1] }]);
});

Deno.test("a real stream mux answers the documented SYN, ACK and data with the documented segments", () => {
  const [syn, synAck, ack, data, dataAck] = dumps("worked-stream-open");
  assert.ok(syn && synAck && ack && data && dataAck);
  let now = 0;
  const out: StreamPacket[] = [];
  const listener = new StreamMux({
    send: (p) => out.push(p),
    now: () => now,
    mss: mssFor(MAX_DATAGRAM),
  });
  const accepted: Connection[] = [];
  listener.listen(WORKED_STREAM.dstPort, (c) => accepted.push(c));
  const from = { srcPort: WORKED_STREAM.srcPort, dstPort: WORKED_STREAM.dstPort };
  listener.receive({ ...from, payload: syn });
  assert.deepEqual(out.map((p) => p.payload.toHex()), [synAck.toHex()]);
  assert.deepEqual([out[0]!.srcPort, out[0]!.dstPort], [from.dstPort, from.srcPort]);
  listener.receive({ ...from, payload: ack });
  assert.equal(accepted.length, 1, "the handshake completed");
  listener.receive({ ...from, payload: data });
  now = 1; // the delayed ACK of a lone segment is due after 1 ms
  listener.tick();
  assert.deepEqual(out.slice(1).map((p) => p.payload.toHex()), [dataAck.toHex()]);
  listener.close("test done");
});

/** A message sink that records what it stores and answers with the documented seq. */
class RecordingSink implements MessageSink {
  readonly stored: { peer: PeerIdentity; envelope: Envelope }[] = [];
  store(peer: PeerIdentity, envelope: Envelope) {
    this.stored.push({ peer, envelope });
    return Promise.resolve({ seq: WORKED_DATA.seq, duplicate: false });
  }
}

Deno.test("a real messages server stores the documented MESSAGE and file frames and answers with the documented receipts", async () => {
  const [envelope] = dumps("worked-data-envelope");
  const [message, messageReceipt] = dumps("worked-data-message");
  const [begin, chunk, end, fileReceipt] = dumps("worked-data-file");
  assert.ok(envelope && message && messageReceipt && begin && chunk && end && fileReceipt);
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
  assert.equal(message.subarray(5).toHex(), envelope.toHex(), "the frame body is the envelope");
  await using home = await tempDir("pilot-protocol-examples-");
  const files = await ReceivedFiles.open(home.path);
  try {
    const sink = new RecordingSink();
    const service = new MessagesServer({ sink, files });
    const link = new SimLink();
    link.b.listen(PORT_MESSAGES, (conn) => void service.serve(conn, session.peerA));
    const conn = await settle(link, link.a.connect(PORT_MESSAGES));
    const reader = new FrameReader(MESSAGE_FRAMES, conn);
    const nextFrame = async () => {
      const f = await settle(link, nextMessageFrame(reader));
      assert.ok(f !== null);
      return encodeFrame(f).toHex();
    };
    await settle(link, conn.write(message));
    assert.equal(await nextFrame(), messageReceipt.toHex());
    assert.equal(sink.stored.length, 1);
    assert.equal(sink.stored[0]!.peer.keyHex, session.peerA.keyHex);
    assert.deepEqual(sink.stored[0]!.envelope, expected);
    for (const frame of [begin, chunk, end]) await settle(link, conn.write(frame));
    assert.equal(await nextFrame(), fileReceipt.toHex());
    const stored = await Deno.readTextFile(`${files.dir}/${WORKED_DATA.fileName}`);
    assert.equal(stored, WORKED_DATA.fileContent);
    await settle(link, conn.close());
    assert.equal(
      await settle(link, nextMessageFrame(reader)),
      null,
      "the service closes its side too",
    );
  } finally {
    await files.close();
  }
});

Deno.test("a real broker answers the documented SUBSCRIBE and PUBLISH with the documented ACKs and EVENT", async () => {
  const [subscribe, subscribed, publish, published, event] = dumps("worked-pubsub");
  assert.ok(subscribe && subscribed && publish && published && event);
  const broker = new PubSubBroker({
    self: { address: session.bob.identity.address, publicKey: session.bob.identity.publicKey },
    now: () => WORKED_PUBSUB.time,
  });
  const link = new SimLink();
  link.b.listen(PORT_PUBSUB, (conn) => void broker.serve(conn, session.peerA));
  /** Reads one whole frame from `conn` and re-encodes it (the codec is strict). */
  const framesOf = (conn: Connection) => {
    const splitter = new FrameReader(PUBSUB_FRAMES);
    return async () => {
      for (;;) {
        const raw = splitter.take();
        if (raw !== null) return encodePubSubFrame(decodeBody(raw)).toHex();
        const chunk = await settle(link, conn.read());
        assert.ok(chunk !== null, "the stream ended early");
        splitter.push(chunk);
      }
    };
  };
  const subscriber = await settle(link, link.a.connect(PORT_PUBSUB));
  const subscriberFrame = framesOf(subscriber);
  await settle(link, subscriber.write(subscribe));
  assert.equal(await subscriberFrame(), subscribed.toHex());
  const publisher = await settle(link, link.a.connect(PORT_PUBSUB));
  const publisherFrame = framesOf(publisher);
  await settle(link, publisher.write(publish));
  assert.equal(await publisherFrame(), published.toHex());
  assert.equal(await subscriberFrame(), event.toHex());
  broker.close("test done");
});
