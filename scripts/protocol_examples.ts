/**
 * Generates the worked examples of `docs/PROTOCOL.md` with the project's own
 * code: fixed keys (two committed test identities and fixed ephemeral keys),
 * so every run prints the same bytes. They cover the identity file, frame
 * layouts, a whole handshake and its first frames (§6), a trust request and
 * its accept on port 444 bound to that handshake (§7.6), the opening of a
 * stream between two real stream muxes (§8.9), a message and a file with
 * their receipts on port 1001 (§9.5), and a subscription with an event on
 * port 1002 (§10.4). `tests/protocol_examples_test.ts` regenerates them and
 * compares them with the document, so the document cannot drift from the
 * code.
 *
 * The document marks each generated part as a region:
 *
 * ```text
 * <!-- example: ID -->
 * …generated Markdown…
 * <!-- /example -->
 * ```
 *
 * Usage:
 *
 * - `deno run --allow-read scripts/protocol_examples.ts` prints every region.
 * - `deno run --allow-read --allow-write scripts/protocol_examples.ts --write`
 *   rewrites the regions of `docs/PROTOCOL.md` in place.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fixtures from "../tests/fixtures/identities.json" with { type: "json" };
import {
  ADDRESS_LABEL,
  COOKIE_LABEL,
  MAC1_LABEL,
  MAX_DATAGRAM,
  PORT_ECHO,
  PORT_MESSAGES,
  PORT_PUBSUB,
  PORT_TRUST,
  PROLOGUE,
  STATIC_KEY_LABEL,
  TRUST_LABEL,
} from "../src/constants.ts";
import { type Endpoint, formatEndpoint } from "../src/discovery/endpoint.ts";
import { addressToBytes, verifyStamp } from "../src/identity/address.ts";
import { fingerprint } from "../src/identity/fingerprint.ts";
import { decodeIdentityFile, encodeIdentityFile, type Identity } from "../src/identity/identity.ts";
import {
  SELF_DESCRIPTION_LABEL,
  selfDescriptionMessage,
  signSelfDescription,
  verifySelfDescription,
} from "../src/identity/self_description.ts";
import { bindingMessage, verifyBinding } from "../src/identity/static_key.ts";
import { computeMac1, computeMac2, CookieJar, mac1Key, verifyMac1 } from "../src/session/cookie.ts";
import {
  hmacSha256,
  nonceFromCounter,
  sha256,
  type X25519KeyPair,
  x25519PublicKey,
} from "../src/session/crypto.ts";
import { HandshakeState } from "../src/session/noise.ts";
import { type PeerIdentity, verifyPeerPayload } from "../src/session/peer_identity.ts";
import { Session } from "../src/session/session.ts";
import { concat, utf8 } from "../src/bytes.ts";
import {
  DATA_HEADER_SIZE,
  decodeFrame,
  encodeFrame,
  type Frame,
  type FrameInput,
  MAC_SIZE,
  MSG1_NOISE_SIZE,
} from "../src/wire/frames.ts";
import {
  decodeHandshakePayload,
  encodeHandshakePayload,
  type HandshakePayload,
} from "../src/wire/handshake_payload.ts";
import { decodeInner, encodeInner, type InnerPacket } from "../src/wire/inner.ts";
import { decodeEnvelope, encodeEnvelope, type Envelope } from "../src/wire/data_message.ts";
import {
  decodeFrame as decodeExchangeFrame,
  encodeFrame as encodeExchangeFrame,
  type ExchangeFrame,
  FRAME_FILE_BEGIN,
  FRAME_FILE_DATA,
  FRAME_FILE_END,
  FRAME_MESSAGE,
  FRAME_RECEIPT,
  frameCap,
  type FrameKind,
  frameKindName,
} from "../src/wire/exchange_frame.ts";
import {
  decodeFrame as decodePubSubFrame,
  encodeFrame as encodePubSubFrame,
  type PubSubFrame,
} from "../src/wire/pubsub_frame.ts";
import {
  decodeSegment,
  encodeSegment,
  SEG_ACK,
  SEG_FIN,
  SEG_PROBE,
  SEG_RST,
  SEG_SYN,
} from "../src/wire/stream_segment.ts";
import { mssFor } from "../src/stream/mss.ts";
import { StreamMux, type StreamPacket } from "../src/stream/mux.ts";
import {
  checkTrustMessage,
  decodeTrustMessage,
  type SignedTrustMessage,
  signTrustMessage,
} from "../src/wire/trust_message.ts";
import { decodeTrustPacket, encodeTrustPacket } from "../src/wire/trust_packet.ts";

/** Where the generated regions live. */
export const PROTOCOL_DOC = new URL("../docs/PROTOCOL.md", import.meta.url);

/** The fixed inputs of the worked handshake; everything else follows from them. */
export const WORKED = {
  /** Index of the initiator's identity in `tests/fixtures/identities.json`. */
  initiatorFixture: 0,
  /** Index of the responder's identity in `tests/fixtures/identities.json`. */
  responderFixture: 1,
  initiatorHostname: "alpha",
  responderHostname: "beta",
  /** Self-description time of both nodes (Unix ms; informational). */
  selfTime: 1_796_000_000_000,
  initiatorIndex: 0x1111_1111,
  responderIndex: 0x2222_2222,
  initiatorEndpoint: { hostname: "198.18.0.1", port: 7440 } as Endpoint,
  responderEndpoint: { hostname: "198.18.0.2", port: 7440 } as Endpoint,
  /** Ephemeral private keys are SHA-256 of these labels. */
  initiatorEphemeralLabel: "pilot/example/ephemeral/initiator",
  responderEphemeralLabel: "pilot/example/ephemeral/responder",
  /** The example cookie secret is SHA-256 of this label. */
  cookieSecretLabel: "pilot/example/cookie-secret",
  /** Source port of the datagram to the echo port. */
  datagramSourcePort: 49_152,
  datagramPayload: "ping",
} as const;

