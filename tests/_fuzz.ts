/**
 * Deterministic fuzzing for decoders (DESIGN.md, Decoders; issue 8 item 11):
 * a seeded xorshift generator, inputs made from valid encodings (random
 * bytes, truncations, extensions, single- and multi-byte mutations, hostile
 * length fields), and runners that hold every input to the decoder contract
 * of `_codec_contract.ts`. A failure names the decoder, the seed, the input's
 * index and its hex, so `FUZZ_SEED=<seed> deno test tests/fuzz_test.ts`
 * replays it.
 *
 * ```ts
 * const stats = fuzz({ name: "decodeInner()", decode: decodeInner, encode: encodeInner, corpus });
 * ```
 *
 * @module
 */

import assert, { AssertionError } from "node:assert/strict";
import { DecodeError, utf8 } from "../src/bytes.ts";
import { MAX_STREAM_MESSAGE } from "../src/constants.ts";
import { decodeIdentityFile } from "../src/identity/identity.ts";
import { signSelfDescription } from "../src/identity/self_description.ts";
import { encodeEnvelope, type Envelope } from "../src/wire/data_message.ts";
import { MAX_FINAL_NOISE_SIZE } from "../src/wire/frames.ts";
import { encodeHandshakePayload, type HandshakePayload } from "../src/wire/handshake_payload.ts";
import fixtures from "./fixtures/identities.json" with { type: "json" };
import {
  assertCanonicalOrRefused,
  assertCanonicalOrRefusedAsync,
  type ReasonedError,
} from "./_codec_contract.ts";

/** Inputs per decoder (issue 8 item 11: at least 1e5). */
export const FUZZ_COUNT = 100_000;

const DEFAULT_SEED = 0x5eed_2026;

/** The base seed: `FUZZ_SEED` from the environment when readable, else a fixed one. */
export function baseSeed(): number {
  const env = Deno.permissions.querySync({ name: "env", variable: "FUZZ_SEED" });
  const text = env.state === "granted" ? Deno.env.get("FUZZ_SEED") : undefined;
  const n = text === undefined ? DEFAULT_SEED : Number(text);
  if (!Number.isInteger(n)) throw new TypeError(`FUZZ_SEED ${text} is not an integer`);
  return n >>> 0;
}

