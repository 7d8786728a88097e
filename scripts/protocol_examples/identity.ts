/**
 * Identity examples (§2): the identity file (§2.7), and for each node of the
 * worked handshake its address derivation, fingerprint, static-key binding
 * and self-description (§6.1).
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fixtures from "../../tests/fixtures/identities.json" with { type: "json" };
import { concat, utf8 } from "../../src/bytes.ts";
import { ADDRESS_LABEL, STATIC_KEY_LABEL } from "../../src/constants.ts";
import { addressToBytes, verifyStamp } from "../../src/identity/address.ts";
import { fingerprint } from "../../src/identity/fingerprint.ts";
import {
  decodeIdentityFile,
  encodeIdentityFile,
  type Identity,
} from "../../src/identity/identity.ts";
import {
  SELF_DESCRIPTION_LABEL,
  selfDescriptionMessage,
  signSelfDescription,
  verifySelfDescription,
} from "../../src/identity/self_description.ts";
import { bindingMessage, verifyBinding } from "../../src/identity/static_key.ts";
import { encodeHandshakePayload, type HandshakePayload } from "../../src/wire/handshake_payload.ts";
import { fieldTable, hexDump, valueTable } from "./_tables.ts";
import { u32 } from "./_values.ts";
import { WORKED } from "./worked.ts";

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

/** The §6.1 section of one node: its keys, address, fingerprint, binding and self-description. */
export function identitySection(n: ExampleNode, role: string): string {
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

/** The identity file region (§2.7): test identity 0 as `identity.json` holds it. */
export function identityFileExamples(): Record<string, string> {
  const text = encodeIdentityFile(fixtureIdentity(WORKED.initiatorFixture));
  return { "identity-file": "```json\n" + text + "```" };
}
