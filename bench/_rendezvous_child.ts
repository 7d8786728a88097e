/**
 * The rendezvous of the bench's full-table figures, in its own process so
 * that its RSS is a rendezvous's table alone: a {@linkcode RecordStore} with
 * the product's defaults (100,000 records at most, the publish rates per
 * source IP and per key) behind a {@linkcode RendezvousService} with
 * {@linkcode RENDEZVOUS_LIMITS}, the handler a `pilot rendezvous` daemon
 * runs for every port-445 datagram. What it does not have is the daemon's
 * sessions and socket: each publish and lookup enters at
 * `RendezvousService.handle()` as the daemon hands it over after decryption.
 *
 * Every record is checked on insert by {@linkcode verifySynthetic}:
 * everything `verifyPresence` checks, in its order and at its cost, except
 * that the verdict of the address stamp is not enforced (the keys are
 * synthetic; a real stamp costs about 2^20 SHA-512s per key, hours for
 * 100,000).
 *
 * Usage: `deno run --allow-read --v8-flags=RUNTIME_V8_FLAGS bench/_rendezvous_child.ts RECORDS LOOKUP_MS` (the flags expose the gc it calls)
 * (the product's V8 flags, src/constants.ts),
 * where RECORDS holds the records as `u16 length ‖ bytes`, one after the
 * other. Prints one JSON line on stdout.
 *
 * @module
 */

import { formatAddress, verifyStamp } from "../src/identity/address.ts";
import { isValidPublicKey, verify } from "../src/identity/ed25519.ts";
import { isValidHostname } from "../src/identity/self_description.ts";
import { DecodeError } from "../src/bytes.ts";
import {
  MAX_PRESENCE_LIFETIME_MS,
  PRESENCE_CLOCK_SKEW_MS,
  PresenceError,
  type VerifiedPresence,
} from "../src/discovery/presence.ts";
import { exposedGc, MemorySettle } from "../src/daemon/memory_settle.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import { RecordStore } from "../src/services/rendezvous/store.ts";
import { RENDEZVOUS_LIMITS, RendezvousService } from "../src/services/rendezvous/service.ts";
import { decodePresenceRecord, presenceSigningMessage } from "../src/wire/presence_record.ts";
import {
  decodeRendezvousMessage,
  encodeRendezvousMessage,
} from "../src/wire/rendezvous_message.ts";

/**
 * `verifyPresence` for synthetic keys: the same checks in the same order
 * (shape, lifetime, hostname, key, stamp hash, Ed25519 signature), throwing
 * the same `PresenceError`s, except that the stamp's hash is computed but
 * its verdict ignored; the address is the key's first 6 bytes. All records
 * carry one static key made by `generateX25519KeyPair`, not of low order.
 */
export function verifySynthetic(bytes: Uint8Array, now: number): VerifiedPresence {
  let decoded;
  try {
    decoded = decodePresenceRecord(bytes);
  } catch (e) {
    if (e instanceof DecodeError) throw new PresenceError("malformed", e.message);
    throw e;
  }
  const { record, body } = decoded;
  if (record.expiresAt <= now - PRESENCE_CLOCK_SKEW_MS) {
    throw new PresenceError("expired", `Presence record expired at ${record.expiresAt}`);
  }
  if (record.expiresAt > now + MAX_PRESENCE_LIFETIME_MS + PRESENCE_CLOCK_SKEW_MS) {
    throw new PresenceError("too_long_lived", "Presence record lives too long");
  }
  if (record.hostname !== "" && !isValidHostname(record.hostname)) {
    throw new PresenceError("bad_hostname", `Presence record claims hostname "${record.hostname}"`);
  }
  if (!isValidPublicKey(record.publicKey)) {
    throw new PresenceError("bad_key", "Presence record carries a weak or malformed key");
  }
  verifyStamp(record.publicKey, record.stamp);
  if (!verify(record.signature, presenceSigningMessage(body), record.publicKey)) {
    throw new PresenceError("bad_signature", "Presence record's signature does not verify");
  }
  return { record, bytes: bytes.slice(), address: formatAddress(record.publicKey.subarray(0, 6)) };
}

/** The records of `file` (`u16 length ‖ bytes` each), as views into one buffer. */
function recordsOf(file: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < file.length;) {
    const n = (file[at]! << 8) | file[at + 1]!;
    out.push(file.subarray(at + 2, at + 2 + n));
    at += 2 + n;
  }
  return out;
}