/** The seed of one decoder's run: the base seed mixed with the decoder's name (FNV-1a). */
export function seedFor(name: string, base: number = baseSeed()): number {
  let h = 0x811c9dc5 ^ base;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** xorshift128: small, fast and deterministic; seeded through splitmix32. */
export class Rng {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  /** Starts the sequence of `seed` (any u32). */
  constructor(seed: number) {
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#s0 = next() | 1;
    this.#s1 = next();
    this.#s2 = next();
    this.#s3 = next();
  }

  /** The next u32. */
  u32(): number {
    let t = this.#s3;
    const s = this.#s0;
    this.#s3 = this.#s2;
    this.#s2 = this.#s1;
    this.#s1 = s;
    t ^= t << 11;
    t ^= t >>> 8;
    this.#s0 = (t ^ s ^ (s >>> 19)) >>> 0;
    return this.#s0;
  }

  /** An integer from 0 to `n - 1` (n ≥ 1, at most 2^32). */
  below(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }

  /** An integer from `min` to `max` inclusive. */
  between(min: number, max: number): number {
    return min + this.below(max - min + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.u32() < p * 0x1_0000_0000;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }

  /** Fills `bytes` with random bytes and returns it. */
  fill(bytes: Uint8Array): Uint8Array {
    let i = 0;
    for (; i + 4 <= bytes.length; i += 4) {
      const v = this.u32();
      bytes[i] = v;
      bytes[i + 1] = v >>> 8;
      bytes[i + 2] = v >>> 16;
      bytes[i + 3] = v >>> 24;
    }
    for (; i < bytes.length; i++) bytes[i] = this.u32();
    return bytes;
  }

  /** `n` fresh random bytes. */
  bytes(n: number): Uint8Array {
    return this.fill(new Uint8Array(n));
  }
}

/** A length (or count, or ranged integer) field inside a valid encoding. */
export interface LengthField {
  /** Byte offset of the field. */
  offset: number;
  /** Width in bytes, big-endian. */
  width: 1 | 2 | 4 | 8;
  /** Largest value the decoder allows in it. */
  max: number;
  /** A ranged integer (a time, an index), not a byte length or count: a large value claims no bytes. */
  value?: true;
}

/** A valid encoding (made by the project's own encoder) and the length fields in it. */
export interface Seed {
  /** The bytes. */
  bytes: Uint8Array;
  /** Its length fields, for hostile values. */
  lengths: LengthField[];
}

/** What inputs for one decoder are made from. */
export interface Corpus {
  /** Valid encodings. */
  seeds: Seed[];
  /** The largest input the decoder accepts; random inputs reach a bit beyond it. */
  maxLength: number;
  /**
   * Byte ranges `[start, end)` where mutations land about a twentieth as often: fields
   * whose only check is costly cryptography (a key), so that 100,000 inputs
   * stay within the time budget while still reaching it.
   */
  cold?: readonly (readonly [number, number])[];
}

/** The hostile values of a field: 0, max-1, max, max+1, 0xFFFF, 0xFFFFFFFF, 2^53 and all ones, as fit its width. */
export function hostileValues(field: LengthField): bigint[] {
  const limit = 1n << BigInt(8 * field.width);
  const max = BigInt(field.max);
  const all = [0n, max - 1n, max, max + 1n, 0xffffn, 0xffff_ffffn, 1n << 53n, limit - 1n];
  return [...new Set(all.filter((v) => v >= 0n && v < limit))];
}

/** Writes `value` big-endian into `width` bytes at `offset`. */
export function writeUint(bytes: Uint8Array, offset: number, width: number, value: bigint): void {
  for (let i = width - 1; i >= 0; i--) {
    bytes[offset + i] = Number(value & 0xffn);
    value >>= 8n;
  }
}

/** A copy of `seed` with one length field set to `value`. */
export function withField(seed: Seed, field: LengthField, value: bigint): Uint8Array {
  const out = seed.bytes.slice();
  writeUint(out, field.offset, field.width, value);
  return out;
}

/** Whether a length or count field claims more bytes than follow it (a decoder must refuse that). */
export function claimsPastEnd(seed: Seed, field: LengthField, value: bigint): boolean {
  return field.value !== true && value > BigInt(seed.bytes.length - field.offset - field.width);
}

const SLACK = 64;
const pools = new WeakMap<Corpus, Uint8Array>();

/**
 * Random bytes of a random length: one in 16 from 0 to a bit over
 * `corpus.maxLength`, the rest from 0 to 512; long ones share one pool.
 */
function randomInput(rng: Rng, corpus: Corpus): Uint8Array {
  const top = corpus.maxLength + SLACK;
  const n = rng.chance(1 / 16) ? rng.below(top + 1) : rng.below(Math.min(top, 512) + 1);
  if (n <= 4096) return rng.bytes(n);
  let pool = pools.get(corpus);
  if (pool === undefined) {
    pool = rng.bytes(top);
    pools.set(corpus, pool);
  }
  // Views of one random pool with a fresh head: cheap, and the head is what decoders read first.
  const view = pool.subarray(0, n);
  rng.fill(view.subarray(0, 256));
  return view;
}

function isCold(corpus: Corpus, i: number): boolean {
  return corpus.cold?.some(([start, end]) => i >= start && i < end) ?? false;
}

function mutateBytes(rng: Rng, corpus: Corpus, bytes: Uint8Array, times: number): Uint8Array {
  const out = bytes.slice();
  if (out.length === 0) return rng.bytes(rng.between(1, 8));
  for (let k = 0; k < times; k++) {
    let i = rng.below(out.length);
    if (isCold(corpus, i) && rng.chance(0.95)) {
      for (let tries = 0; tries < 16 && isCold(corpus, i); tries++) i = rng.below(out.length);
    }
    switch (rng.below(4)) {
      case 0:
        out[i] = rng.u32();
        break;
      case 1:
        out[i]! ^= 1 << rng.below(8);
        break;
      case 2:
        out[i] = rng.pick([0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff]);
        break;
      default:
        out[i] = out[i]! + (rng.chance(0.5) ? 1 : -1);
    }
  }
  return out;
}

function splice(rng: Rng, bytes: Uint8Array): Uint8Array {
  const at = rng.below(bytes.length + 1);
  if (rng.chance(0.5) && bytes.length > 0) {
    const end = Math.min(bytes.length, at + rng.between(1, 16));
    const out = new Uint8Array(bytes.length - (end - at));
    out.set(bytes.subarray(0, at));
    out.set(bytes.subarray(end), at);
    return out;
  }
  const insert = rng.bytes(rng.between(1, 16));
  const out = new Uint8Array(bytes.length + insert.length);
  out.set(bytes.subarray(0, at));
  out.set(insert, at);
  out.set(bytes.subarray(at), at + insert.length);
  return out;
}

/**
 * One input for a decoder: uniformly random bytes (20%), a truncation (12%)
 * or extension (8%) of a valid encoding, one mutated byte (22%), several
 * mutated bytes or a splice (16%), or a hostile value in a length field
 * (22%, sometimes truncated or mutated further).
 */
export function makeInput(rng: Rng, corpus: Corpus): Uint8Array {
  const roll = rng.below(100);
  if (roll < 20 || corpus.seeds.length === 0) return randomInput(rng, corpus);
  const seed = rng.pick(corpus.seeds);
  const bytes = seed.bytes;
  if (roll < 32) return bytes.slice(0, rng.below(bytes.length + 1));
  if (roll < 40) {
    const tail = rng.chance(0.5) ? rng.bytes(rng.between(1, 32)) : rng.pick(corpus.seeds).bytes;
    const out = new Uint8Array(bytes.length + tail.length);
    out.set(bytes);
    out.set(tail, bytes.length);
    return out;
  }
  if (roll < 62) return mutateBytes(rng, corpus, bytes, 1);
  if (roll < 78) {
    return rng.chance(0.3)
      ? splice(rng, bytes)
      : mutateBytes(rng, corpus, bytes, rng.between(2, 8));
  }
  if (seed.lengths.length === 0) return mutateBytes(rng, corpus, bytes, rng.between(1, 4));
  const field = rng.pick(seed.lengths);
  const out = withField(seed, field, rng.pick(hostileValues(field)));
  const extra = rng.below(8);
  if (extra === 0) return out.subarray(0, rng.below(out.length + 1));
  if (extra === 1) return mutateBytes(rng, corpus, out, 1);
  return out;
}

/** What a fuzz run saw. */
export interface FuzzStats {
  /** Inputs fed. */
  count: number;
  /** Inputs the decoder accepted (and that re-encoded to themselves). */
  accepted: number;
  /** Inputs it refused with its own error. */
  refused: number;
}

/** Options of {@linkcode fuzz} and {@linkcode fuzzAsync}. */
export interface FuzzOptions<T, D = T> {
  /** The decoder's name, for messages and its seed. */
  name: string;
  /** The decoder under test. */
  decode: (bytes: Uint8Array) => D;
  /** Encodes an accepted value; the result must equal the input. */
  encode: (value: T, input: Uint8Array) => Uint8Array;
  /** The decoder's error class; DecodeError unless given. */
  error?: ReasonedError;
  /** What inputs are made from. */
  corpus: Corpus;
  /** Inputs to feed; {@linkcode FUZZ_COUNT} unless given. */
  count?: number;
  /** Makes one input instead of {@linkcode makeInput}. */
  input?: (rng: Rng) => Uint8Array;
}

/** Hex of an input for a failure message: whole up to 4 KiB, else its head. */
export function showInput(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 4096).toHex();
  return bytes.length > 4096
    ? `${head}… (${bytes.length} bytes)`
    : `${head} (${bytes.length} bytes)`;
}

function failure(name: string, seed: number, i: number, bytes: Uint8Array, e: unknown): never {
  const why = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  throw new AssertionError({
    message: `${name} broke its contract on input #${i} of seed ${seed} ` +
      `(replay: FUZZ_SEED=${baseSeed()}): ${why}\ninput hex: ${showInput(bytes)}`,
  });
}

/**
 * Feeds `count` inputs to a synchronous decoder: each must decode to a value
 * that re-encodes to exactly the input, or throw the decoder's own error.
 */
export function fuzz<T>(o: FuzzOptions<T>): FuzzStats {
  const seed = seedFor(o.name);
  const rng = new Rng(seed);
  const count = o.count ?? FUZZ_COUNT;
  const options = { error: o.error ?? DecodeError };
  let accepted = 0;
  for (let i = 0; i < count; i++) {
    const bytes = o.input ? o.input(rng) : makeInput(rng, o.corpus);
    try {
      if (assertCanonicalOrRefused(o.decode, (v) => o.encode(v, bytes), bytes, options)) {
        accepted++;
      }
    } catch (e) {
      failure(o.name, seed, i, bytes, e);
    }
  }
  return { count, accepted, refused: count - accepted };
}

/** {@linkcode fuzz} for a decoder that returns a promise; `parallel` inputs are in flight at once. */
export async function fuzzAsync<T>(
  o: FuzzOptions<T, Promise<T>> & { parallel?: number },
): Promise<FuzzStats> {
  const seed = seedFor(o.name);
  const rng = new Rng(seed);
  const count = o.count ?? FUZZ_COUNT;
  const parallel = o.parallel ?? 1;
  const options = { error: o.error ?? DecodeError };
  let accepted = 0;
  for (let i = 0; i < count; i += parallel) {
    const batch: Promise<void>[] = [];
    for (let j = i; j < Math.min(count, i + parallel); j++) {
      const bytes = o.input ? o.input(rng) : makeInput(rng, o.corpus);
      batch.push(
        assertCanonicalOrRefusedAsync(o.decode, (v) => o.encode(v, bytes), bytes, options).then(
          (ok) => {
            if (ok) accepted++;
          },
          (e) => failure(o.name, seed, j, bytes, e),
        ),
      );
    }
    await Promise.all(batch);
  }
  return { count, accepted, refused: count - accepted };
}

/** Inputs whose length fields claim more bytes than follow them, from every field of every seed. */
export function pastEndInputs(corpus: Corpus): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const seed of corpus.seeds) {
    for (const field of seed.lengths) {
      for (const v of hostileValues(field)) {
        if (claimsPastEnd(seed, field, v)) out.push(withField(seed, field, v));
      }
    }
  }
  return out;
}

