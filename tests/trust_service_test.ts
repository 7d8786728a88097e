/**
 * The trust service (port 444) in process: nodes with real trust and flow
 * stores in temp homes, wired through fake sessions (tests/_service_helpers.ts).
 */
import assert from "node:assert/strict";
import {
  MAX_PENDING_REQUESTS,
  OUTGOING_REQUEST_TTL_MS,
  REJECT_SUPPRESS_MS,
  TRUST_LABEL,
} from "../src/constants.ts";
import { sign } from "../src/identity/ed25519.ts";
import { PilotError } from "../src/errors.ts";
import { TRUST_RATE_PER_KEY } from "../src/constants.ts";
import { randomBytes } from "../src/session/crypto.ts";
import { concat, utf8 } from "../src/bytes.ts";
import { decodeTrustMessage } from "../src/wire/trust_message.ts";
import { decodeTrustPacket } from "../src/wire/trust_packet.ts";
import type { TrustDropReason } from "../src/services/trust_types.ts";
import {
  ackOf,
  craft,
  establishTrust,
  IDS,
  messagePacket,
  network,
  type ServiceNet,
  type ServiceNode,
  sha256Hex,
} from "./_service_helpers.ts";
import { Monotonic, rebuild } from "./_trust_service_options.ts";

const HOUR = 3_600_000;

/** The trust messages `from` sent, decoded, in order. */
async function messagesFrom(net: ServiceNet, from: ServiceNode) {
  const out = [];
  for (const { wire, packet } of net.trustPackets()) {
    if (wire.from !== from || packet.op !== "message") continue;
    out.push({ wire, packet, signed: await decodeTrustMessage(packet.message) });
  }
  return out;
}

/** The seq of the ack `from` sent for `requestId`. */
function ackSeq(net: ServiceNet, from: ServiceNode, requestId: Uint8Array): number {
  const ack = net.trustPackets().find((p) =>
    p.wire.from === from && p.packet.op === "ack" &&
    p.packet.requestId.toHex() === requestId.toHex()
  );
  assert.ok(ack, "the ack went out");
  return ack.wire.seq;
}

/** Index in the log of `node`'s onUntrusted call for `key`. */
function untrustedSeq(net: ServiceNet, node: ServiceNode, key: string): number {
  const i = net.log.findIndex((e) => e.kind === "untrusted" && e.node === node && e.key === key);
  assert.ok(i >= 0, "onUntrusted was called");
  return i;
}

// --- request, approve, revoke ---------------------------------------------------------------

Deno.test("request() puts the request in the receiver's pending and publishes trust.requested once even when repeated", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const first = await a.trustService.request(b.peer, "deploy bot", 2_000);
  assert.deepEqual(first, { status: "pending", changed: true, delivered: true });
  const again = await a.trustService.request(b.peer, "deploy bot", 2_000);
  assert.deepEqual(again, { status: "pending", changed: false, delivered: true });

  assert.deepEqual(b.flow.pending.map((p) => p.public_key), [a.keyHex]);
  const pending = b.flow.pending[0]!;
  assert.equal(pending.reason, "deploy bot");
  assert.equal(pending.address, a.id.address);
  assert.equal(b.eventsOf("trust.requested").length, 1);
  // The pending entry names the latest signed version; the sender remembers every version.
  const sent = await messagesFrom(net, a);
  assert.equal(sent.length, 2);
  assert.equal(pending.request_hash, await sha256Hex(sent[1]!.packet.message));
  assert.deepEqual(a.flow.outgoingTo(b.keyHex)?.hashes, [
    await sha256Hex(sent[0]!.packet.message),
    await sha256Hex(sent[1]!.packet.message),
  ]);
  // Pending requests survive a restart.
  await b.start();
  assert.equal(b.flow.pendingFrom(a.keyHex)?.request_hash, pending.request_hash);
  assert.equal(a.trust.has(b.keyHex) || b.trust.has(a.keyHex), false);
});

