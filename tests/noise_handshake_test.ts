/**
 * Noise_XX between two in-process HandshakeStates with random keys: the
 * happy path, and every way a message may be damaged.
 */

import assert from "node:assert/strict";
import { generateX25519, type X25519KeyPair } from "../src/session/crypto.ts";
import { CipherState, HandshakeState, NoiseError } from "../src/session/noise.ts";
import { PROLOGUE } from "../src/constants.ts";
import { utf8 } from "../src/bytes.ts";

const prologue = utf8(PROLOGUE);

interface Pair {
  initiator: HandshakeState;
  responder: HandshakeState;
  initiatorStatic: X25519KeyPair;
  responderStatic: X25519KeyPair;
}

async function pair(responderPrologue = prologue): Promise<Pair> {
  const initiatorStatic = await generateX25519();
  const responderStatic = await generateX25519();
  return {
    initiator: await HandshakeState.create({
      pattern: "XX",
      initiator: true,
      prologue,
      s: initiatorStatic,
    }),
    responder: await HandshakeState.create({
      pattern: "XX",
      initiator: false,
      prologue: responderPrologue,
      s: responderStatic,
    }),
    initiatorStatic,
    responderStatic,
  };
}

/** Runs the handshake up to (not including) the reading of message `upTo` and returns it. */
async function messageBefore({ initiator, responder }: Pair, upTo: 1 | 2 | 3): Promise<Uint8Array> {
  const msg1 = await initiator.writeMessage(utf8("hello"));
  if (upTo === 1) return msg1;
  await responder.readMessage(msg1);
  const msg2 = await responder.writeMessage(utf8("hi"));
  if (upTo === 2) return msg2;
  await initiator.readMessage(msg2);
  return await initiator.writeMessage(utf8("ready"));
}

/** The side that reads message `n`. */
function reader(p: Pair, n: 1 | 2 | 3): HandshakeState {
  return n === 2 ? p.initiator : p.responder;
}

async function assertUnusable(hs: HandshakeState): Promise<void> {
  await assert.rejects(hs.writeMessage(), NoiseError);
  await assert.rejects(hs.readMessage(new Uint8Array(96)), NoiseError);
  await assert.rejects(hs.split(), NoiseError);
  assert.throws(() => hs.handshakeHash, NoiseError);
  assert.equal(hs.isComplete, false);
}

Deno.test("XX handshake: both sides agree on hash, keys and each other's static key", async () => {
  const p = await pair();
  const { initiator, responder } = p;
  assert.equal(initiator.protocolName, "Noise_XX_25519_AESGCM_SHA256");

  const msg1 = await initiator.writeMessage(utf8("hello"));
  assert.equal(new TextDecoder().decode(await responder.readMessage(msg1)), "hello");
  assert.equal(
    responder.remoteStatic?.toHex(),
    undefined,
    "XX hides the initiator until message 3",
  );
  const msg2 = await responder.writeMessage(utf8("hi"));
  assert.equal(new TextDecoder().decode(await initiator.readMessage(msg2)), "hi");
  assert.equal(initiator.remoteStatic?.toHex(), p.responderStatic.publicKey.toHex());
  assert.equal(initiator.isComplete, false);
  const msg3 = await initiator.writeMessage(utf8("ready"));
  assert.equal(new TextDecoder().decode(await responder.readMessage(msg3)), "ready");
  assert.equal(responder.remoteStatic?.toHex(), p.initiatorStatic.publicKey.toHex());

  assert.deepEqual([msg1.length, msg2.length, msg3.length], [
    32 + 5,
    32 + 48 + 2 + 16,
    48 + 5 + 16,
  ]);
  assert.ok(initiator.isComplete && responder.isComplete);
  assert.equal(initiator.messageIndex, 3);
  assert.equal(responder.messageIndex, 3);
  assert.equal(initiator.handshakeHash.toHex(), responder.handshakeHash.toHex());

  const a = await initiator.split();
  const b = await responder.split();
  assert.equal(a.initiatorToResponder.toHex(), b.initiatorToResponder.toHex());
  assert.equal(a.responderToInitiator.toHex(), b.responderToInitiator.toHex());
  assert.notEqual(a.initiatorToResponder.toHex(), a.responderToInitiator.toHex());
  assert.equal(a.initiatorToResponder.length, 32);

  const send = await CipherState.create(a.initiatorToResponder);
  const receive = await CipherState.create(b.initiatorToResponder);
  const ad = utf8("header");
  for (const text of ["one", "two"]) {
    const sealed = await send.encryptWithAd(ad, utf8(text));
    assert.equal(new TextDecoder().decode(await receive.decryptWithAd(ad, sealed)), text);
  }
  await assert.rejects(initiator.writeMessage(), NoiseError, "no fourth message");
});

Deno.test("XX handshake: two runs with the same static keys produce different keys", async () => {
  const runs = [];
  for (let i = 0; i < 2; i++) {
    const p = await pair();
    await reader(p, 3).readMessage(await messageBefore(p, 3));
    runs.push((await p.initiator.split()).initiatorToResponder.toHex());
  }
  assert.notEqual(runs[0], runs[1]);
});