/** Hostile inputs per decoder in the batch check. */
export const HOSTILE_BATCH = 10_000;

/** How much more than its input a decoder may allocate in one buffer (a domain label, a header). */
export const ALLOCATION_SLACK = 64;

/**
 * Runs `run` while every `new Uint8Array(n)` and `new ArrayBuffer(n)` made
 * through the globals (as the decoders under `src/` make them) reports `n`
 * to `seen`. Views, copies of existing bytes (`slice()`) and the runtime's
 * own buffers are not counted: what is caught is a buffer sized from a
 * number, such as a length field.
 */
export async function probeAllocations<T>(
  seen: (n: number) => void,
  run: () => Promise<T>,
): Promise<T> {
  const g = globalThis as {
    Uint8Array: Uint8ArrayConstructor;
    ArrayBuffer: ArrayBufferConstructor;
  };
  const [u8, ab] = [g.Uint8Array, g.ArrayBuffer];
  const handler: ProxyHandler<new (...args: unknown[]) => object> = {
    construct(target, args, newTarget) {
      if (typeof args[0] === "number") seen(args[0]);
      return Reflect.construct(target, args, newTarget);
    },
  };
  g.Uint8Array = new Proxy(
    u8 as unknown as new (...args: unknown[]) => object,
    handler,
  ) as unknown as Uint8ArrayConstructor;
  g.ArrayBuffer = new Proxy(
    ab as unknown as new (...args: unknown[]) => object,
    handler,
  ) as unknown as ArrayBufferConstructor;
  try {
    return await run();
  } finally {
    g.Uint8Array = u8;
    g.ArrayBuffer = ab;
  }
}