// ---------------------------------------------------------------------------
// Markdown helpers

/** Hex dump in 16-byte lines, two groups of 8, with a byte count header. */
export function hexDump(bytes: Uint8Array): string {
  const lines = [`# ${bytes.length} bytes`];
  for (let off = 0; off < bytes.length; off += 16) {
    const row = [...bytes.subarray(off, off + 16)].map((b) => b.toString(16).padStart(2, "0"));
    const left = row.slice(0, 8).join(" ");
    const right = row.slice(8).join(" ");
    lines.push(`${off.toString(16).padStart(4, "0")}  ${right ? `${left}  ${right}` : left}`);
  }
  return "```text\n" + lines.join("\n") + "\n```";
}

/** Short hex for a table cell: in full up to 32 bytes, else its ends. */
function cell(bytes: Uint8Array): string {
  if (bytes.length === 0) return "(none)";
  if (bytes.length <= 32) return `\`${bytes.toHex()}\``;
  return `\`${bytes.subarray(0, 8).toHex()}…${bytes.subarray(bytes.length - 8).toHex()}\``;
}

interface Field {
  name: string;
  bytes: Uint8Array;
  note?: string;
}

/** A table of consecutive fields with offsets; asserts they make up `whole`. */
function fieldTable(whole: Uint8Array, fields: Field[]): string {
  const rows = ["| offset | size | field | bytes | meaning |", "|---:|---:|---|---|---|"];
  let off = 0;
  for (const f of fields) {
    assert.equal(
      whole.subarray(off, off + f.bytes.length).toHex(),
      f.bytes.toHex(),
      `field ${f.name} at offset ${off}`,
    );
    rows.push(`| ${off} | ${f.bytes.length} | ${f.name} | ${cell(f.bytes)} | ${f.note ?? ""} |`);
    off += f.bytes.length;
  }
  assert.equal(off, whole.length, "fields cover the whole value");
  return rows.join("\n");
}