Deno.test("approve() makes trust mutual and both sides record the hash of the accept", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  await a.trustService.request(b.peer, "", 2_000);
  const requestHash = b.flow.pendingFrom(a.keyHex)!.request_hash;
  const outcome = await b.trustService.approve(a.keyHex, 2_000);
  assert.deepEqual(outcome, { status: "trusted", changed: true, delivered: true });

  const accepts = (await messagesFrom(net, b)).filter((m) => m.signed.message.kind === "accept");
  assert.equal(accepts.length, 1);
  const accept = accepts[0]!;
  assert.equal(accept.signed.message.requestHash!.toHex(), requestHash);
  const acceptHash = accept.signed.hash.toHex();
  assert.equal(acceptHash, await sha256Hex(accept.packet.message));
  for (const [node, other] of [[a, b], [b, a]] as const) {
    const entry = node.trust.get(other.keyHex);
    assert.ok(entry, `${node.id.address} trusts ${other.id.address}`);
    assert.equal(entry.mutual, true);
    assert.deepEqual(entry.accept_hashes, [acceptHash]);
  }
  assert.equal(a.flow.outgoingTo(b.keyHex)?.status, "approved");
  assert.equal(b.flow.pending.length, 0);
  assert.equal(b.flow.outbox.length, 0);
  assert.deepEqual(a.eventsOf("trust.approved").map((e) => e.data.direction), ["incoming"]);
  assert.deepEqual(b.eventsOf("trust.approved").map((e) => e.data.via), ["approve"]);
  // Trust survives a restart on both sides.
  await a.start();
  await b.start();
  assert.deepEqual(a.trust.get(b.keyHex)?.accept_hashes, [acceptHash]);
  assert.deepEqual(b.trust.get(a.keyHex)?.accept_hashes, [acceptHash]);
});

Deno.test("untrust() sends a revoke naming the accept; the receiver drops trust and calls onUntrusted only after its ack went out", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const acceptHash = await establishTrust(net, a, b);
  // Replies take a while to go out, so calling onUntrusted early would show.
  net.latency = (w) => w.reply ? 40 : 0;
  const outcome = await a.trustService.untrust(b.keyHex, 2_000);
  assert.deepEqual(outcome, { status: "untrusted", changed: true, delivered: true });
  assert.equal(a.trust.has(b.keyHex), false);
  assert.deepEqual(a.untrusted, [b.keyHex]);

  const revokes = (await messagesFrom(net, a)).filter((m) => m.signed.message.kind === "revoke");
  assert.equal(revokes.length, 1);
  const revoke = revokes[0]!;
  assert.equal(revoke.signed.message.acceptHash!.toHex(), acceptHash);
  await net.waitFor(() => b.untrusted.length > 0, "onUntrusted at the receiver");
  assert.equal(b.trust.has(a.keyHex), false);
  assert.deepEqual(b.untrusted, [a.keyHex]);
  assert.ok(
    ackSeq(net, b, revoke.packet.requestId) < untrustedSeq(net, b, a.keyHex),
    "the ack went out before onUntrusted",
  );
  assert.deepEqual(b.eventsOf("trust.revoked").map((e) => e.data.direction), ["incoming"]);
  assert.equal(a.flow.outbox.length, 0);
});

Deno.test({
  name:
    "a revoke processed while another peer's ack is going out still closes sessions only after its own ack",
  fn: async () => {
    await using net = await network(3);
    const [a, b, c] = net.nodes as [ServiceNode, ServiceNode, ServiceNode];
    await establishTrust(net, a, b);
    net.latency = (w) => w.reply && w.from === b ? 150 : 0;
    const asked = c.trustService.request(b.peer, "", 2_000);
    await net.waitFor(() => b.flow.pendingFrom(c.keyHex) !== undefined, "c's request at b");
    const untrust = a.trustService.untrust(b.keyHex, 2_000);
    await asked;
    await untrust;
    await net.waitFor(() => b.untrusted.length > 0, "onUntrusted at b");
    const revoke = (await messagesFrom(net, a)).find((m) => m.signed.message.kind === "revoke")!;
    assert.ok(ackSeq(net, b, revoke.packet.requestId) < untrustedSeq(net, b, a.keyHex));
  },
});

Deno.test({
  name: "an offline revoke removes trust and calls onUntrusted",
  fn: async () => {
    await using net = await network(2);
    const [a, b] = net.nodes as [ServiceNode, ServiceNode];
    const acceptHash = await establishTrust(net, a, b);
    const revoke = await craft(a.id, {
      kind: "revoke",
      to: b,
      acceptHash: Uint8Array.fromHex(acceptHash),
      created: net.clock.ms,
      expires: net.clock.ms + HOUR,
    });
    const ack = await b.trustService.processOffline(revoke.bytes, a.peer);
    assert.deepEqual(ack, { status: "recorded", detail: "" });
    assert.equal(b.trust.has(a.keyHex), false);
    await net.waitFor(() => b.untrusted.length > 0, "onUntrusted", 200);
    assert.deepEqual(b.untrusted, [a.keyHex]);
  },
});

// --- forged and replayed messages over a session --------------------------------------------