/**
 * Hostile length fields: every input whose length field claims more bytes
 * than follow must be refused with the decoder's error (counted, not timed),
 * no buffer may be sized beyond its input (plus {@linkcode ALLOCATION_SLACK})
 * while it is decoded (the allocation probe sees every buffer, so this is
 * exact; the process's RSS is not, as test files run in parallel beside
 * it), and a batch of `batch` of them is refused, each, run twice.
 */
export async function assertNoAllocationFromLengths(
  name: string,
  decode: (bytes: Uint8Array) => unknown,
  inputs: Uint8Array[],
  error: ReasonedError = DecodeError,
  batch = HOSTILE_BATCH,
): Promise<void> {
  assert.ok(inputs.length > 0, `${name}: no hostile inputs`);
  let largest = 0;
  for (const bytes of inputs) {
    largest = 0;
    await probeAllocations((n) => largest = Math.max(largest, n), async () => {
      try {
        await decode(bytes);
      } catch { /* judged below */ }
    });
    assert.ok(
      largest <= bytes.length + ALLOCATION_SLACK,
      `${name} allocated ${largest} bytes for a ${bytes.length}-byte input: ${showInput(bytes)}`,
    );
  }
  let refused = 0;
  const run = async () => {
    for (let i = 0; i < batch; i++) {
      const bytes = inputs[i % inputs.length]!;
      try {
        await decode(bytes);
      } catch (e) {
        assert.ok(
          e instanceof error,
          `${name}: expected ${error.name}, got ${e} for input ${showInput(bytes)}`,
        );
        refused++;
        continue;
      }
      assert.fail(
        `${name} accepted a length that claims more bytes than follow: ${showInput(bytes)}`,
      );
    }
  };
  await run();
  await run();
  assert.equal(refused, 2 * batch, `${name}: ${2 * batch - refused} hostile inputs not refused`);
}