for (const n of [2, 3] as const) {
  Deno.test(`readMessage() throws NoiseError when any byte of message ${n} is flipped`, async () => {
    const length = (await messageBefore(await pair(), n)).length;
    for (let i = 0; i < length; i++) {
      const p = await pair();
      const message = await messageBefore(p, n);
      message[i]! ^= 0x01;
      await assert.rejects(reader(p, n).readMessage(message), NoiseError, `byte ${i}`);
      await assertUnusable(reader(p, n));
    }
  });

  Deno.test(`readMessage() throws NoiseError for every truncation of message ${n}`, async () => {
    const length = (await messageBefore(await pair(), n)).length;
    for (let cut = 0; cut < length; cut++) {
      const p = await pair();
      const message = await messageBefore(p, n);
      await assert.rejects(
        reader(p, n).readMessage(message.subarray(0, cut)),
        NoiseError,
        `${cut} of ${length} bytes`,
      );
      await assertUnusable(reader(p, n));
    }
  });

  Deno.test(`readMessage() throws NoiseError when message ${n} has a trailing byte`, async () => {
    const p = await pair();
    const message = await messageBefore(p, n);
    await assert.rejects(
      reader(p, n).readMessage(new Uint8Array([...message, 0])),
      NoiseError,
    );
  });
}

Deno.test("readMessage() throws NoiseError when message 1 is shorter than an ephemeral key", async () => {
  for (let cut = 0; cut < 32; cut++) {
    const p = await pair();
    const message = await messageBefore(p, 1);
    await assert.rejects(p.responder.readMessage(message.subarray(0, cut)), NoiseError);
  }
});

Deno.test("a tampered message 1 makes the initiator refuse message 2", async () => {
  const p = await pair();
  const msg1 = await p.initiator.writeMessage();
  msg1[0]! ^= 0x01;
  await p.responder.readMessage(msg1);
  await assert.rejects(p.initiator.readMessage(await p.responder.writeMessage()), NoiseError);
});

Deno.test("a different prologue makes the initiator refuse message 2", async () => {
  const p = await pair(utf8("pilot/2"));
  await assert.rejects(p.initiator.readMessage(await messageBefore(p, 2)), NoiseError);
  await assertUnusable(p.initiator);
});

Deno.test("a low-order ephemeral key in message 1 makes the responder throw NoiseError", async () => {
  const p = await pair();
  await p.responder.readMessage(new Uint8Array(32));
  await assert.rejects(p.responder.writeMessage(), NoiseError);
  await assertUnusable(p.responder);
});

Deno.test("HandshakeState refuses calls out of turn and leaves the state unusable", async () => {
  const p = await pair();
  await assert.rejects(p.responder.writeMessage(), NoiseError);
  await assertUnusable(p.responder);
  const q = await pair();
  await assert.rejects(q.initiator.readMessage(new Uint8Array(32)), NoiseError);
  await assertUnusable(q.initiator);
});

Deno.test("HandshakeState refuses a second message while one is in progress", async () => {
  const p = await pair();
  const first = p.initiator.writeMessage();
  await assert.rejects(p.initiator.writeMessage(), NoiseError);
  await first;
  await assertUnusable(p.initiator);
});

Deno.test("handshakeHash and split() are unavailable before the handshake completes", async () => {
  const p = await pair();
  await p.responder.readMessage(await messageBefore(p, 1));
  assert.throws(() => p.responder.handshakeHash, NoiseError);
  await assert.rejects(p.responder.split(), NoiseError);
});

Deno.test("HandshakeState.create() refuses keys the pattern does not fit", async () => {
  const s = await generateX25519();
  await assert.rejects(
    HandshakeState.create({ pattern: "XX", initiator: true, prologue }),
    TypeError,
  );
  await assert.rejects(
    HandshakeState.create({ pattern: "XX", initiator: true, prologue, s, rs: s.publicKey }),
    TypeError,
  );
  await assert.rejects(
    HandshakeState.create({ pattern: "IK", initiator: true, prologue, s }),
    TypeError,
  );
  await assert.rejects(
    HandshakeState.create({
      pattern: "XX",
      initiator: true,
      prologue,
      s: { privateKey: s.privateKey, publicKey: new Uint8Array(31) },
    }),
    TypeError,
  );
  await assert.rejects(
    // @ts-expect-error: patterns outside the table are refused at run time too.
    HandshakeState.create({ pattern: "XXpsk3", initiator: true, prologue, s }),
    TypeError,
  );
});

Deno.test("CipherState.decryptWithAd() does not advance the nonce when authentication fails", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const send = await CipherState.create(key);
  const receive = await CipherState.create(key);
  const ad = new Uint8Array(0);
  const sealed = await send.encryptWithAd(ad, utf8("data"));
  const bad = sealed.slice();
  bad[bad.length - 1]! ^= 0x80;
  await assert.rejects(receive.decryptWithAd(ad, bad), NoiseError);
  await assert.rejects(receive.decryptWithAd(ad, sealed.subarray(0, 15)), NoiseError);
  assert.equal(receive.nonce, 0);
  assert.equal(new TextDecoder().decode(await receive.decryptWithAd(ad, sealed)), "data");
  assert.equal(receive.nonce, 1);
});

Deno.test("CipherState refuses to encrypt once its nonce is exhausted instead of wrapping", async () => {
  const cipher = await CipherState.create(new Uint8Array(32));
  cipher.setNonce(Number.MAX_SAFE_INTEGER - 1);
  await cipher.encryptWithAd(new Uint8Array(0), new Uint8Array(0));
  await assert.rejects(cipher.encryptWithAd(new Uint8Array(0), new Uint8Array(0)), NoiseError);
  assert.equal(cipher.nonce, Number.MAX_SAFE_INTEGER);
});