Deno.test("a request signed by a key other than the session's peer is refused wrong_sender", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const binding = net.binding(a, b.keyHex)!;
  const forged = await craft(IDS[2]!, { to: b, binding });
  const replies = await net.inject(b, {
    peer: a.peer,
    binding,
    payload: messagePacket(forged.bytes),
  });
  assert.deepEqual(ackOf(replies), { status: "refused", detail: "wrong_sender" });
  assert.equal(b.trustService.refused.wrong_sender, 1);
  assert.equal(b.flow.pending.length, 0);
  assert.equal(b.events.length, 0);
  // The same request signed by the session's peer is taken: the refusal was about the signer.
  const genuine = await craft(a.id, { to: b, binding });
  const ok = await net.inject(b, { peer: a.peer, binding, payload: messagePacket(genuine.bytes) });
  assert.deepEqual(ackOf(ok), { status: "pending", detail: "" });
});

Deno.test("a request addressed to another node's key is refused misaddressed", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const binding = net.binding(a, b.keyHex)!;
  const elsewhere = await craft(a.id, { toKey: IDS[2]!.publicKey, binding });
  const replies = await net.inject(b, {
    peer: a.peer,
    binding,
    payload: messagePacket(elsewhere.bytes),
  });
  assert.deepEqual(ackOf(replies), { status: "refused", detail: "misaddressed" });
  assert.equal(b.trustService.refused.misaddressed, 1);
  assert.equal(b.flow.pending.length, 0);
});

Deno.test("a request bound to another session's handshake hash is refused wrong_binding", async () => {
  await using net = await network(3);
  const [a, b, c] = net.nodes as [ServiceNode, ServiceNode, ServiceNode];
  const other = net.binding(a, c.keyHex)!;
  const crossBound = await craft(a.id, { to: b, binding: other });
  const replies = await net.inject(b, {
    peer: a.peer,
    binding: net.binding(a, b.keyHex)!,
    payload: messagePacket(crossBound.bytes),
  });
  assert.deepEqual(ackOf(replies), { status: "refused", detail: "wrong_binding" });
  assert.equal(b.trustService.refused.wrong_binding, 1);
  assert.equal(b.flow.pending.length, 0);
});

Deno.test("a request with any one byte flipped is refused (bad signature or malformed) and changes nothing", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  // Each injection spends a token of a's budget: time moves on between them.
  const clock = new Monotonic();
  rebuild(net, b, { monotonic: clock.now });
  const binding = net.binding(a, b.keyHex)!;
  const good = await craft(a.id, { to: b, binding, reason: "hi", hostname: "alpha" });
  const seen = new Set<string>();
  for (let i = 0; i < good.bytes.length; i++) {
    clock.advance(1_000);
    const bad = Uint8Array.from(good.bytes);
    bad[i]! ^= 0x01;
    const ack = ackOf(await net.inject(b, { peer: a.peer, binding, payload: messagePacket(bad) }));
    assert.equal(ack.status, "refused", `flipped byte ${i}`);
    seen.add(ack.detail);
  }
  assert.equal(b.flow.pending.length, 0);
  assert.equal(b.events.length, 0);
  // The signature's last byte and the version byte fail for the expected reasons.
  const sig = Uint8Array.from(good.bytes);
  sig[sig.length - 1]! ^= 0x80;
  clock.advance(1_000);
  const sigAck = ackOf(await net.inject(b, { peer: a.peer, binding, payload: messagePacket(sig) }));
  assert.equal(sigAck.detail, "bad_signature");
  const version = Uint8Array.from(good.bytes);
  version[0] = 2;
  clock.advance(1_000);
  const verAck = ackOf(
    await net.inject(b, { peer: a.peer, binding, payload: messagePacket(version) }),
  );
  assert.equal(verAck.detail, "malformed");
  for (const d of seen) {
    assert.ok(
      [
        "bad_signature",
        "malformed",
        "bad_key",
        "bad_stamp",
        "misaddressed",
        "wrong_sender",
        "wrong_binding",
      ]
        .includes(d),
      `unexpected refusal ${d}`,
    );
  }
  const total = Object.values(b.trustService.refused).reduce((x, y) => x + y, 0);
  assert.equal(total, good.bytes.length + 2);
  // The unflipped original is fine.
  const ok = await net.inject(b, { peer: a.peer, binding, payload: messagePacket(good.bytes) });
  assert.equal(ackOf(ok).status, "pending");
});

