/**
 * The trust examples (§7.6): a request over the worked session, the accept
 * answering it, and both as port-444 datagrams with their acks.
 *
 * @module
 */

import assert from "node:assert/strict";
import { utf8 } from "../../src/bytes.ts";
import { PORT_TRUST, TRUST_LABEL } from "../../src/constants.ts";
import { sha256 } from "../../src/session/crypto.ts";
import {
  checkTrustMessage,
  decodeTrustMessage,
  type SignedTrustMessage,
  signTrustMessage,
} from "../../src/wire/trust_message.ts";
import { decodeTrustPacket, encodeTrustPacket } from "../../src/wire/trust_packet.ts";
import { type Field, fieldTable, hexDump } from "./_tables.ts";
import { iso, labelBytes, u16 } from "./_values.ts";
import type { WorkedSession } from "./handshake.ts";
import type { ExampleNode } from "./identity.ts";

/** The fixed inputs of the trust examples; nonces and request ids are SHA-256 of labels. */
export const WORKED_TRUST = {
  /** The request's reason (untrusted text to its receiver). */
  reason: "I schedule the nightly decrypt jobs",
  /** Creation times (Unix ms; informational in channel-bound messages). */
  requestCreated: 1_796_000_060_000,
  acceptCreated: 1_796_000_090_000,
  /** Nonces are the first 16 bytes of SHA-256 of these labels. */
  requestNonceLabel: "pilot/example/trust/request-nonce",
  acceptNonceLabel: "pilot/example/trust/accept-nonce",
  /** Port-444 request ids are the first 8 bytes of SHA-256 of these labels. */
  requestIdLabel: "pilot/example/trust/request-id",
  acceptIdLabel: "pilot/example/trust/accept-id",
} as const;

/** The field table of a signed trust message (§7.2). */
function trustTable(t: SignedTrustMessage, from: ExampleNode, to: ExampleNode): string {
  const m = t.message;
  const b = t.bytes;
  const common: Field[] = [
    { name: "version", bytes: b.subarray(0, 1), note: "1" },
    { name: "kind", bytes: b.subarray(1, 2), note: `${b[1]} = ${m.kind}` },
    { name: "from_key", bytes: m.fromKey, note: `signer: \`${from.identity.address}\`` },
    { name: "from_stamp", bytes: m.fromStamp, note: "proves the signer's address" },
    { name: "to_key", bytes: m.toKey, note: `recipient's full key: \`${to.identity.address}\`` },
    { name: "nonce", bytes: m.nonce, note: "random (here: fixed)" },
    { name: "created", bytes: b.subarray(90, 98), note: `${m.created} (${iso(m.created)})` },
    { name: "expires", bytes: b.subarray(98, 106), note: "0 = none: channel-bound" },
    { name: "binding", bytes: m.binding, note: "handshake hash h (§6.7)" },
  ];
  const rest: Field[] = [];
  if (m.kind === "request") {
    const host = utf8(m.hostname ?? "");
    const reason = utf8(m.reason ?? "");
    rest.push(
      { name: "hostname_len", bytes: Uint8Array.of(host.length), note: `${host.length}` },
      { name: "hostname", bytes: host, note: `\`${m.hostname}\`` },
      { name: "reason_len", bytes: u16(reason.length), note: `${reason.length}` },
      { name: "reason", bytes: reason, note: `\`${m.reason}\`` },
    );
  } else if (m.kind === "accept") {
    rest.push({
      name: "request_hash",
      bytes: m.requestHash!,
      note: "SHA-256 of the request's wire bytes",
    });
  }
  rest.push({ name: "signature", bytes: b.subarray(b.length - 64), note: "Ed25519" });
  return fieldTable(b, [...common, ...rest]);
}

/** The field table of a port-444 message datagram. */
function trustPacketTable(packet: Uint8Array, what: string): string {
  return fieldTable(packet, [
    { name: "op", bytes: packet.subarray(0, 1), note: "1 = message" },
    { name: "request_id", bytes: packet.subarray(1, 9), note: "chosen by the sender" },
    { name: "message", bytes: packet.subarray(9), note: what },
  ]);
}

/** The field table of a port-444 ack datagram. */
function ackTable(ack: Uint8Array, status: string): string {
  return fieldTable(ack, [
    { name: "op", bytes: ack.subarray(0, 1), note: "2 = ack" },
    { name: "request_id", bytes: ack.subarray(1, 9), note: "echoed" },
    { name: "status", bytes: ack.subarray(9, 10), note: `${ack[9]} = ${status}` },
    { name: "detail_len", bytes: ack.subarray(10, 11), note: `${ack[10]}` },
    { name: "detail", bytes: ack.subarray(11), note: "" },
  ]);
}

