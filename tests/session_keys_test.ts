/**
 * Transport keys are imported into WebCrypto on first use and released
 * after SESSION_KEY_IDLE_MS without use: an idle session holds its keys as
 * bytes, and its next frame imports them again and goes through.
 */
import assert from "node:assert/strict";
import { FakeNetwork, IDS, sessionPair } from "./_session_helpers.ts";
import { SESSION_KEY_IDLE_MS } from "../src/constants.ts";
import { Session } from "../src/session/session.ts";
import { randomBytes } from "../src/session/crypto.ts";
import { type DataFrame, decodeFrame } from "../src/wire/frames.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";

function dataFrame(bytes: Uint8Array): DataFrame {
  const frame = decodeFrame(bytes);
  assert.equal(frame.type, "data");
  return frame as DataFrame;
}

async function carry(from: Session, to: Session, text: string, now: number): Promise<string> {
  const frame = await from.sealInOrder(new TextEncoder().encode(text), now);
  assert.ok(frame !== null);
  const r = await to.openInOrder(dataFrame(frame), now);
  assert.ok(r.ok, JSON.stringify(r));
  return new TextDecoder().decode(r.plaintext);
}

Deno.test("a session imports each transport key on first use and releases it only after SESSION_KEY_IDLE_MS unused", async () => {
  const [a, b] = sessionPair();
  assert.equal(a.importedKeys, 0, "nothing imported before the first frame");
  assert.equal(await carry(a, b, "one", 0), "one");
  assert.equal(a.importedKeys, 1, "a sealed: its send key");
  assert.equal(b.importedKeys, 1, "b opened: its receive key");
  assert.equal(a.releaseIdleKeys(SESSION_KEY_IDLE_MS - 1, SESSION_KEY_IDLE_MS), 0);
  assert.equal(await carry(b, a, "back", 5_000), "back");
  assert.equal(a.importedKeys, 2);
  // a's send key was last used at 0, its receive key at 5 s.
  assert.equal(a.releaseIdleKeys(SESSION_KEY_IDLE_MS, SESSION_KEY_IDLE_MS), 1);
  assert.equal(a.importedKeys, 1);
  assert.equal(a.releaseIdleKeys(5_000 + SESSION_KEY_IDLE_MS, SESSION_KEY_IDLE_MS), 1);
  assert.equal(a.importedKeys, 0);
  // Released keys import again: frames still go both ways, counters go on.
  assert.equal(await carry(a, b, "two", 20_000), "two");
  assert.equal(await carry(b, a, "again", 20_000), "again");
  assert.equal(a.sent, 2);
  assert.equal(a.importedKeys, 2);
});

Deno.test("a session keeps its own copy of the keys and hash it was made with, and refuses a key of the wrong length", async () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const hash = randomBytes(32);
  const hashCopy = hash.slice();
  const init = {
    peer: {} as PeerIdentity,
    endpoint: { hostname: "127.0.0.1", port: 1 },
    handshakeHash: hash,
    now: 0,
    localIndex: 1,
    remoteIndex: 2,
    initiator: true,
  };
  const a = Session.create({ ...init, sendKey: k1, receiveKey: k2 });
  const b = Session.create({
    ...init,
    initiator: false,
    sendKey: k2.slice(),
    receiveKey: k1.slice(),
  });
  // The caller zeroes its arrays (as a handshake may): the session is unchanged.
  k1.fill(0);
  k2.fill(0);
  hash.fill(0);
  assert.deepEqual(a.handshakeHash, hashCopy);
  assert.equal(await carry(a, b, "still", 0), "still");
  assert.equal(await carry(b, a, "both ways", 0), "both ways");
  assert.throws(
    () => Session.create({ ...init, sendKey: randomBytes(31), receiveKey: randomBytes(32) }),
    /Invalid transport key: expected 32 bytes, got 31/,
  );
});

Deno.test("a released key under frames in flight: every frame is sealed and opened, in order", async () => {
  const [a, b] = sessionPair();
  const texts = Array.from({ length: 50 }, (_, i) => `m${i}`);
  const frames = texts.map((t, i) => {
    // Release in the middle of the burst: calls under way keep their import.
    if (i === 25) a.releaseIdleKeys(Infinity, 0);
    return a.sealInOrder(new TextEncoder().encode(t), 0);
  });
  const opened: string[] = [];
  for (const f of await Promise.all(frames)) {
    const r = await b.openInOrder(dataFrame(f!), 0);
    assert.ok(r.ok);
    opened.push(new TextDecoder().decode(r.plaintext));
  }
  assert.deepEqual(opened, texts);
});

Deno.test("the manager's tick releases a key idle past SESSION_KEY_IDLE_MS, and the next message still arrives", async () => {
  const net = new FakeNetwork();
  const a = net.node(IDS[0]!);
  const b = net.node(IDS[1]!);
  await net.connect(a, b);
  await net.pump();
  assert.equal(await a.send(b, "hello"), true);
  await net.pump();
  const session = b.delivered[0]!.session;
  assert.equal(session.importedKeys, 2, "B opened hello and sent since");
  // B hears nothing from A for SESSION_KEY_IDLE_MS: its receive key goes.
  for (let t = 0; t <= SESSION_KEY_IDLE_MS; t += 500) {
    await net.advance(500, a, b);
    await net.pump();
  }
  assert.equal(session.importedKeys, 1, "the receive key was released");
  assert.equal(await a.send(b, "later"), true);
  await net.pump();
  assert.deepEqual(b.texts(), ["hello", "later"]);
  assert.equal(session.importedKeys, 2, "imported again to open it");
});