/** A two-column table of named values. */
function valueTable(rows: [string, string][]): string {
  return ["| value | |", "|---|---|", ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join("\n");
}

function u32(v: number): Uint8Array {
  return Uint8Array.of(v >>> 24, v >>> 16, v >>> 8, v);
}

function hexIndex(v: number): string {
  return `0x${v.toString(16).padStart(8, "0")}`;
}

function encodeChecked(frame: FrameInput): Uint8Array {
  const bytes = encodeFrame(frame);
  // The decoder must read back exactly what was written.
  assert.equal(encodeFrame(decodeFrame(bytes) as FrameInput).toHex(), bytes.toHex());
  return bytes;
}

function decodeAs<T extends Frame["type"]>(
  bytes: Uint8Array,
  type: T,
): Extract<Frame, { type: T }> {
  const frame = decodeFrame(bytes);
  assert.equal(frame.type, type);
  return frame as Extract<Frame, { type: T }>;
}

// ---------------------------------------------------------------------------
// Layout examples: placeholder bytes that make each field stand out. The same
// inputs are encoded by tests/frames_test.ts, tests/inner_test.ts and
// tests/handshake_payload_test.ts.

const fill = (n: number, v: number): Uint8Array => new Uint8Array(n).fill(v);

function layoutExamples(): Record<string, string> {
  const resp = encodeChecked({
    type: "resp",
    senderIndex: 0x1a2b3c4d,
    receiverIndex: 0x0a0b0c0d,
    noise: concat(fill(32, 0xe2), fill(48, 0x5e), fill(16, 0x7a)),
  });
  const final = encodeChecked({
    type: "final",
    senderIndex: 0x0a0b0c0d,
    receiverIndex: 0x1a2b3c4d,
    noise: concat(fill(48, 0x5e), fill(16, 0x7a)),
  });
  const cookie = encodeChecked({
    type: "cookie",
    receiverIndex: 0x0a0b0c0d,
    echo: fill(16, 0xec),
    cookie: fill(16, 0xc0),
  });
  const data = encodeChecked({
    type: "data",
    receiverIndex: 0x1a2b3c4d,
    counter: 0x010203040506,
    body: concat(Uint8Array.of(0xc1, 0xc2, 0xc3), fill(16, 0x7a)),
  });
  const keepalive = encodeChecked({
    type: "data",
    receiverIndex: 0x0a0b0c0d,
    counter: 0,
    body: fill(16, 0x7b),
  });
  const innerPackets: InnerPacket[] = [
    {
      kind: "datagram",
      srcAddress: Uint8Array.fromHex("3fa209c177e4"),
      dstAddress: Uint8Array.fromHex("0a0b0c0d0e0f"),
      srcPort: 1001,
      dstPort: 7,
      payload: utf8("hi"),
    },
    {
      kind: "stream",
      srcAddress: Uint8Array.fromHex("0a0b0c0d0e0f"),
      dstAddress: Uint8Array.fromHex("3fa209c177e4"),
      srcPort: 49152,
      dstPort: 1000,
      payload: Uint8Array.of(0, 1, 2, 3),
    },
  ];
  const [datagram, stream] = innerPackets.map((p) => {
    const bytes = encodeInner(p);
    assert.equal(encodeInner(decodeInner(bytes)).toHex(), bytes.toHex());
    return bytes;
  }) as [Uint8Array, Uint8Array];
  const payload: HandshakePayload = {
    publicKey: Uint8Array.from({ length: 32 }, (_, i) => i),
    stamp: Uint8Array.fromHex("0000000000a1b2c3"),
    staticSerial: 1,
    staticCreated: 1_700_000_000_000,
    bindingSignature: fill(64, 0xb5),
    hostname: "alpha",
    selfTime: 1_700_000_060_000,
    selfSignature: fill(64, 0x5e),
  };
  const payloadBytes = encodeHandshakePayload(payload);
  assert.deepEqual(decodeHandshakePayload(payloadBytes), payload);
  return {
    "layout-resp": hexDump(resp),
    "layout-final": hexDump(final),
    "layout-cookie": hexDump(cookie),
    "layout-data": hexDump(data),
    "layout-keepalive": hexDump(keepalive),
    "layout-inner-datagram": hexDump(datagram),
    "layout-inner-stream": hexDump(stream),
    "layout-payload": hexDump(payloadBytes),
  };
}

// ---------------------------------------------------------------------------
// The worked handshake

/** A fixture identity with what the handshake needs. */
export interface ExampleNode {
  /** The committed test identity. */
  identity: Identity;
  /** The hostname it claims in the example. */
  hostname: string;
  /** Its encoded handshake payload (the Noise payload of message 2 or 3). */
  payload: Uint8Array;
  /** The payload's fields. */
  payloadFields: HandshakePayload;
  /** The bytes its self-description signature covers. */
  selfMessage: Uint8Array;
}

/** Loads a committed test identity (fully checked by decodeIdentityFile). */
export function fixtureIdentity(i: number): Identity {
  const file = fixtures[i];
  if (file === undefined) throw new Error(`No fixture identity ${i}`);
  return decodeIdentityFile(JSON.stringify(file));
}

/** A fixture identity with its example hostname, self-description and handshake payload. */
export function exampleNode(i: number, hostname: string): ExampleNode {
  const identity = fixtureIdentity(i);
  const self = signSelfDescription(identity.seed, {
    stamp: identity.stamp,
    hostname,
    time: WORKED.selfTime,
  });
  assert.ok(verifySelfDescription(self));
  // The same fields src/daemon/node.ts puts in its handshake payload.
  const payloadFields: HandshakePayload = {
    publicKey: identity.publicKey,
    stamp: identity.stamp,
    staticSerial: identity.binding.serial,
    staticCreated: identity.binding.created,
    bindingSignature: identity.binding.signature,
    hostname,
    selfTime: self.time,
    selfSignature: self.signature,
  };
  return {
    identity,
    hostname,
    payload: encodeHandshakePayload(payloadFields),
    payloadFields,
    selfMessage: selfDescriptionMessage(self),
  };
}

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

function identitySection(n: ExampleNode, role: string): string {
  const id = n.identity;
  const input = concat(utf8(ADDRESS_LABEL), id.publicKey, id.stamp);
  const digest = new Uint8Array(createHash("sha512").update(input).digest());
  // Cross-check the displayed digest against the project's stamp check.
  assert.equal(digest[6], 0);
  assert.equal(digest[7], 0);
  assert.ok(digest[8]! < 16);
  assert.equal(verifyStamp(id.publicKey, id.stamp), id.address);
  assert.equal(addressToBytes(id.address).toHex(), digest.subarray(0, 6).toHex());
  const binding = bindingMessage(id.binding);
  assert.ok(verifyBinding(id.publicKey, id.binding));
  return [
    `#### ${role}: \`${id.address}\` (\`${n.hostname}\`)`,
    "",
    valueTable([
      ["Ed25519 public key", `\`${id.publicKey.toHex()}\``],
      ["stamp", `\`${id.stamp.toHex()}\``],
      ["static X25519 public key", `\`${id.staticKey.publicKey.toHex()}\``],
      ["static X25519 private key", `\`${id.staticKey.privateKey.toHex()}\` (test key)`],
      ["address", `\`${id.address}\``],
      ["fingerprint", `\`${id.fingerprint}\``],
    ]),
    "",
    `Address: SHA-512 over \`"${ADDRESS_LABEL}" ‖ ed25519_pub ‖ stamp\` (56 bytes):`,
    "",
    fieldTable(input, [
      { name: "label", bytes: utf8(ADDRESS_LABEL), note: `\`${ADDRESS_LABEL}\`` },
      { name: "ed25519_pub", bytes: id.publicKey },
      { name: "stamp", bytes: id.stamp },
    ]),
    "",
    hexDump(digest),
    "",
    `\`d[0..6)\` = \`${digest.subarray(0, 6).toHex()}\` is the address; ` +
    `\`d[6]\` = \`${digest.subarray(6, 7).toHex()}\`, \`d[7]\` = \`${
      digest.subarray(7, 8).toHex()
    }\`, \`d[8]\` = \`${digest.subarray(8, 9).toHex()}\` (< 0x10): 20 zero bits.`,
    "",
    `Fingerprint: SHA-256(ed25519_pub) = \`${
      createHash("sha256").update(id.publicKey).digest().toHex()
    }\`; its first 20 bytes in lowercase RFC 4648 base32, groups of 4: \`${
      fingerprint(id.publicKey)
    }\`.`,
    "",
    `Static-key binding: the identity key signs these ${binding.length} bytes:`,
    "",
    fieldTable(binding, [
      { name: "label", bytes: utf8(STATIC_KEY_LABEL), note: `\`${STATIC_KEY_LABEL}\`` },
      { name: "x25519_pub", bytes: id.binding.staticKey },
      { name: "serial", bytes: u32(id.binding.serial), note: `${id.binding.serial}` },
      {
        name: "created",
        bytes: binding.subarray(binding.length - 8),
        note: `${id.binding.created} (${new Date(id.binding.created).toISOString()})`,
      },
    ]),
    "",
    `Signature: \`${id.binding.signature.toHex()}\`.`,
    "",
    `Self-description: the identity key signs these ${n.selfMessage.length} bytes ` +
    `(hostname \`${n.hostname}\`, time ${WORKED.selfTime}):`,
    "",
    fieldTable(n.selfMessage, [
      {
        name: "label",
        bytes: utf8(SELF_DESCRIPTION_LABEL),
        note: `\`${SELF_DESCRIPTION_LABEL}\``,
      },
      { name: "ed25519_pub", bytes: id.publicKey },
      { name: "stamp", bytes: id.stamp },
      { name: "hostname_len", bytes: Uint8Array.of(n.hostname.length) },
      { name: "hostname", bytes: utf8(n.hostname), note: `\`${n.hostname}\`` },
      {
        name: "time",
        bytes: n.selfMessage.subarray(n.selfMessage.length - 8),
        note: `${WORKED.selfTime} (informational)`,
      },
    ]),
    "",
    `Signature: \`${n.payloadFields.selfSignature.toHex()}\`.`,
  ].join("\n");
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

/** Generates the worked handshake and data frames. */
async function workedExamples(): Promise<
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

// ---------------------------------------------------------------------------
// Port 444: a trust request over the worked session, and the accept answering it

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

/** The fixed inputs of the message example (port 1001). */
export const WORKED_DATA = {
  id: "job-1",
  type: "json",
  data: '{"command":"decrypt_payload"}',
  /** The inbox seq the receiver stored the message under. */
  seq: 1,
  /** The file's transfer id (a sender picks a random UUID unless told). */
  fileId: "report-1",
  fileName: "report.txt",
  fileContent: "nightly run: 42 jobs, 0 failed\n",
  /** The seq of the file in the receiver's received files. */
  fileSeq: 1,
} as const;

/** The fixed inputs of the stream examples (§8). */
export const WORKED_STREAM = {
  /** The opener's connection id (a real opener draws a random non-zero u32). */
  connId: 0x5e9a_0001,
  /** The opener's (ephemeral) port and the port it connects to. */
  srcPort: 49_152,
  dstPort: 9_000,
  /** Stream bytes the opener writes once the stream is open. */
  data: "hi",
  /** The ACK of `tests/stream_segment_test.ts`: conn 0x0a0b0c0d, ack 1001, window 65536, SACK [2329, 3657). */
  ack: { connId: 0x0a0b_0c0d, seq: 1, ack: 1001, window: 65_536, sack: [2_329, 3_657] },
} as const;

/** The fixed inputs of the pub/sub examples (§10.4). */
export const WORKED_PUBSUB = {
  pattern: "jobs.*",
  topic: "jobs.done",
  data: "job-1",
  /** The publisher's id for its PUBLISH (echoed by the ACK). */
  publishId: 1,
  /** The broker's clock when it accepted the event (Unix ms). */
  time: 1_796_000_120_000,
} as const;

async function labelBytes(label: string, n: number): Promise<Uint8Array> {
  return (await sha256(utf8(label))).slice(0, n);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function u16(v: number): Uint8Array {
  return Uint8Array.of(v >>> 8, v);
}

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

function trustPacketTable(packet: Uint8Array, what: string): string {
  return fieldTable(packet, [
    { name: "op", bytes: packet.subarray(0, 1), note: "1 = message" },
    { name: "request_id", bytes: packet.subarray(1, 9), note: "chosen by the sender" },
    { name: "message", bytes: packet.subarray(9), note: what },
  ]);
}

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
async function trustExamples(s: WorkedSession): Promise<Record<string, string>> {
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

// ---------------------------------------------------------------------------
// Streams (§8): a segment with SACK, and the opening of a real stream

const FLAG_NAMES: [number, string][] = [
  [SEG_SYN, "SYN"],
  [SEG_ACK, "ACK"],
  [SEG_FIN, "FIN"],
  [SEG_RST, "RST"],
  [SEG_PROBE, "PROBE"],
];

/** Flag names joined by `\|` (a bare `|` would end the table cell). */
function flagNames(flags: number): string {
  return FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, n]) => n).join("\\|");
}

function u64(v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v));
  return b;
}