/** Checks that a run fed 100,000 inputs and saw both outcomes (the generator reaches past the first check). */
export function assertReachesBoth(name: string, stats: FuzzStats): void {
  assert.ok(stats.count >= FUZZ_COUNT, `${name}: only ${stats.count} inputs`);
  assert.ok(
    stats.accepted > 0,
    `${name}: no input was accepted; the generator misses valid shapes`,
  );
  assert.ok(stats.refused > 0, `${name}: no input was refused`);
}

// ---- Building seeds ----

/** A deterministic pattern of `n` bytes (seeds need no randomness). */
export function pattern(n: number, start = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (start + i * 37) & 0xff;
  return out;
}

/** A u8 length or count field at `offset`. */
export const u8 = (offset: number, max: number): LengthField => ({ offset, width: 1, max });
/** A u16 length field at `offset`. */
export const u16 = (offset: number, max: number): LengthField => ({ offset, width: 2, max });
/** A u32 length field at `offset`. */
export const u32 = (offset: number, max: number): LengthField => ({ offset, width: 4, max });
/** A u32 ranged value (an index, a window) at `offset`. */
export const index = (offset: number): LengthField => ({
  offset,
  width: 4,
  max: 0xffff_ffff,
  value: true,
});
/** A u64 time or seq below 2^53 at `offset`. */
export const time = (offset: number): LengthField => ({
  offset,
  width: 8,
  max: Number.MAX_SAFE_INTEGER,
  value: true,
});