Deno.test("a captured request replayed with a new request id is idempotent over its session and refused wrong_binding over another", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  await a.trustService.request(b.peer, "", 2_000);
  const captured = (await messagesFrom(net, a))[0]!;
  const before = b.flow.pendingFrom(a.keyHex)!;
  net.clock.advance(1_000);

  const same = await net.inject(b, {
    peer: a.peer,
    binding: net.binding(a, b.keyHex)!,
    payload: messagePacket(captured.packet.message),
  });
  assert.deepEqual(ackOf(same), { status: "pending", detail: "" });
  assert.equal(b.eventsOf("trust.requested").length, 1);
  assert.equal(b.flow.pending.length, 1);
  assert.equal(b.flow.pendingFrom(a.keyHex)!.request_hash, before.request_hash);

  const rekeyed = net.connect(a, b);
  const other = await net.inject(b, {
    peer: a.peer,
    binding: rekeyed,
    payload: messagePacket(captured.packet.message),
  });
  assert.deepEqual(ackOf(other), { status: "refused", detail: "wrong_binding" });
  assert.equal(b.eventsOf("trust.requested").length, 1);
});

Deno.test("the same packet delivered twice changes state once and gets the same ack bytes", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const binding = net.binding(a, b.keyHex)!;
  const request = await craft(a.id, { to: b, binding, reason: "once" });
  const packet = messagePacket(request.bytes);
  const first = await net.inject(b, { peer: a.peer, binding, payload: packet });
  const receivedAt = b.flow.pendingFrom(a.keyHex)!.received_at;
  net.clock.advance(5_000);
  const second = await net.inject(b, { peer: a.peer, binding, payload: packet });
  assert.deepEqual(second, first);
  assert.deepEqual(ackOf(first), { status: "pending", detail: "" });
  assert.equal(b.flow.pendingFrom(a.keyHex)!.received_at, receivedAt);
  assert.equal(b.eventsOf("trust.requested").length, 1);
});

Deno.test({
  name: "two copies of one packet arriving together are processed once and get the same ack bytes",
  fn: async () => {
    await using net = await network(2);
    const [a, b] = net.nodes as [ServiceNode, ServiceNode];
    b.autoApprove.add(a.keyHex);
    const binding = net.binding(a, b.keyHex)!;
    const request = await craft(a.id, { to: b, binding });
    const packet = messagePacket(request.bytes);
    const [one, two] = await Promise.all([
      net.inject(b, { peer: a.peer, binding, payload: packet }),
      net.inject(b, { peer: a.peer, binding, payload: packet }),
    ]);
    assert.deepEqual(two, one);
    assert.equal(b.eventsOf("trust.approved").length, 1);
  },
});

// --- offline (mailbox) path -----------------------------------------------------------------

/** An offline request from `a` to `b`: unbound, with an expiry. */
function offline(net: ServiceNet, a: ServiceNode, b: ServiceNode, fields = {}) {
  return craft(a.id, {
    to: b,
    created: net.clock.ms,
    expires: net.clock.ms + HOUR,
    ...fields,
  });
}

Deno.test("processOffline() takes an unbound request with an expiry and refuses one without an expiry", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const ok = await offline(net, a, b);
  // The same fields with expires 0: signTrustMessage refuses, so sign the body by hand.
  const body = ok.bytes.slice(0, -64);
  body.fill(0, 98, 106); // expires
  const unexpiring = concat(body, sign(a.id.seed, concat(utf8(TRUST_LABEL), body)));
  assert.deepEqual(await b.trustService.processOffline(unexpiring, a.peer), {
    status: "refused",
    detail: "malformed",
  });
  assert.equal(b.flow.pending.length, 0);
  assert.deepEqual(await b.trustService.processOffline(ok.bytes, a.peer), {
    status: "pending",
    detail: "",
  });
  assert.equal(b.flow.pendingFrom(a.keyHex)?.request_hash, ok.hash.toHex());
});

Deno.test("processOffline() refuses channel-bound, expired, future-dated and wrongly attributed messages", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const now = net.clock.ms;
  const cases: [Record<string, unknown>, TrustDropReason][] = [
    [{ binding: randomBytes(32) }, "wrong_binding"],
    [{ created: now - 2 * HOUR, expires: now - 1 }, "expired"],
    [{ created: now + HOUR, expires: now + 2 * HOUR }, "clock_skew"],
  ];
  for (const [fields, code] of cases) {
    const m = await offline(net, a, b, fields);
    assert.deepEqual(await b.trustService.processOffline(m.bytes, a.peer), {
      status: "refused",
      detail: code,
    });
    assert.equal(b.trustService.refused[code], 1);
  }
  const c = await net.node(IDS[2]!);
  const fromA = await offline(net, a, b);
  assert.deepEqual(await b.trustService.processOffline(fromA.bytes, c.peer), {
    status: "refused",
    detail: "wrong_sender",
  });
  assert.equal(b.flow.pending.length, 0);
  // Just inside both limits is fine.
  const edge = await offline(net, a, b, { created: now + 600_000, expires: now });
  assert.equal((await b.trustService.processOffline(edge.bytes, a.peer)).status, "pending");
});