/** The field table of a stream segment. */
function segmentTable(bytes: Uint8Array, data: string): string {
  const s = decodeSegment(bytes);
  assert.equal(encodeSegment(s).toHex(), bytes.toHex());
  const fields: Field[] = [
    { name: "flags", bytes: bytes.subarray(0, 1), note: flagNames(s.flags) },
    { name: "nsack", bytes: bytes.subarray(1, 2), note: `${s.sack.length}` },
    { name: "conn_id", bytes: bytes.subarray(2, 6), note: hexIndex(s.connId) },
    { name: "seq", bytes: bytes.subarray(6, 14), note: `${s.seq}` },
    { name: "ack", bytes: bytes.subarray(14, 22), note: `${s.ack}` },
    { name: "window", bytes: bytes.subarray(22, 26), note: `${s.window}` },
  ];
  s.sack.forEach((b, i) => {
    fields.push({
      name: `sack[${i}]`,
      bytes: bytes.subarray(26 + 8 * i, 34 + 8 * i),
      note: `[${b.start}, ${b.end}) = ack + ${b.start - s.ack} … ack + ${b.end - s.ack}`,
    });
  });
  if (s.data.length > 0) fields.push({ name: "data", bytes: s.data, note: data });
  return fieldTable(bytes, fields);
}

