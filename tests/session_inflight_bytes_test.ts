/**
 * Decryptions in flight are bounded by bytes as well as by count: a peer
 * sending its largest datagrams faster than they decrypt holds at most
 * MAX_INFLIGHT_DECRYPT_BYTES of ciphertext waiting, and the rest is refused
 * as "busy" (dropped and counted by the session table) instead of queued.
 */
import assert from "node:assert/strict";
import { MAX_INFLIGHT_DECRYPT_BYTES, MAX_INFLIGHT_DECRYPTS } from "../src/constants.ts";
import type { Session } from "../src/session/session.ts";
import { type DataFrame, decodeFrame } from "../src/wire/frames.ts";
import { sessionPair } from "./_session_helpers.ts";

async function frames(from: Session, count: number, size: number): Promise<DataFrame[]> {
  const out: DataFrame[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = await from.sealInOrder(new Uint8Array(size), 0);
    assert.ok(bytes !== null);
    out.push(decodeFrame(bytes) as DataFrame);
  }
  return out;
}

Deno.test("large frames opened at once: those past MAX_INFLIGHT_DECRYPT_BYTES are refused as busy, the rest open", async () => {
  const [a, b] = sessionPair();
  const size = 60_000;
  const fit = Math.floor(MAX_INFLIGHT_DECRYPT_BYTES / (size + 16));
  assert.ok(fit < MAX_INFLIGHT_DECRYPTS, "the byte cap binds before the count");
  const sent = await frames(a, fit + 10, size);
  const results = await Promise.all(sent.map((f) => b.open(f, 0)));
  const busy = results.filter((r) => !r.ok && r.reason === "busy").length;
  assert.equal(busy, 10);
  assert.equal(results.filter((r) => r.ok).length, fit);
  // Once those finished, the refused frames open: the bytes were given back.
  const retried = await Promise.all(sent.slice(fit).map((f) => b.open(f, 0)));
  assert.ok(retried.every((r) => r.ok), JSON.stringify(retried.map((r) => r.ok || r.reason)));
});

Deno.test("small frames opened at once are bounded by the count, not the bytes", async () => {
  const [a, b] = sessionPair();
  const sent = await frames(a, MAX_INFLIGHT_DECRYPTS + 5, 100);
  const results = await Promise.all(sent.map((f) => b.open(f, 0)));
  assert.equal(results.filter((r) => !r.ok && r.reason === "busy").length, 5);
});