Deno.test("processOffline() refuses the same (sender, nonce) twice, also after the flow store is reloaded from disk", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const m = await offline(net, a, b);
  assert.equal((await b.trustService.processOffline(m.bytes, a.peer)).status, "pending");
  assert.deepEqual(await b.trustService.processOffline(m.bytes, a.peer), {
    status: "refused",
    detail: "replayed",
  });
  await b.start();
  assert.deepEqual(await b.trustService.processOffline(m.bytes, a.peer), {
    status: "refused",
    detail: "replayed",
  });
  assert.equal(b.trustService.refused.replayed, 1);
  // Same nonce, new signature (another reason): still the same (sender, nonce).
  const resigned = await offline(net, a, b, { nonce: m.message.nonce, reason: "other" });
  assert.equal((await b.trustService.processOffline(resigned.bytes, a.peer)).detail, "replayed");
  // A fresh nonce is a new message.
  const fresh = await offline(net, a, b);
  assert.equal((await b.trustService.processOffline(fresh.bytes, a.peer)).status, "pending");
  assert.equal(b.eventsOf("trust.requested").length, 1);
});

// --- answers that name nothing we know ------------------------------------------------------

Deno.test("an accept or reject for a request never sent is refused unknown_request", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const binding = net.binding(a, b.keyHex)!;
  for (const kind of ["accept", "reject"] as const) {
    const m = await craft(a.id, { kind, to: b, binding, requestHash: randomBytes(32) });
    const ack = ackOf(
      await net.inject(b, { peer: a.peer, binding, payload: messagePacket(m.bytes) }),
    );
    assert.deepEqual(ack, { status: "refused", detail: "unknown_request" });
  }
  assert.equal(b.trustService.refused.unknown_request, 2);
  assert.equal(b.trust.has(a.keyHex), false);
  // Even with a request outstanding, an accept must name one of its hashes.
  await b.trustService.request(a.peer, "", 2_000);
  const wrong = await craft(a.id, { kind: "accept", to: b, binding, requestHash: randomBytes(32) });
  const ack = ackOf(
    await net.inject(b, { peer: a.peer, binding, payload: messagePacket(wrong.bytes) }),
  );
  assert.equal(ack.detail, "unknown_request");
  assert.equal(b.trust.has(a.keyHex), false);
  assert.equal(b.flow.outgoingTo(a.keyHex)?.status, "pending");
});

Deno.test("a revoke naming an unknown accept is refused unknown_accept and trust stays", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  await establishTrust(net, a, b);
  const binding = net.binding(a, b.keyHex)!;
  const m = await craft(a.id, { kind: "revoke", to: b, binding, acceptHash: randomBytes(32) });
  const ack = ackOf(
    await net.inject(b, { peer: a.peer, binding, payload: messagePacket(m.bytes) }),
  );
  assert.deepEqual(ack, { status: "refused", detail: "unknown_accept" });
  assert.equal(b.trust.has(a.keyHex), true);
  assert.deepEqual(b.untrusted, []);
  assert.equal(b.eventsOf("trust.revoked").length, 0);
});

// --- crossing requests ----------------------------------------------------------------------

Deno.test("requests crossing in both directions make trust mutual without approve", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const pinned = { pinned: true };
  assert.equal((await a.trustService.request(b.peer, "", 2_000, pinned)).status, "pending");
  const back = await b.trustService.request(a.peer, "", 2_000);
  assert.deepEqual(back, { status: "trusted", changed: true, delivered: true });
  await net.waitFor(() => b.trust.has(a.keyHex), "b trusting a");
  assert.equal(a.trust.get(b.keyHex)?.mutual, true);
  assert.equal(b.trust.get(a.keyHex)?.mutual, true);
  assert.deepEqual(a.eventsOf("trust.approved").map((e) => e.data.via), ["crossing"]);
  assert.equal(a.flow.pending.length, 0);
  await net.waitFor(() => a.flow.outbox.length === 0, "the accept delivered");
  assert.deepEqual(a.trust.get(b.keyHex)?.accept_hashes, b.trust.get(a.keyHex)?.accept_hashes);
});