/** Runs two real muxes on a fake clock and returns every segment between them. */
async function streamTrace(): Promise<{ from: "a" | "b"; packet: StreamPacket }[]> {
  let now = 0;
  const trace: { from: "a" | "b"; packet: StreamPacket }[] = [];
  const toA: StreamPacket[] = [];
  const toB: StreamPacket[] = [];
  const mss = mssFor(MAX_DATAGRAM);
  const a = new StreamMux({
    send: (packet) => trace.push({ from: "a", packet }) && toB.push(packet),
    now: () => now,
    mss,
    random: () => WORKED_STREAM.connId,
  });
  const b = new StreamMux({
    send: (packet) => trace.push({ from: "b", packet }) && toA.push(packet),
    now: () => now,
    mss,
  });
  b.listen(WORKED_STREAM.dstPort, () => {});
  const run = async () => {
    for (let ms = 0; ms < 50; ms++) {
      while (toA.length > 0 || toB.length > 0) {
        const x = toB.shift();
        if (x !== undefined) b.receive(x);
        const y = toA.shift();
        if (y !== undefined) a.receive(y);
      }
      now++;
      a.tick();
      b.tick();
      await Promise.resolve();
    }
  };
  const opening = a.connect(WORKED_STREAM.dstPort, { localPort: WORKED_STREAM.srcPort });
  await run();
  const conn = await opening;
  const wrote = conn.write(utf8(WORKED_STREAM.data));
  await run();
  await wrote;
  a.close("example done");
  b.close("example done");
  return trace;
}

async function streamExamples(): Promise<Record<string, string>> {
  const w = WORKED_STREAM.ack;
  const ack = encodeSegment({
    flags: SEG_ACK,
    connId: w.connId,
    seq: w.seq,
    ack: w.ack,
    window: w.window,
    sack: [{ start: w.sack[0], end: w.sack[1] }],
    data: new Uint8Array(0),
  });
  const trace = await streamTrace();
  const [syn, synAck, ack3, data, dataAck] = trace;
  assert.ok(trace.length === 5 && syn && synAck && ack3 && data && dataAck, "five segments");
  const mss = mssFor(MAX_DATAGRAM);
  let n = 0;
  const step = (t: { from: "a" | "b"; packet: StreamPacket }, what: string, dataNote = "") =>
    [
      `**${++n}. ${t.from === "a" ? "Opener → listener" : "Listener → opener"}** ` +
      `(port ${t.packet.srcPort} → ${t.packet.dstPort}, ${t.packet.payload.length} bytes): ${what}.`,
      "",
      segmentTable(t.packet.payload, dataNote),
      "",
      hexDump(t.packet.payload),
    ].join("\n");
  const mssNote = `MSS ${mss}`;
  return {
    "worked-stream-ack": [
      `A pure ACK for connection ${
        hexIndex(w.connId)
      } that has every byte below offset ${w.ack}, ` +
      `accepts ${w.window} more, and has also received [${w.sack[0]}, ${w.sack[1]}) ` +
      `(the example of \`tests/stream_segment_test.ts\`):`,
      "",
      segmentTable(ack, ""),
      "",
      hexDump(ack),
    ].join("\n"),
    "worked-stream-open": [
      `Two real stream muxes (\`StreamMux\`, MSS ${mss} = \`mssFor(${MAX_DATAGRAM})\`) on a fake ` +
      `clock; the opener's connection id is fixed at ${
        hexIndex(WORKED_STREAM.connId)
      } instead of ` +
      `random. Each segment is the payload of an inner packet of kind \`0x02\` (§4).`,
      "",
      step(
        syn,
        "SYN at offset 0; its data is the largest segment data the opener accepts, its window " +
          "the opener's first receive window (the per-connection reserve, grown on demand)",
        mssNote,
      ),
      "",
      step(synAck, "SYN|ACK: acknowledges the SYN (ack 1) and carries the listener's MSS", mssNote),
      "",
      step(ack3, "ACK: the stream is open at both ends; `connect()` has resolved"),
      "",
      step(
        data,
        `the opener writes \`${WORKED_STREAM.data}\`: data starts at offset 1, after the SYN`,
        `\`${WORKED_STREAM.data}\``,
      ),
      "",
      step(
        dataAck,
        `the listener acknowledges both bytes (ack 3); its window shrank by the ${WORKED_STREAM.data.length} bytes not yet read`,
      ),
    ].join("\n"),
  };
}

