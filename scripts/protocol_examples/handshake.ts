/**
 * The worked handshake (§6): two committed test identities run a real Noise
 * XX handshake with fixed ephemeral keys, then exchange a keepalive and a
 * datagram to the echo port. Also the cookie reply a loaded responder would
 * send (§6.4). Its session carries the trust examples (§7.6).
 *
 * @module
 */

import assert from "node:assert/strict";
import { utf8 } from "../../src/bytes.ts";
import { COOKIE_LABEL, MAC1_LABEL, PORT_ECHO, PROLOGUE } from "../../src/constants.ts";
import { formatEndpoint } from "../../src/discovery/endpoint.ts";
import { addressToBytes } from "../../src/identity/address.ts";
import {
  computeMac1,
  computeMac2,
  CookieJar,
  mac1Key,
  verifyMac1,
} from "../../src/session/cookie.ts";
import {
  hmacSha256,
  nonceFromCounter,
  sha256,
  type X25519KeyPair,
  x25519PublicKey,
} from "../../src/session/crypto.ts";
import { HandshakeState } from "../../src/session/noise.ts";
import { type PeerIdentity, verifyPeerPayload } from "../../src/session/peer_identity.ts";
import { Session } from "../../src/session/session.ts";
import { DATA_HEADER_SIZE, encodeFrame, MAC_SIZE, MSG1_NOISE_SIZE } from "../../src/wire/frames.ts";
import { decodeHandshakePayload, type HandshakePayload } from "../../src/wire/handshake_payload.ts";
import { decodeInner, encodeInner } from "../../src/wire/inner.ts";
import { fieldTable, hexDump, valueTable } from "./_tables.ts";
import { hexIndex, u32 } from "./_values.ts";
import { decodeAs, encodeChecked } from "./frames.ts";
import { type ExampleNode, exampleNode, identitySection } from "./identity.ts";
import { WORKED } from "./worked.ts";

/** A fixed X25519 key pair: the private key is SHA-256(label). */
async function ephemeral(label: string): Promise<X25519KeyPair> {
  const privateKey = await sha256(utf8(label));
  return { privateKey, publicKey: await x25519PublicKey(privateKey) };
}

/** Builds a CookieJar whose secret is `secret` (the jar draws it from getRandomValues). */
function cookieJarWithSecret(secret: Uint8Array): CookieJar {
  const original = crypto.getRandomValues;
  const fixed = <T extends ArrayBufferView | null>(array: T): T => {
    if (array !== null) {
      const view = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
      assert.equal(view.length, secret.length, "the cookie secret is drawn in one call");
      view.set(secret);
    }
    return array;
  };
  crypto.getRandomValues = fixed as typeof crypto.getRandomValues;
  try {
    return new CookieJar(() => 0);
  } finally {
    crypto.getRandomValues = original;
  }
}

/** The field table of a handshake payload (§3.5). */
function payloadTable(p: HandshakePayload, bytes: Uint8Array): string {
  return fieldTable(bytes, [
    { name: "version", bytes: Uint8Array.of(1), note: "payload version 1" },
    { name: "ed25519_pub", bytes: p.publicKey, note: "identity key" },
    { name: "stamp", bytes: p.stamp, note: "address stamp" },
    { name: "static_serial", bytes: u32(p.staticSerial), note: `${p.staticSerial}` },
    {
      name: "static_created",
      bytes: bytes.subarray(45, 53),
      note: `${p.staticCreated} (${new Date(p.staticCreated).toISOString()})`,
    },
    { name: "binding_sig", bytes: p.bindingSignature, note: "Ed25519 over the binding" },
    { name: "hostname_len", bytes: Uint8Array.of(p.hostname.length), note: `${p.hostname.length}` },
    { name: "hostname", bytes: utf8(p.hostname), note: `\`${p.hostname}\`` },
    {
      name: "self_time",
      bytes: bytes.subarray(118 + p.hostname.length, 126 + p.hostname.length),
      note: `${p.selfTime} (${new Date(p.selfTime).toISOString()})`,
    },
    { name: "self_sig", bytes: p.selfSignature, note: "Ed25519 over the self-description" },
  ]);
}