Deno.test({
  name: "after crossing requests no pending request remains on either side",
  fn: async () => {
    await using net = await network(2);
    const [a, b] = net.nodes as [ServiceNode, ServiceNode];
    await a.trustService.request(b.peer, "", 2_000, { pinned: true });
    await b.trustService.request(a.peer, "", 2_000);
    await net.waitFor(() => b.trust.has(a.keyHex), "b trusting a");
    assert.equal(a.flow.pending.length, 0);
    assert.equal(b.flow.pending.length, 0);
  },
});

Deno.test("a request is not auto-approved when our outgoing request went to a different key", async () => {
  await using net = await network(3);
  const [a, b, c] = net.nodes as [ServiceNode, ServiceNode, ServiceNode];
  assert.equal(
    (await a.trustService.request(c.peer, "", 2_000, { pinned: true })).status,
    "pending",
  );
  const asked = await b.trustService.request(a.peer, "", 2_000);
  assert.deepEqual(asked, { status: "pending", changed: true, delivered: true });
  assert.equal(a.trust.has(b.keyHex), false);
  assert.ok(a.flow.pendingFrom(b.keyHex));
  assert.equal(a.eventsOf("trust.approved").length, 0);
});

Deno.test("a request crossing ours waits in pending when ours did not name the exact key (pinned)", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  // a reached b by a name anyone may claim: its request is not pinned.
  assert.equal((await a.trustService.request(b.peer, "", 2_000)).status, "pending");
  assert.equal(a.flow.outgoingTo(b.keyHex)?.pinned, false);
  const back = await b.trustService.request(a.peer, "", 2_000);
  assert.deepEqual(back, { status: "pending", changed: true, delivered: true });
  assert.equal(a.trust.has(b.keyHex), false);
  assert.ok(a.flow.pendingFrom(b.keyHex));
  assert.equal(a.eventsOf("trust.approved").length, 0);
  assert.equal(a.eventsOf("trust.requested").length, 1);
  // Naming the key again pins the request, and a repeat by name keeps the pin.
  await a.trustService.request(b.peer, "", 2_000, { pinned: true });
  await a.trustService.request(b.peer, "", 2_000);
  assert.equal(a.flow.outgoingTo(b.keyHex)?.pinned, true);
  // b's next request now crosses a pinned one.
  const again = await b.trustService.request(a.peer, "", 2_000);
  assert.equal(again.status, "trusted");
  assert.deepEqual(a.eventsOf("trust.approved").map((e) => e.data.via), ["crossing"]);
});

Deno.test("an expired outgoing request no longer approves a crossing request", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  await a.trustService.request(b.peer, "", 2_000, { pinned: true });
  net.clock.advance(OUTGOING_REQUEST_TTL_MS + 1);
  const asked = await b.trustService.request(a.peer, "", 2_000);
  assert.equal(asked.status, "pending");
  assert.equal(a.trust.has(b.keyHex), false);
  assert.ok(a.flow.pendingFrom(b.keyHex));
});

// --- reject and suppression -----------------------------------------------------------------

Deno.test("after reject() the same key's requests answer rejected 'suppressed' until REJECT_SUPPRESS_MS passes", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  await a.trustService.request(b.peer, "", 2_000);
  const rejected = await b.trustService.reject(a.keyHex, "not now", 2_000);
  assert.deepEqual(rejected, { status: "rejected", changed: true, delivered: true });
  assert.equal(a.flow.outgoingTo(b.keyHex)?.status, "rejected");
  assert.equal(a.flow.outgoingTo(b.keyHex)?.reject_reason, "not now");
  assert.deepEqual(a.eventsOf("trust.rejected").map((e) => e.data.reason), ["not now"]);
  assert.equal(b.flow.pending.length, 0);

  const sent = net.log.length;
  const again = await a.trustService.request(b.peer, "", 2_000);
  // Asking again after a rejection changes nothing: a safe repeat.
  assert.deepEqual(again, { status: "rejected", changed: false, delivered: true });
  // The ack of a repeat says only "suppressed": the reason of the reject is kept.
  assert.equal(a.flow.outgoingTo(b.keyHex)?.reject_reason, "not now");
  const ack = net.trustPackets().find((p) => p.wire.seq >= sent && p.packet.op === "ack")!;
  assert.deepEqual(ack.packet, { ...ack.packet, status: "rejected", detail: "suppressed" });
  assert.equal(b.flow.pending.length, 0);

  // Suppression survives a restart, and lasts until the deadline.
  await b.start();
  net.clock.advance(REJECT_SUPPRESS_MS - 1);
  assert.equal((await a.trustService.request(b.peer, "", 2_000)).status, "rejected");
  net.clock.advance(2);
  assert.equal((await a.trustService.request(b.peer, "", 2_000)).status, "pending");
  assert.ok(b.flow.pendingFrom(a.keyHex));
  assert.equal(b.eventsOf("trust.requested").length, 2);
});