// ---------------------------------------------------------------------------
// Port 1001: a message envelope, its MESSAGE frame and receipt; a small file

function exchangeChecked(frame: ExchangeFrame): Uint8Array {
  const bytes = encodeExchangeFrame(frame);
  assert.equal(encodeExchangeFrame(decodeExchangeFrame(bytes)).toHex(), bytes.toHex());
  return bytes;
}

function headerFields(bytes: Uint8Array, kind: FrameKind): Field[] {
  return [
    { name: "kind", bytes: bytes.subarray(0, 1), note: `${kind} = ${frameKindName(kind)}` },
    {
      name: "length",
      bytes: bytes.subarray(1, 5),
      note: `${bytes.length - 5}: body bytes (cap ${frameCap(kind)})`,
    },
  ];
}

function stringFields(name: string, text: string, note = `\`${text}\``): Field[] {
  const b = utf8(text);
  return [
    { name: `${name}_len`, bytes: Uint8Array.of(b.length), note: `${b.length}` },
    { name, bytes: b, note: b.length === 0 ? "" : note },
  ];
}

function exchangeExamples(): Record<string, string> {
  const envelope: Envelope = {
    id: WORKED_DATA.id,
    type: WORKED_DATA.type,
    correlationId: "",
    inReplyTo: "",
    expiresAt: 0,
    meta: {},
    data: utf8(WORKED_DATA.data),
  };
  const env = encodeEnvelope(envelope);
  assert.deepEqual(decodeEnvelope(env), envelope);
  const message = exchangeChecked({ kind: "message", envelope });
  const messageReceipt = exchangeChecked({
    kind: "receipt",
    receipt: {
      subject: "message",
      status: "stored",
      seq: WORKED_DATA.seq,
      id: WORKED_DATA.id,
      detail: "",
    },
  });
  const content = utf8(WORKED_DATA.fileContent);
  const sha = new Uint8Array(createHash("sha256").update(content).digest());
  const begin = exchangeChecked({
    kind: "file_begin",
    file: { id: WORKED_DATA.fileId, name: WORKED_DATA.fileName, size: content.length, sha256: sha },
  });
  const chunk = exchangeChecked({ kind: "file_data", data: content });
  const end = exchangeChecked({ kind: "file_end", cancelled: false });
  const fileReceipt = exchangeChecked({
    kind: "receipt",
    receipt: {
      subject: "file",
      status: "stored",
      seq: WORKED_DATA.fileSeq,
      id: WORKED_DATA.fileId,
      detail: "",
      name: WORKED_DATA.fileName,
      size: content.length,
      sha256: sha,
    },
  });
  const id = utf8(WORKED_DATA.id);
  const data = utf8(WORKED_DATA.data);
  const kinds: FrameKind[] = [
    FRAME_MESSAGE,
    FRAME_FILE_BEGIN,
    FRAME_FILE_DATA,
    FRAME_FILE_END,
    FRAME_RECEIPT,
  ];
  const receiptHead = (r: Uint8Array, subject: string, seq: number, rid: string): Field[] => [
    ...headerFields(r, FRAME_RECEIPT),
    { name: "status", bytes: r.subarray(5, 6), note: "0 = stored" },
    { name: "subject", bytes: r.subarray(6, 7), note: subject },
    { name: "seq", bytes: u64(seq), note: `${seq}` },
    ...stringFields("id", rid),
    ...stringFields("detail", ""),
  ];
  return {
    "exchange-frame-caps": [
      "| kind | name | largest body (bytes) |",
      "|---:|---|---:|",
      ...kinds.map((k) => `| ${k} | ${frameKindName(k)} | ${frameCap(k)} |`),
    ].join("\n"),
    "worked-data-envelope": [
      `\`pilot send-message beta --data '${WORKED_DATA.data}' --type ${WORKED_DATA.type} ` +
      `--id ${WORKED_DATA.id}\` builds this envelope (${env.length} bytes):`,
      "",
      fieldTable(env, [
        { name: "version", bytes: env.subarray(0, 1), note: "1" },
        { name: "type", bytes: env.subarray(1, 2), note: `${env[1]} = ${WORKED_DATA.type}` },
        { name: "id_len", bytes: Uint8Array.of(id.length), note: `${id.length}` },
        { name: "id", bytes: id, note: `\`${WORKED_DATA.id}\`` },
        { name: "correlation_id_len", bytes: Uint8Array.of(0), note: "0 = none" },
        { name: "correlation_id", bytes: new Uint8Array(0), note: "" },
        { name: "in_reply_to_len", bytes: Uint8Array.of(0), note: "0 = none" },
        { name: "in_reply_to", bytes: new Uint8Array(0), note: "" },
        { name: "expires_at", bytes: new Uint8Array(8), note: "0 = none" },
        { name: "meta_count", bytes: Uint8Array.of(0), note: "0" },
        { name: "data_len", bytes: u32(data.length), note: `${data.length}` },
        { name: "data", bytes: data, note: `\`${WORKED_DATA.data}\`` },
      ]),
      "",
      hexDump(env),
    ].join("\n"),
    "worked-data-message": [
      `On the sender's port-${PORT_MESSAGES} stream it travels as one MESSAGE frame ` +
      `(${message.length} bytes):`,
      "",
      fieldTable(message, [
        ...headerFields(message, FRAME_MESSAGE),
        { name: "body", bytes: env, note: "the envelope above" },
      ]),
      "",
      hexDump(message),
      "",
      `The receiver appends the message to its inbox log, fsyncs, and only then writes the ` +
      `RECEIPT frame (${messageReceipt.length} bytes) on the same stream:`,
      "",
      fieldTable(
        messageReceipt,
        receiptHead(messageReceipt, "1 = message", WORKED_DATA.seq, WORKED_DATA.id).map((f) =>
          f.name === "seq" ? { ...f, note: `${WORKED_DATA.seq}: its inbox seq` } : f
        ),
      ),
      "",
      hexDump(messageReceipt),
    ].join("\n"),
    "worked-data-file": [
      `\`pilot send-file beta ${WORKED_DATA.fileName}\` with the ${content.length}-byte content ` +
      `\`${JSON.stringify(WORKED_DATA.fileContent).slice(1, -1)}\`, transfer id ` +
      `\`${WORKED_DATA.fileId}\`. FILE_BEGIN (${begin.length} bytes):`,
      "",
      fieldTable(begin, [
        ...headerFields(begin, FRAME_FILE_BEGIN),
        ...stringFields("id", WORKED_DATA.fileId),
        ...stringFields("name", WORKED_DATA.fileName, `\`${WORKED_DATA.fileName}\` (untrusted)`),
        { name: "size", bytes: u64(content.length), note: `${content.length}` },
        { name: "sha256", bytes: sha, note: "SHA-256 of the content" },
      ]),
      "",
      hexDump(begin),
      "",
      `The content in one FILE_DATA frame (${chunk.length} bytes; a larger file takes as many ` +
      `frames of up to ${frameCap(FRAME_FILE_DATA)} bytes as it needs), then FILE_END ` +
      `(${end.length} bytes):`,
      "",
      fieldTable(chunk, [
        ...headerFields(chunk, FRAME_FILE_DATA),
        { name: "data", bytes: content, note: "the content" },
      ]),
      "",
      hexDump(chunk),
      "",
      fieldTable(end, [
        ...headerFields(end, FRAME_FILE_END),
        { name: "outcome", bytes: end.subarray(5), note: "0 = complete" },
      ]),
      "",
      hexDump(end),
      "",
      `The receiver checks size and SHA-256, fsyncs the file under its stored name, appends ` +
      `the index record, and only then answers (${fileReceipt.length} bytes):`,
      "",
      fieldTable(fileReceipt, [
        ...receiptHead(fileReceipt, "2 = file", WORKED_DATA.fileSeq, WORKED_DATA.fileId).map((
          f,
        ) =>
          f.name === "seq" ? { ...f, note: `${WORKED_DATA.fileSeq}: its received-files seq` } : f
        ),
        ...stringFields("name", WORKED_DATA.fileName, `stored as \`${WORKED_DATA.fileName}\``),
        { name: "size", bytes: u64(content.length), note: `${content.length}` },
        { name: "sha256", bytes: sha, note: "SHA-256 of what it stored" },
      ]),
      "",
      hexDump(fileReceipt),
    ].join("\n"),
  };
}