/** What the worked handshake produced, for the examples that travel over its session. */
export interface WorkedSession {
  /** The initiator (test identity 0, `alpha`). */
  alice: ExampleNode;
  /** The responder (test identity 1, `beta`). */
  bob: ExampleNode;
  /** The initiator as the responder authenticated it. */
  peerA: PeerIdentity;
  /** The responder as the initiator authenticated it. */
  peerB: PeerIdentity;
  /** The Noise handshake hash h: the session's channel binding. */
  handshakeHash: Uint8Array;
}

/** Runs the worked handshake and returns its session (deterministic). */
export async function workedSession(): Promise<WorkedSession> {
  return (await workedExamples()).session;
}

/** Generates the worked handshake and data frames, and the session they open. */
export async function workedExamples(): Promise<
  { parts: Record<string, string>; session: WorkedSession }
> {
  const alice = exampleNode(WORKED.initiatorFixture, WORKED.initiatorHostname);
  const bob = exampleNode(WORKED.responderFixture, WORKED.responderHostname);
  const eI = await ephemeral(WORKED.initiatorEphemeralLabel);
  const eR = await ephemeral(WORKED.responderEphemeralLabel);
  const prologue = utf8(PROLOGUE);
  // As src/session/handshake.ts: message 1's payload is zero padding.
  const padding = new Uint8Array(MSG1_NOISE_SIZE - 32);
  const zeroMac = new Uint8Array(MAC_SIZE);

  const ini = await HandshakeState.create({
    pattern: "XX",
    initiator: true,
    prologue,
    s: alice.identity.staticKey,
    e: eI,
  });
  const res = await HandshakeState.create({
    pattern: "XX",
    initiator: false,
    prologue,
    s: bob.identity.staticKey,
    e: eR,
  });

  // Message 1, with mac1 since the initiator knows the responder's key.
  const noise1 = await ini.writeMessage(padding);
  const msg1 = encodeFrame({
    type: "init",
    senderIndex: WORKED.initiatorIndex,
    noise: noise1,
    mac1: zeroMac,
    mac2: zeroMac,
  });
  const m1Key = await mac1Key(bob.identity.publicKey);
  const mac1 = await computeMac1(msg1, m1Key);
  msg1.set(mac1, msg1.length - 2 * MAC_SIZE);
  const f1 = decodeAs(msg1, "init");
  assert.ok(await verifyMac1(msg1, f1.mac1, await mac1Key(bob.identity.publicKey)));
  assert.equal(encodeFrame(f1).toHex(), msg1.toHex());
  assert.equal((await res.readMessage(f1.noise)).toHex(), padding.toHex());

  // Cookie reply (if the responder were under load) and message 1 with mac2.
  const jar = cookieJarWithSecret(await sha256(utf8(WORKED.cookieSecretLabel)));
  const cookieSecret = await sha256(utf8(WORKED.cookieSecretLabel));
  const cookie = await jar.cookieFor(WORKED.initiatorEndpoint);
  const cookieInput = `${COOKIE_LABEL}|${formatEndpoint(WORKED.initiatorEndpoint)}`;
  assert.equal(
    cookie.toHex(),
    (await hmacSha256(cookieSecret, utf8(cookieInput))).subarray(0, 16).toHex(),
    "the documented cookie derivation matches CookieJar",
  );
  const echo = f1.noise.subarray(0, 16);
  const cookieReply = encodeChecked({
    type: "cookie",
    receiverIndex: f1.senderIndex,
    echo,
    cookie,
  });
  const msg1b = Uint8Array.from(msg1);
  const mac2 = await computeMac2(msg1b, cookie);
  msg1b.set(mac2, msg1b.length - MAC_SIZE);
  assert.ok(await jar.verifyMac2(msg1b, mac2, WORKED.initiatorEndpoint));
  assert.ok(!(await jar.verifyMac2(msg1b, mac2, WORKED.responderEndpoint)));

  // Message 2.
  const noise2 = await res.writeMessage(bob.payload);
  const msg2 = encodeChecked({
    type: "resp",
    senderIndex: WORKED.responderIndex,
    receiverIndex: f1.senderIndex,
    noise: noise2,
  });
  const f2 = decodeAs(msg2, "resp");
  const got2 = decodeHandshakePayload(await ini.readMessage(f2.noise));
  const peerB: PeerIdentity = await verifyPeerPayload(got2, ini.remoteStatic!);
  assert.equal(peerB.address, bob.identity.address);
  assert.equal(peerB.hostname, bob.hostname);

  // Message 3.
  const noise3 = await ini.writeMessage(alice.payload);
  const msg3 = encodeChecked({
    type: "final",
    senderIndex: WORKED.initiatorIndex,
    receiverIndex: f2.senderIndex,
    noise: noise3,
  });
  const f3 = decodeAs(msg3, "final");
  const got3 = decodeHandshakePayload(await res.readMessage(f3.noise));
  const peerA = await verifyPeerPayload(got3, res.remoteStatic!);
  assert.equal(peerA.address, alice.identity.address);

  const keysI = await ini.split();
  const keysR = await res.split();
  assert.deepEqual(keysI, keysR);
  const h = ini.handshakeHash;
  assert.equal(h.toHex(), res.handshakeHash.toHex());

  // Sessions, as src/session/handshake.ts creates them.
  const sI = await Session.create({
    localIndex: WORKED.initiatorIndex,
    remoteIndex: WORKED.responderIndex,
    initiator: true,
    peer: peerB,
    endpoint: WORKED.responderEndpoint,
    sendKey: keysI.initiatorToResponder,
    receiveKey: keysI.responderToInitiator,
    handshakeHash: h,
    now: 0,
  });
  const sR = await Session.create({
    localIndex: WORKED.responderIndex,
    remoteIndex: WORKED.initiatorIndex,
    initiator: false,
    peer: peerA,
    endpoint: WORKED.initiatorEndpoint,
    sendKey: keysR.responderToInitiator,
    receiveKey: keysR.initiatorToResponder,
    handshakeHash: h,
    now: 0,
  });

  // The responder's keepalive right after message 3.
  const keepalive = (await sR.seal(encodeInner({ kind: "keepalive" }), 0))!;
  const kf = decodeAs(keepalive, "data");
  const kOpened = await sI.open(kf, 0);
  assert.ok(kOpened.ok && kOpened.plaintext.length === 0);
  assert.ok(sI.confirmed);

  // The initiator's datagram to the echo port.
  const inner = encodeInner({
    kind: "datagram",
    srcAddress: addressToBytes(alice.identity.address),
    dstAddress: addressToBytes(bob.identity.address),
    srcPort: WORKED.datagramSourcePort,
    dstPort: PORT_ECHO,
    payload: utf8(WORKED.datagramPayload),
  });
  const data = (await sI.seal(inner, 0))!;
  const df = decodeAs(data, "data");
  const dOpened = await sR.open(df, 0);
  assert.ok(dOpened.ok);
  const dPlain = dOpened.plaintext;
  assert.equal(dPlain.toHex(), inner.toHex());
  const decoded = decodeInner(dPlain);
  assert.ok(decoded.kind === "datagram" && decoded.dstPort === PORT_ECHO);
  assert.deepEqual(
    await sR.open(df, 0),
    { ok: false, reason: "replay" },
    "a second copy is a replay",
  );

  const a = alice.identity.address;
  const b = bob.identity.address;
  const iIdx = hexIndex(WORKED.initiatorIndex);
  const rIdx = hexIndex(WORKED.responderIndex);
  const p2Len = bob.payload.length;
  const p3Len = alice.payload.length;

  const parts: Record<string, string> = {};

  parts["worked-identities"] = [
    identitySection(alice, "Initiator"),
    "",
    identitySection(bob, "Responder"),
  ].join("\n");

  parts["worked-inputs"] = valueTable([
    ["prologue", `\`${PROLOGUE}\` = \`${prologue.toHex()}\``],
    [
      "initiator ephemeral private key",
      `SHA-256(\`${WORKED.initiatorEphemeralLabel}\`) = \`${eI.privateKey.toHex()}\``,
    ],
    ["initiator ephemeral public key", `\`${eI.publicKey.toHex()}\``],
    [
      "responder ephemeral private key",
      `SHA-256(\`${WORKED.responderEphemeralLabel}\`) = \`${eR.privateKey.toHex()}\``,
    ],
    ["responder ephemeral public key", `\`${eR.publicKey.toHex()}\``],
    ["initiator session index", `\`${iIdx}\``],
    ["responder session index", `\`${rIdx}\``],
    ["initiator endpoint", `\`${formatEndpoint(WORKED.initiatorEndpoint)}\``],
    ["responder endpoint", `\`${formatEndpoint(WORKED.responderEndpoint)}\``],
  ]);

  parts["worked-msg1"] = [
    "Token `e`; the payload is 315 zero bytes of padding. " +
    `mac1 key = SHA-256(\`"${MAC1_LABEL}"\` ‖ responder Ed25519 key) = \`${m1Key.toHex()}\`; ` +
    `mac1 = HMAC-SHA256(mac1 key, bytes 0..352)[0..16) = \`${mac1.toHex()}\`.`,
    "",
    fieldTable(msg1, [
      { name: "type", bytes: Uint8Array.of(1), note: "HandshakeInit" },
      { name: "sender_index", bytes: u32(WORKED.initiatorIndex), note: "initiator's index" },
      { name: "noise: e", bytes: eI.publicKey, note: "initiator ephemeral, in clear" },
      { name: "noise: payload", bytes: padding, note: "315 zero bytes, in clear (no key yet)" },
      { name: "mac1", bytes: mac1, note: "keyed by the responder's Ed25519 key" },
      { name: "mac2", bytes: zeroMac, note: "no cookie" },
    ]),
    "",
    hexDump(msg1),
  ].join("\n");

  parts["worked-cookie"] = [
    `Sent instead of message 2 only while the responder demands cookies (§3.7). The cookie secret here is SHA-256(\`${WORKED.cookieSecretLabel}\`) = ` +
    `\`${cookieSecret.toHex()}\` (a real responder draws 32 random bytes). ` +
    `cookie = HMAC-SHA256(secret, \`${cookieInput}\`)[0..16) = \`${cookie.toHex()}\`.`,
    "",
    fieldTable(cookieReply, [
      { name: "type", bytes: Uint8Array.of(4), note: "CookieReply" },
      { name: "receiver_index", bytes: u32(WORKED.initiatorIndex), note: "from message 1" },
      { name: "echo", bytes: echo, note: "first 16 bytes of the initiator's ephemeral key" },
      {
        name: "cookie",
        bytes: cookie,
        note: `bound to \`${formatEndpoint(WORKED.initiatorEndpoint)}\``,
      },
    ]),
    "",
    hexDump(cookieReply),
    "",
    `The initiator then resends message 1 with mac2 = HMAC-SHA256(cookie, bytes 0..368)[0..16) = ` +
    `\`${mac2.toHex()}\` in bytes 368..384; bytes 0..368 are unchanged.`,
  ].join("\n");

  parts["worked-msg2"] = [
    `Tokens \`e, ee, s, es\`. The payload is the responder's handshake payload (${p2Len} bytes):`,
    "",
    payloadTable(bob.payloadFields, bob.payload),
    "",
    hexDump(bob.payload),
    "",
    `Message 2 (${msg2.length} bytes):`,
    "",
    fieldTable(msg2, [
      { name: "type", bytes: Uint8Array.of(2), note: "HandshakeResp" },
      { name: "sender_index", bytes: u32(WORKED.responderIndex), note: "responder's index" },
      { name: "receiver_index", bytes: u32(WORKED.initiatorIndex), note: "from message 1" },
      { name: "noise: e", bytes: eR.publicKey, note: "responder ephemeral, in clear" },
      {
        name: "noise: s",
        bytes: noise2.subarray(32, 80),
        note: "responder static X25519 key, encrypted after `ee` (32 + 16 tag)",
      },
      {
        name: "noise: payload",
        bytes: noise2.subarray(80),
        note: `handshake payload encrypted after \`es\` (${p2Len} + 16 tag)`,
      },
    ]),
    "",
    hexDump(msg2),
  ].join("\n");

  parts["worked-msg3"] = [
    `Tokens \`s, se\`. The payload is the initiator's handshake payload (${p3Len} bytes):`,
    "",
    payloadTable(alice.payloadFields, alice.payload),
    "",
    hexDump(alice.payload),
    "",
    `Message 3 (${msg3.length} bytes):`,
    "",
    fieldTable(msg3, [
      { name: "type", bytes: Uint8Array.of(3), note: "HandshakeFinal" },
      { name: "sender_index", bytes: u32(WORKED.initiatorIndex), note: "initiator's index" },
      { name: "receiver_index", bytes: u32(WORKED.responderIndex), note: "from message 2" },
      {
        name: "noise: s",
        bytes: noise3.subarray(0, 48),
        note: "initiator static X25519 key, encrypted (32 + 16 tag)",
      },
      {
        name: "noise: payload",
        bytes: noise3.subarray(48),
        note: `handshake payload encrypted after \`se\` (${p3Len} + 16 tag)`,
      },
    ]),
    "",
    hexDump(msg3),
  ].join("\n");

  parts["worked-split"] = valueTable([
    ["handshake hash h", `\`${h.toHex()}\``],
    ["k1 = initiator → responder", `\`${keysI.initiatorToResponder.toHex()}\``],
    ["k2 = responder → initiator", `\`${keysI.responderToInitiator.toHex()}\``],
  ]);

  const kHeader = keepalive.subarray(0, DATA_HEADER_SIZE);
  parts["worked-keepalive"] = [
    `Responder → initiator, key k2, counter 0, nonce \`${nonceFromCounter(0).toHex()}\`, ` +
    `empty plaintext:`,
    "",
    fieldTable(keepalive, [
      { name: "type", bytes: Uint8Array.of(5), note: "Data" },
      { name: "receiver_index", bytes: u32(WORKED.initiatorIndex), note: "initiator's index" },
      { name: "counter", bytes: kHeader.subarray(5), note: "0" },
      { name: "tag", bytes: keepalive.subarray(DATA_HEADER_SIZE), note: "AES-256-GCM tag" },
    ]),
    "",
    hexDump(keepalive),
  ].join("\n");

  const dHeader = data.subarray(0, DATA_HEADER_SIZE);
  parts["worked-data"] = [
    `Initiator → responder, key k1, counter 0, nonce \`${nonceFromCounter(0).toHex()}\`. ` +
    `Plaintext: a datagram from \`${a}:${WORKED.datagramSourcePort}\` to ` +
    `\`${b}:${PORT_ECHO}\` carrying \`${WORKED.datagramPayload}\`:`,
    "",
    fieldTable(inner, [
      { name: "kind", bytes: Uint8Array.of(1), note: "datagram" },
      { name: "src_address", bytes: addressToBytes(a), note: `\`${a}\`` },
      { name: "dst_address", bytes: addressToBytes(b), note: `\`${b}\`` },
      { name: "src_port", bytes: inner.subarray(13, 15), note: `${WORKED.datagramSourcePort}` },
      { name: "dst_port", bytes: inner.subarray(15, 17), note: `${PORT_ECHO} (echo)` },
      {
        name: "payload",
        bytes: utf8(WORKED.datagramPayload),
        note: `\`${WORKED.datagramPayload}\``,
      },
    ]),
    "",
    `Data frame (${data.length} bytes); AAD = bytes 0..13 = \`${dHeader.toHex()}\`:`,
    "",
    fieldTable(data, [
      { name: "type", bytes: Uint8Array.of(5), note: "Data" },
      { name: "receiver_index", bytes: u32(WORKED.responderIndex), note: "responder's index" },
      { name: "counter", bytes: dHeader.subarray(5), note: "0" },
      {
        name: "ciphertext",
        bytes: data.subarray(DATA_HEADER_SIZE, data.length - 16),
        note: `${inner.length} bytes`,
      },
      { name: "tag", bytes: data.subarray(data.length - 16), note: "AES-256-GCM tag" },
    ]),
    "",
    hexDump(data),
  ].join("\n");

  return { parts, session: { alice, bob, peerA, peerB, handshakeHash: h } };
}