// --- bounded pending queue ------------------------------------------------------------------

Deno.test("a full pending queue refuses a new request rate_limited and evicts nothing", async () => {
  await using net = await network(3);
  const [a, b, c] = net.nodes as [ServiceNode, ServiceNode, ServiceNode];
  const filler = (key: string) => ({
    public_key: key,
    stamp: "00".repeat(8),
    address: "0000.0000.0000",
    hostname: null,
    fingerprint: "x",
    reason: "",
    received_at: new Date(net.clock.ms).toISOString(),
    request_hash: "00".repeat(32),
  });
  // c is one of the queued requesters; the rest are random keys.
  await b.flow.putPending(filler(c.keyHex));
  for (let i = 1; i < MAX_PENDING_REQUESTS; i++) {
    await b.flow.putPending(filler(randomBytes(32).toHex()));
  }
  const keys = b.flow.pending.map((p) => p.public_key);
  assert.equal(keys.length, MAX_PENDING_REQUESTS);

  const err = await a.trustService.request(b.peer, "", 2_000).catch((e) => e);
  assert.ok(err instanceof PilotError);
  assert.equal(err.code, "rate_limited");
  assert.equal(b.trustService.drops.pending_full, 1);
  assert.deepEqual(b.flow.pending.map((p) => p.public_key).sort(), [...keys].sort());
  assert.equal(b.eventsOf("trust.requested").length, 0);

  // A key already queued may refresh its request; the queue does not grow.
  assert.equal((await c.trustService.request(b.peer, "again", 2_000)).status, "pending");
  assert.equal(b.flow.pending.length, MAX_PENDING_REQUESTS);
  assert.equal(b.flow.pendingFrom(c.keyHex)?.reason, "again");
  // After the restart the queue is still full.
  await b.start();
  assert.equal(b.flow.pending.length, MAX_PENDING_REQUESTS);
});

// --- pre-authorised peers -------------------------------------------------------------------

Deno.test("an autoApprove peer's request is approved at once and the accept is delivered", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  b.autoApprove.add(a.keyHex);
  const outcome = await a.trustService.request(b.peer, "", 2_000);
  assert.deepEqual(outcome, { status: "trusted", changed: true, delivered: true });
  assert.equal(b.trust.get(a.keyHex)?.mutual, true);
  assert.equal(b.flow.pending.length, 0);
  assert.deepEqual(b.eventsOf("trust.approved").map((e) => e.data.via), ["auto_approve"]);
  assert.equal(b.eventsOf("trust.requested").length, 0);
  await net.waitFor(() => a.trust.has(b.keyHex) && b.flow.outbox.length === 0, "the accept");
  const hashes = a.trust.get(b.keyHex)?.accept_hashes;
  assert.equal(hashes?.length, 1);
  assert.deepEqual(b.trust.get(a.keyHex)?.accept_hashes, hashes);
});

// --- unreachable peers and the outbox -------------------------------------------------------

Deno.test("untrust() of an unreachable peer queues the revoke; a later flush() delivers it", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const acceptHash = await establishTrust(net, a, b);
  net.disconnect(a, b);
  const outcome = await a.trustService.untrust(b.keyHex, 300);
  assert.deepEqual(outcome, { status: "untrusted", changed: true, delivered: false });
  assert.equal(a.trust.has(b.keyHex), false);
  assert.deepEqual(a.untrusted, [b.keyHex]);
  assert.deepEqual(a.flow.outbox.map((i) => [i.kind, i.ref_hash]), [["revoke", acceptHash]]);
  assert.equal(b.trust.has(a.keyHex), true);
  assert.equal(await a.trustService.flush(b.keyHex), false);

  // The queued revoke survives a restart and goes out once the peer is back.
  await a.start();
  net.connect(a, b);
  assert.equal(await a.trustService.flush(), true);
  assert.equal(a.flow.outbox.length, 0);
  assert.equal(b.trust.has(a.keyHex), false);
  await net.waitFor(() => b.untrusted.length > 0, "onUntrusted at b");
  assert.deepEqual(b.untrusted, [a.keyHex]);
});