// ---------------------------------------------------------------------------
// Port 1002: a subscription, a publish and the event

function pubsubChecked(frame: PubSubFrame): Uint8Array {
  const bytes = encodePubSubFrame(frame);
  assert.equal(encodePubSubFrame(decodePubSubFrame(bytes)).toHex(), bytes.toHex());
  return bytes;
}

function pubsubHeader(bytes: Uint8Array, name: string): Field[] {
  return [
    { name: "kind", bytes: bytes.subarray(0, 1), note: `${bytes[0]} = ${name}` },
    { name: "length", bytes: bytes.subarray(1, 5), note: `${bytes.length - 5}: body bytes` },
  ];
}

/** The example's frames, in the order they travel. */
export function pubsubFrames(publisher: Identity): Record<
  "subscribe" | "subscribed" | "publish" | "published" | "event",
  PubSubFrame
> {
  const w = WORKED_PUBSUB;
  return {
    subscribe: { kind: "subscribe", pattern: w.pattern },
    subscribed: { kind: "ack", id: 0, seq: 0, delivered: 0, dropped: 0 },
    publish: { kind: "publish", id: w.publishId, topic: w.topic, data: utf8(w.data) },
    published: { kind: "ack", id: w.publishId, seq: 1, delivered: 1, dropped: 0 },
    event: {
      kind: "event",
      seq: 1,
      time: w.time,
      from: publisher.address,
      fromKey: publisher.publicKey,
      topic: w.topic,
      data: utf8(w.data),
    },
  };
}

