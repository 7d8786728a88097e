/**
 * docs/PROTOCOL.md cannot drift from the code: its generated regions must
 * equal what scripts/protocol_examples.ts produces now, every hex dump in it
 * must sit inside such a region, and the real handshake code must accept
 * the documented bytes.
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
  writeRegions,
} from "../scripts/protocol_examples.ts";
import { MSG1_SIZE } from "../src/constants.ts";
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
