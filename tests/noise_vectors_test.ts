/**
 * Runs the cacophony Noise vectors for `*_25519_AESGCM_SHA256` through
 * HandshakeState: every message byte for byte, the handshake hash, and the
 * transport messages after Split.
 */

import assert from "node:assert/strict";
import { type X25519KeyPair, x25519PublicKey } from "../src/session/crypto.ts";
import {
  CipherState,
  HandshakeState,
  ONE_WAY_PATTERNS,
  PATTERN_NAMES,
  type PatternName,
} from "../src/session/noise.ts";

/** The shared vectors when that folder exists, else the project's own copy. */
async function vectorsDir(): Promise<URL> {
  const shared = new URL("../../shared/vectors/", import.meta.url);
  try {
    if ((await Deno.stat(shared)).isDirectory) return shared;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return new URL("./vectors/", import.meta.url);
}

interface NoiseVector {
  protocol_name: string;
  init_prologue: string;
  init_static?: string;
  init_ephemeral: string;
  init_remote_static?: string;
  init_psks?: string[];
  resp_prologue: string;
  resp_static?: string;
  resp_ephemeral?: string;
  resp_remote_static?: string;
  resp_psks?: string[];
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

const hex = (s: string): Uint8Array => Uint8Array.fromHex(s);

async function keyPair(privateHex: string | undefined): Promise<X25519KeyPair | undefined> {
  if (privateHex === undefined) return undefined;
  const privateKey = hex(privateHex);
  return { privateKey, publicKey: await x25519PublicKey(privateKey) };
}

/** The pattern of a vector if this project implements it, else undefined. */
function implementedPattern(protocolName: string): PatternName | undefined {
  const match = /^Noise_([A-Za-z0-9]+)_25519_AESGCM_SHA256$/.exec(protocolName);
  const name = match?.[1];
  return PATTERN_NAMES.find((p) => p === name);
}

async function side(
  v: NoiseVector,
  pattern: PatternName,
  initiator: boolean,
): Promise<HandshakeState> {
  const [prologue, s, e, rs] = initiator
    ? [v.init_prologue, v.init_static, v.init_ephemeral, v.init_remote_static]
    : [v.resp_prologue, v.resp_static, v.resp_ephemeral, v.resp_remote_static];
  const sPair = await keyPair(s);
  const ePair = await keyPair(e);
  return await HandshakeState.create({
    pattern,
    initiator,
    prologue: hex(prologue),
    ...(sPair && { s: sPair }),
    ...(ePair && { e: ePair }),
    ...(rs !== undefined && { rs: hex(rs) }),
  });
}

async function runVector(v: NoiseVector, pattern: PatternName): Promise<void> {
  const initiator = await side(v, pattern, true);
  const responder = await side(v, pattern, false);
  let transport: { init: [CipherState, CipherState]; resp: [CipherState, CipherState] } | undefined;

  // After a one-way pattern's single message, only the initiator sends.
  const oneWay = (ONE_WAY_PATTERNS as readonly string[]).includes(pattern);
  for (const [i, m] of v.messages.entries()) {
    const fromInitiator = oneWay || i % 2 === 0;
    const payload = hex(m.payload);
    const expected = hex(m.ciphertext);
    if (transport === undefined) {
      const [sender, receiver] = fromInitiator ? [initiator, responder] : [responder, initiator];
      const written = await sender.writeMessage(payload);
      assert.equal(written.toHex(), m.ciphertext, `message ${i} ciphertext`);
      assert.equal(
        (await receiver.readMessage(written)).toHex(),
        m.payload,
        `message ${i} payload`,
      );
      if (initiator.isComplete) {
        assert.ok(responder.isComplete, "both sides complete together");
        assert.equal(initiator.handshakeHash.toHex(), v.handshake_hash, "initiator's hash");
        assert.equal(responder.handshakeHash.toHex(), v.handshake_hash, "responder's hash");
        const a = await initiator.split();
        const b = await responder.split();
        transport = {
          init: [
            await CipherState.create(a.initiatorToResponder),
            await CipherState.create(a.responderToInitiator),
          ],
          resp: [
            await CipherState.create(b.responderToInitiator),
            await CipherState.create(b.initiatorToResponder),
          ],
        };
      }
    } else {
      // [0] of each side encrypts what that side sends, [1] decrypts what it receives.
      const [send, receive] = fromInitiator
        ? [transport.init[0], transport.resp[1]]
        : [transport.resp[0], transport.init[1]];
      const ad = new Uint8Array(0);
      const written = await send.encryptWithAd(ad, payload);
      assert.equal(written.toHex(), expected.toHex(), `transport message ${i}`);
      assert.equal((await receive.decryptWithAd(ad, written)).toHex(), m.payload);
    }
  }
  assert.ok(transport !== undefined, "the handshake completed within the vector's messages");
}

async function loadVectors(): Promise<NoiseVector[]> {
  const dir = await vectorsDir();
  const vectors: NoiseVector[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !entry.name.endsWith(".json")) continue;
    const json = JSON.parse(await Deno.readTextFile(new URL(entry.name, dir)));
    if (Array.isArray(json?.vectors)) vectors.push(...json.vectors as NoiseVector[]);
  }
  return vectors;
}

Deno.test("HandshakeState reproduces every Noise vector of the patterns it implements", async (t) => {
  const vectors = await loadVectors();
  const ran: string[] = [];
  const skipped: string[] = [];
  for (const v of vectors) {
    const pattern = implementedPattern(v.protocol_name);
    // psk and fallback patterns are outside what Pilot needs.
    if (pattern === undefined || v.init_psks !== undefined || v.resp_psks !== undefined) {
      skipped.push(v.protocol_name);
      continue;
    }
    const passed = await t.step(v.protocol_name, () => runVector(v, pattern));
    assert.ok(passed, `${v.protocol_name} passed`);
    ran.push(v.protocol_name);
  }
  console.log(`Noise vectors: ${ran.length} run, ${skipped.length} not implemented`);
  assert.ok(ran.includes("Noise_XX_25519_AESGCM_SHA256"), "the XX vector ran");
  assert.ok(ran.length >= 12, `at least the 12 fundamental patterns ran, got ${ran.length}`);
  assert.equal(ran.length + skipped.length, vectors.length);
});