/** The node that signed `record` (version byte, then its 32-byte key), as a session would name it. */
function ownerOf(record: Uint8Array): PeerIdentity {
  const publicKey = record.slice(1, 33);
  return {
    publicKey,
    keyHex: publicKey.toHex(),
    address: formatAddress(publicKey.subarray(0, 6)),
  } as PeerIdentity;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/**
 * Memory once the garbage is collected and the heap settled as a daemon's
 * ticker settles it on its first quiet beat after a burst
 * ({@linkcode MemorySettle}: a memory-reducing GC once the heap grew): the
 * ArrayBuffers it held (the records file's 17 MB) are freed by a sweeper
 * after the GC, measured here to take up to about a second.
 */
async function settledMemory(settle: MemorySettle): Promise<Deno.MemoryUsage> {
  gc();
  await new Promise((r) => setTimeout(r, 200));
  gc();
  await new Promise((r) => setTimeout(r, 2000));
  gc();
  settle.beat();
  return Deno.memoryUsage();
}

/** Source IP of the `i`th node: each from its own, as nodes across the Internet. */
function sourceOf(i: number): { hostname: string; port: number } {
  return { hostname: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 4000 };
}

async function main(path: string, lookupMs: number): Promise<void> {
  const store = new RecordStore({ verify: verifySynthetic });
  const service = new RendezvousService(
    store,
    { peerAt: () => undefined, send: () => false },
    () => performance.now(),
    RENDEZVOUS_LIMITS,
  );
  // The daemon's settle, on a clock that has every beat past its interval:
  // the bench's beats are a burst apart.
  let beats = 0;
  const settle = new MemorySettle({ gc: exposedGc(), now: () => ++beats * 3_600_000 });
  const empty = await settledMemory(settle);

  // Filled as nodes publish: one publish each, through the handler, checked.
  let records: Uint8Array[] | null = recordsOf(await Deno.readFile(path));
  const count = records.length;
  const refused: Record<string, number> = {};
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const answer = service.handle(
      ownerOf(records[i]!),
      sourceOf(i),
      encodeRendezvousMessage({ type: "publish", id: i, record: records[i]! }),
    );
    const m = answer === null ? null : decodeRendezvousMessage(answer);
    if (m?.type !== "ok") {
      const why = m?.type === "error" ? m.code : String(m?.type);
      refused[why] = (refused[why] ?? 0) + 1;
    }
  }
  const publishMs = performance.now() - t0;
  records = null;
  const full = await settledMemory(settle);

  // Lookups by hostname from the nodes themselves, round robin: each asks far
  // below its 20 per second, so the request limit is paid, never hit.
  let peers: PeerIdentity[] | null = recordsOf(await Deno.readFile(path)).map(ownerOf);
  let lookups: Uint8Array[] | null = peers.map((_, i) =>
    encodeRendezvousMessage({ type: "lookup", id: i, by: "hostname", hostname: `n-${i}` })
  );
  const limitedBefore = service.stats().dropped.rate_limited;
  let done = 0;
  let found = 0;
  const t1 = performance.now();
  while (performance.now() - t1 < lookupMs) {
    for (let k = 0; k < 256; k++, done++) {
      const i = done % count;
      const answer = service.handle(peers[i]!, sourceOf(i), lookups[i]!);
      // The answer's type byte: 0x82 found.
      if (answer !== null && answer[0] === 0x82) found++;
    }
  }
  const lookupSeconds = (performance.now() - t1) / 1000;
  const sample = decodeRendezvousMessage(
    service.handle(peers[7 % count]!, sourceOf(7 % count), lookups[7 % count]!)!,
  );
  const afterLookups = Deno.memoryUsage();
  // The peers and requests above are the bench's, not the rendezvous's.
  peers = lookups = null;
  const afterLookupsSettled = await settledMemory(settle);
  const stats = store.stats();
  console.log(JSON.stringify({
    offered: count,
    records: stats.records,
    refused,
    publish_ms: publishMs,
    lookups: done,
    lookups_found: found,
    lookups_rate_limited: service.stats().dropped.rate_limited - limitedBefore,
    lookup_seconds: lookupSeconds,
    sample_found: sample.type === "found" && decodePresenceRecord(sample.record).record.hostname ===
        `n-${7 % count}`,
    memory: {
      empty,
      full,
      after_lookups: afterLookups,
      after_lookups_settled: afterLookupsSettled,
    },
    accounted_bytes: store.bytes,
    settles: settle.counts.settled,
  }));
}

if (import.meta.main) {
  const [path, ms] = Deno.args;
  if (path === undefined) throw new TypeError("Usage: _rendezvous_child.ts RECORDS LOOKUP_MS");
  await main(path, Number(ms ?? 2000));
}