Deno.test({
  name: "untrust() before a queued accept was delivered cancels it",
  fn: async () => {
    await using net = await network(2);
    const [a, b] = net.nodes as [ServiceNode, ServiceNode];
    await a.trustService.request(b.peer, "", 2_000);
    net.disconnect(a, b);
    assert.equal((await b.trustService.approve(a.keyHex, 300)).delivered, false);
    await b.trustService.untrust(a.keyHex, 300);
    net.connect(a, b);
    await b.trustService.flush();
    await net.idle();
    assert.equal(b.trust.has(a.keyHex), false);
    assert.equal(a.trust.has(b.keyHex), false);
    assert.equal(b.flow.outbox.length, 0);
  },
});

Deno.test("approve() of an unreachable requester trusts at once and delivers the accept on flush()", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  await a.trustService.request(b.peer, "", 2_000);
  net.disconnect(a, b);
  const outcome = await b.trustService.approve(a.keyHex, 300);
  assert.deepEqual(outcome, { status: "trusted", changed: true, delivered: false });
  assert.equal(b.trust.has(a.keyHex), true);
  assert.deepEqual(b.flow.outbox.map((i) => i.kind), ["accept"]);
  net.connect(a, b);
  assert.equal(await b.trustService.flush(a.keyHex), true);
  assert.equal(a.trust.get(b.keyHex)?.mutual, true);
  assert.deepEqual(a.trust.get(b.keyHex)?.accept_hashes, b.trust.get(a.keyHex)?.accept_hashes);
  assert.equal(b.flow.outbox.length, 0);
});

Deno.test("a dropped ack makes the sender repeat; the receiver answers the repeat from its cache", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  let dropped = 0;
  net.filter = (w) => {
    if (w.from !== b || dropped > 0) return "deliver";
    dropped++;
    return "drop";
  };
  const outcome = await a.trustService.request(b.peer, "", 3_000);
  assert.equal(outcome.status, "pending");
  const sent = await messagesFrom(net, a);
  assert.equal(sent.length, 2);
  assert.deepEqual(sent[1]!.packet.message, sent[0]!.packet.message);
  const acks = net.trustPackets().filter((p) => p.wire.from === b).map((p) => p.wire.payload);
  assert.equal(acks.length, 2);
  assert.deepEqual(acks[1], acks[0]);
  assert.equal(b.eventsOf("trust.requested").length, 1);
  assert.deepEqual(net.errors, []);
  assert.equal(decodeTrustPacket(acks[0]!).op, "ack");
});

Deno.test("valid trust messages from one key are rate limited (each may cost an fsync)", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const binding = net.binding(a, b.keyHex)!;
  const statuses: string[] = [];
  // 20 past the burst, so that refills during a slow loop (a loaded machine:
  // each message is signed here) still leave at least 5 refused.
  for (let i = 0; i < TRUST_RATE_PER_KEY.burst + 20; i++) {
    const request = await craft(a.id, { to: b, binding });
    const replies = await net.inject(b, {
      peer: a.peer,
      binding,
      payload: messagePacket(request.bytes),
    });
    statuses.push(ackOf(replies).detail);
  }
  assert.equal(statuses.filter((d) => d === "rate_limited").length >= 5, true, statuses.join(","));
  assert.equal(b.trustService.refused.rate_limited! >= 5, true);
});

Deno.test("approving a pending request of a peer trusted one way keeps what its entry knew (static-key serial, endpoint, since)", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  await b.trust.put({
    public_key: a.keyHex,
    address: a.id.address,
    hostname: null,
    since: "2026-01-01T00:00:00.000Z",
    mutual: false,
    static_serial: 7,
    endpoint: "198.18.0.9:4000",
    last_seen: "2026-01-02T00:00:00.000Z",
  });
  // A request from a that b holds although it trusts a one way (a request
  // from a trusted key is answered at once, so this one is put in place).
  await b.flow.putPending({
    public_key: a.keyHex,
    stamp: a.id.stamp.toHex(),
    address: a.id.address,
    hostname: null,
    fingerprint: a.id.fingerprint,
    reason: "",
    received_at: "2026-01-03T00:00:00.000Z",
    request_hash: "ab".repeat(32),
  });
  await b.trustService.approve(a.keyHex, 2_000);
  const entry = b.trust.get(a.keyHex)!;
  assert.equal(entry.mutual, true);
  assert.equal(entry.static_serial, 7, "the rollback floor of its static key is kept");
  assert.equal(entry.endpoint, "198.18.0.9:4000");
  assert.equal(entry.since, "2026-01-01T00:00:00.000Z");
});