function pubsubExamples(): Record<string, string> {
  const w = WORKED_PUBSUB;
  const alice = fixtureIdentity(WORKED.initiatorFixture);
  const bob = fixtureIdentity(WORKED.responderFixture);
  const f = pubsubFrames(alice);
  const sub = pubsubChecked(f.subscribe);
  const subAck = pubsubChecked(f.subscribed);
  const pub = pubsubChecked(f.publish);
  const pubAck = pubsubChecked(f.published);
  const event = pubsubChecked(f.event);
  const topic = utf8(w.topic);
  const ackTableOf = (b: Uint8Array, what: string, seqNote: string, delivered: string) =>
    fieldTable(b, [
      ...pubsubHeader(b, "ACK"),
      { name: "id", bytes: b.subarray(5, 9), note: what },
      { name: "seq", bytes: b.subarray(9, 17), note: seqNote },
      { name: "delivered", bytes: b.subarray(17, 21), note: delivered },
      { name: "dropped", bytes: b.subarray(21, 25), note: "0" },
    ]);
  return {
    "worked-pubsub": [
      `\`${alice.address}\` subscribes at \`${bob.address}\`'s broker with the pattern ` +
      `\`${w.pattern}\`: the first frame of a fresh stream to port ${PORT_PUBSUB} ` +
      `(${sub.length} bytes):`,
      "",
      fieldTable(sub, [
        ...pubsubHeader(sub, "SUBSCRIBE"),
        { name: "pattern", bytes: utf8(w.pattern), note: `\`${w.pattern}\`` },
      ]),
      "",
      hexDump(sub),
      "",
      `The broker confirms (${subAck.length} bytes); no event had been published yet:`,
      "",
      ackTableOf(subAck, "0 = a subscription", "0: events after this one are delivered", "0"),
      "",
      hexDump(subAck),
      "",
      `On another stream to the same broker, \`${alice.address}\` publishes ` +
      `\`${w.data}\` on \`${w.topic}\` (${pub.length} bytes):`,
      "",
      fieldTable(pub, [
        ...pubsubHeader(pub, "PUBLISH"),
        { name: "id", bytes: u32(w.publishId), note: `${w.publishId}: echoed by the ACK` },
        { name: "topic_len", bytes: Uint8Array.of(topic.length), note: `${topic.length}` },
        { name: "topic", bytes: topic, note: `\`${w.topic}\`` },
        { name: "data", bytes: utf8(w.data), note: `\`${w.data}\`` },
      ]),
      "",
      hexDump(pub),
      "",
      `The broker fans it out and answers the publisher (${pubAck.length} bytes):`,
      "",
      ackTableOf(
        pubAck,
        `${w.publishId}: the PUBLISH's id`,
        "1: the event's seq",
        "1 subscription took it",
      ),
      "",
      hexDump(pubAck),
      "",
      `The subscriber's stream carries the EVENT (${event.length} bytes), stamped with the ` +
      `broker's clock and the publisher's identity:`,
      "",
      fieldTable(event, [
        ...pubsubHeader(event, "EVENT"),
        { name: "seq", bytes: u64(1), note: "1" },
        { name: "time", bytes: u64(w.time), note: `${w.time} (${iso(w.time)})` },
        {
          name: "from_address",
          bytes: addressToBytes(alice.address),
          note: `\`${alice.address}\``,
        },
        { name: "from_key", bytes: alice.publicKey, note: "the publisher's Ed25519 key" },
        { name: "topic_len", bytes: Uint8Array.of(topic.length), note: `${topic.length}` },
        { name: "topic", bytes: topic, note: `\`${w.topic}\`` },
        { name: "data", bytes: utf8(w.data), note: `\`${w.data}\`` },
      ]),
      "",
      hexDump(event),
    ].join("\n"),
  };
}

function identityFileExample(): Record<string, string> {
  const text = encodeIdentityFile(fixtureIdentity(WORKED.initiatorFixture));
  return { "identity-file": "```json\n" + text + "```" };
}

/** Every generated region, by id, in document order. */
export async function generateExamples(): Promise<Record<string, string>> {
  const worked = await workedExamples();
  return {
    ...identityFileExample(),
    ...layoutExamples(),
    ...worked.parts,
    ...(await trustExamples(worked.session)),
    ...(await streamExamples()),
    ...exchangeExamples(),
    ...pubsubExamples(),
  };
}

// ---------------------------------------------------------------------------
// Regions in the document

const REGION = /<!-- example: ([a-z0-9-]+) -->\n(?:([\s\S]*?)\n)??<!-- \/example -->/g;

/** The regions of a document, by id; throws on a duplicate id. */
export function readRegions(doc: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of doc.matchAll(REGION)) {
    const id = m[1]!;
    if (out.has(id)) throw new Error(`Region "${id}" appears twice in the document`);
    out.set(id, m[2] ?? "");
  }
  return out;
}

/** The document with every region (markers included) removed. */
export function stripRegions(doc: string): string {
  return doc.replace(REGION, "");
}

/** Replaces every region of `doc` with the generated text; throws when one is missing. */
export function writeRegions(doc: string, examples: Record<string, string>): string {
  const present = readRegions(doc);
  for (const id of Object.keys(examples)) {
    if (!present.has(id)) throw new Error(`Region "${id}" is missing from the document`);
  }
  return doc.replace(REGION, (_whole, id: string) => {
    const body = examples[id];
    if (body === undefined) throw new Error(`Region "${id}" is not generated by this script`);
    return `<!-- example: ${id} -->\n${body}\n<!-- /example -->`;
  });
}

/** All regions as one Markdown text, each with its markers, ready to paste. */
export function renderRegions(examples: Record<string, string>): string {
  return Object.entries(examples)
    .map(([id, body]) => `<!-- example: ${id} -->\n${body}\n<!-- /example -->\n`)
    .join("\n");
}

if (import.meta.main) {
  const examples = await generateExamples();
  if (Deno.args.includes("--write")) {
    const doc = await Deno.readTextFile(PROTOCOL_DOC);
    await Deno.writeTextFile(PROTOCOL_DOC, writeRegions(doc, examples));
    console.error(`updated ${PROTOCOL_DOC.pathname}`);
  } else {
    console.log(renderRegions(examples));
  }
}