// ---- Envelopes (data_message.ts), shared by the message-frame fuzzing ----

/** Valid envelopes: minimal, every string field at its longest, a full meta map. */
export const ENVELOPES: Envelope[] = [
  {
    id: "m",
    type: "text",
    correlationId: "",
    inReplyTo: "",
    expiresAt: 0,
    meta: {},
    data: new Uint8Array(0),
  },
  {
    id: "job-1",
    type: "json",
    correlationId: "c".repeat(128),
    inReplyTo: "r-1",
    expiresAt: Number.MAX_SAFE_INTEGER,
    meta: { k: "v", trace: "é✓", x: "y".repeat(255) },
    data: utf8('{"a":1}'),
  },
  {
    id: "é".repeat(64),
    type: "binary",
    correlationId: "corr",
    inReplyTo: "",
    expiresAt: 1_795_706_107_118,
    meta: Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`key${i}`, `v${i}`])),
    data: pattern(300),
  },
];

/** The length fields of an encoded envelope starting at `at`, found by walking it. */
export function envelopeFields(bytes: Uint8Array, at = 0): LengthField[] {
  const fields: LengthField[] = [];
  let o = at + 2;
  for (const max of [128, 128, 128]) {
    fields.push(u8(o, max));
    o += 1 + bytes[o]!;
  }
  fields.push(time(o));
  o += 8;
  const count = bytes[o]!;
  fields.push(u8(o, 16));
  o += 1;
  for (let i = 0; i < count; i++) {
    fields.push(u8(o, 64));
    o += 1 + bytes[o]!;
    fields.push(u8(o, 255));
    o += 1 + bytes[o]!;
  }
  fields.push(u32(o, MAX_STREAM_MESSAGE));
  return fields;
}

/** {@linkcode ENVELOPES} encoded, with their length fields. */
export function envelopeSeeds(): Seed[] {
  return ENVELOPES.map((e) => {
    const bytes = encodeEnvelope(e);
    return { bytes, lengths: envelopeFields(bytes) };
  });
}

/** Re-encodes an envelope (the codec is canonical: meta keys in UTF-8 byte order). */
export function reencodeEnvelope(e: Envelope, _input: Uint8Array): Uint8Array {
  return encodeEnvelope(e);
}

// ---- Handshake payloads (handshake_payload.ts), shared by the identity fuzzing ----

/** The committed test identities (`fixtures/identities.json`). */
export const FUZZ_IDS = fixtures.map((f) => decodeIdentityFile(JSON.stringify(f)));

/** A valid, signed handshake payload of the first test identity. */
export function payloadOf(hostname: string, selfTime = 1_795_706_107_118): HandshakePayload {
  const id = FUZZ_IDS[0]!;
  const self = signSelfDescription(id.seed, {
    stamp: id.stamp,
    hostname: hostname === "" ? null : hostname,
    time: selfTime,
  });
  return {
    publicKey: id.publicKey,
    stamp: id.stamp,
    staticSerial: id.binding.serial,
    staticCreated: id.binding.created,
    bindingSignature: id.binding.signature,
    hostname,
    selfTime: self.time,
    selfSignature: self.signature,
  };
}

/** Offset of the hostname length in a handshake payload. */
const HOSTNAME_LENGTH_AT = 1 + 32 + 8 + 4 + 8 + 64;

/** Valid payloads (no hostname, short ones, the longest) with their length and ranged fields. */
export function handshakePayloadCorpus(): Corpus {
  const payloads = ["", "alpha", "data-processor-node", "a".repeat(63)].map((h) => payloadOf(h));
  return {
    seeds: payloads.map((p) => ({
      bytes: encodeHandshakePayload(p),
      lengths: [
        u8(HOSTNAME_LENGTH_AT, 63),
        index(41),
        time(45),
        time(HOSTNAME_LENGTH_AT + 1 + p.hostname.length),
      ],
    })),
    maxLength: MAX_FINAL_NOISE_SIZE,
  };
}