/** Generates the port-444 examples over the worked session. */
export async function trustExamples(s: WorkedSession): Promise<Record<string, string>> {
  const { alice, bob, peerA, peerB, handshakeHash: h } = s;
  const request = await signTrustMessage(alice.identity.seed, {
    kind: "request",
    fromStamp: alice.identity.stamp,
    toKey: bob.identity.publicKey,
    nonce: await labelBytes(WORKED_TRUST.requestNonceLabel, 16),
    created: WORKED_TRUST.requestCreated,
    expires: 0,
    binding: h,
    hostname: alice.hostname,
    reason: WORKED_TRUST.reason,
  });
  // The receiver's checks: addressed to it, signed by the session's peer, bound to this session.
  const atBob = { localKey: bob.identity.publicKey, sessionPeerKey: peerA.publicKey, now: 0 };
  assert.deepEqual(checkTrustMessage(request, { ...atBob, sessionBinding: h }), { ok: true });
  const otherSession = Uint8Array.from(h);
  otherSession[0]! ^= 1;
  const replayed = checkTrustMessage(request, { ...atBob, sessionBinding: otherSession });
  assert.ok(!replayed.ok && replayed.code === "wrong_binding");
  assert.equal((await decodeTrustMessage(request.bytes)).hash.toHex(), request.hash.toHex());
  assert.equal(
    request.hash.toHex(),
    (await sha256(request.bytes)).toHex(),
    "the hash covers the exact wire bytes",
  );

  const accept = await signTrustMessage(bob.identity.seed, {
    kind: "accept",
    fromStamp: bob.identity.stamp,
    toKey: alice.identity.publicKey,
    nonce: await labelBytes(WORKED_TRUST.acceptNonceLabel, 16),
    created: WORKED_TRUST.acceptCreated,
    expires: 0,
    binding: h,
    requestHash: request.hash,
  });
  assert.deepEqual(
    checkTrustMessage(accept, {
      localKey: alice.identity.publicKey,
      sessionPeerKey: peerB.publicKey,
      sessionBinding: h,
      now: 0,
    }),
    { ok: true },
  );

  const requestId = await labelBytes(WORKED_TRUST.requestIdLabel, 8);
  const acceptId = await labelBytes(WORKED_TRUST.acceptIdLabel, 8);
  const requestPacket = encodeTrustPacket({ op: "message", requestId, message: request.bytes });
  const requestAck = encodeTrustPacket({ op: "ack", requestId, status: "pending", detail: "" });
  const acceptPacket = encodeTrustPacket({
    op: "message",
    requestId: acceptId,
    message: accept.bytes,
  });
  const acceptAck = encodeTrustPacket({
    op: "ack",
    requestId: acceptId,
    status: "recorded",
    detail: "",
  });
  for (const p of [requestPacket, requestAck, acceptPacket, acceptAck]) {
    assert.equal(encodeTrustPacket(decodeTrustPacket(p)).toHex(), p.toHex());
  }

  const label = `\`"${TRUST_LABEL}"\``;
  const parts: Record<string, string> = {};
  parts["worked-trust-request"] = [
    `\`${alice.identity.address}\` (\`${alice.hostname}\`) asks \`${bob.identity.address}\` ` +
    `(\`${bob.hostname}\`) to trust it, over the session of §6. The signature covers ${label} ` +
    `‖ body (bytes 0..${request.bytes.length - 64}); the label is not transmitted. ` +
    `${request.bytes.length} bytes:`,
    "",
    trustTable(request, alice, bob),
    "",
    hexDump(request.bytes),
    "",
    `Request hash = SHA-256 of these ${request.bytes.length} bytes = \`${request.hash.toHex()}\`.`,
  ].join("\n");
  parts["worked-trust-accept"] = [
    `\`${bob.identity.address}\` approves; its accept names the request by hash and is bound ` +
    `to the same session (${accept.bytes.length} bytes):`,
    "",
    trustTable(accept, bob, alice),
    "",
    hexDump(accept.bytes),
    "",
    `Accept hash = \`${accept.hash.toHex()}\`: what a later revoke names.`,
  ].join("\n");
  parts["worked-trust-packets"] = [
    `The request as a port-444 datagram (${requestPacket.length} bytes; inner source and ` +
    `destination port ${PORT_TRUST}), request id = SHA-256(\`${WORKED_TRUST.requestIdLabel}\`)[0..8):`,
    "",
    trustPacketTable(requestPacket, "the signed request above"),
    "",
    hexDump(requestPacket),
    "",
    `\`${bob.identity.address}\` puts it in \`pending\` and acknowledges (${requestAck.length} bytes):`,
    "",
    ackTable(requestAck, "pending"),
    "",
    hexDump(requestAck),
    "",
    `After \`pilot approve\`, the accept travels the same way, request id = ` +
    `SHA-256(\`${WORKED_TRUST.acceptIdLabel}\`)[0..8) (${acceptPacket.length} bytes):`,
    "",
    trustPacketTable(acceptPacket, "the signed accept above"),
    "",
    hexDump(acceptPacket),
    "",
    `\`${alice.identity.address}\` now trusts \`${bob.identity.address}\` and acknowledges:`,
    "",
    ackTable(acceptAck, "recorded"),
    "",
    hexDump(acceptAck),
  ].join("\n");
  return parts;
}
