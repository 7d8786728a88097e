/**
 * The front door of port 444: everything a datagram passes before a
 * signature is checked, cheapest first (PROTOCOL.md §7.1). Decode; the ack
 * cache; the sender's budget (its key is already authenticated by Noise);
 * the session checks on the raw header; a repeat of the request already
 * pending; a place in the bounded verification queue ({@linkcode TrustQueue}).
 * Then a few workers hand each message, under its key's lock, to the trust
 * rules. Every drop is counted by reason; nothing here grows with the
 * attacker's rate.
 *
 * @module
 */
import { createHash } from "node:crypto";
import {
  TRUST_ACK_CACHE,
  TRUST_QUEUE_MAX,
  TRUST_QUEUE_PER_KEY,
  TRUST_QUEUE_RESERVED,
  TRUST_RATE_PER_KEY,
  TRUST_WORKERS,
} from "../constants.ts";
import { RateLimiter } from "../session/rate_limit.ts";
import { decodeTrustPacket, encodeTrustPacket } from "../wire/trust_packet.ts";
import type { KeyedLock } from "./keyed_lock.ts";
import type { DatagramContext } from "./port_service.ts";
import { TrustQueue } from "./trust_queue.ts";
import type { TrustAck, TrustAnswer, TrustDropReason } from "./trust_types.ts";

/** What the front door needs from the trust service behind it. */
export interface AdmissionOptions {
  /** This node's Ed25519 key (what `to_key` must be). */
  localKey: Uint8Array;
  /** Locks per key, shared with the local commands. */
  locks: KeyedLock;
  /** Counts a drop or refusal. */
  drop(reason: TrustDropReason): void;
  /** An ack (op 2) to one of our own messages arrived. */
  onAck(requestId: string, ack: TrustAck): void;
  /** Whether a key is known (trusted, or we asked it): its messages may use the reserve. */
  isKnown(key: string): boolean;
  /** The request hash pending from a key, if any. */
  pendingHash(key: string): string | undefined;
  /** Verifies, checks and applies one message; runs under its key's lock. */
  process(message: Uint8Array, ctx: DatagramContext): Promise<TrustAnswer>;
  /** Monotonic clock in ms for the budgets (default `performance.now`). */
  monotonic?: () => number;
}

/** An ack ready to send, and what to do once it is on its way. */
interface Ready {
  bytes: Uint8Array;
  after: (() => void) | undefined;
}

/** A message admitted to the queue, and who waits for its ack. */
interface Queued {
  message: Uint8Array;
  requestId: Uint8Array;
  ctx: DatagramContext;
  done: PromiseWithResolvers<Ready>;
}

/** Where `from_key`, `to_key` and `binding` sit in a signed trust message (PROTOCOL.md §7.2). */
const FROM_KEY = [2, 34] as const;
const TO_KEY = [42, 74] as const;
const BINDING = [106, 138] as const;

/** Port-444 datagrams in, acks out; see the module doc. */
export class TrustAdmission {
  #o: AdmissionOptions;
  #ackCache = new Map<string, Uint8Array>();
  /** Acks being worked out, by (key, request id): a copy arriving meanwhile shares the result. */
  #inProgress = new Map<string, Promise<Ready>>();
  #queue = new TrustQueue<Queued>({
    max: TRUST_QUEUE_MAX,
    reserved: TRUST_QUEUE_RESERVED,
    perKey: TRUST_QUEUE_PER_KEY,
  });
  #workers = 0;
  /** Port-444 messages per sender key, spent before any signature is checked. */
  #limiter: RateLimiter;

  /** Creates the front door. */
  constructor(options: AdmissionOptions) {
    this.#o = options;
    const now = options.monotonic ?? (() => performance.now());
    this.#limiter = new RateLimiter({ ...TRUST_RATE_PER_KEY, maxKeys: 65_536, now });
  }

  /** Messages waiting in the verification queue. */
  get queued(): number {
    return this.#queue.size;
  }

  /** Messages being verified or processed now. */
  get processing(): number {
    return this.#workers;
  }

  /** Handles one port-444 datagram; resolves once its ack (if any) is sent. */
  async onDatagram(payload: Uint8Array, ctx: DatagramContext): Promise<void> {
    let p;
    try {
      p = decodeTrustPacket(payload);
    } catch {
      this.#o.drop("malformed");
      return;
    }
    if (p.op === "ack") {
      this.#o.onAck(p.requestId.toHex(), { status: p.status, detail: p.detail });
      return;
    }
    const cacheKey = `${ctx.peer.keyHex}:${p.requestId.toHex()}`;
    const cached = this.#ackCache.get(cacheKey);
    if (cached !== undefined) return await ctx.reply(cached);
    const running = this.#inProgress.get(cacheKey);
    // A copy that arrives while the first is processed gets the same ack, and no more.
    if (running !== undefined) return await ctx.reply((await running).bytes);
    const admitted = this.#admit(p.requestId, p.message, ctx);
    if (admitted === undefined) return;
    if (admitted instanceof Uint8Array) return await ctx.reply(admitted);
    this.#inProgress.set(cacheKey, admitted);
    let ready;
    try {
      ready = await admitted;
    } finally {
      this.#inProgress.delete(cacheKey);
    }
    this.#ackCache.set(cacheKey, ready.bytes);
    if (this.#ackCache.size > TRUST_ACK_CACHE) {
      this.#ackCache.delete(this.#ackCache.keys().next().value!);
    }
    await ctx.reply(ready.bytes);
    // Only now that the acknowledgement is on its way may the sessions close.
    ready.after?.();
  }

  /**
   * The checks in front of verification. Returns the ack to come; or an ack
   * to send now and not cache; or undefined when the datagram was dropped
   * unanswered.
   */
  #admit(
    requestId: Uint8Array,
    message: Uint8Array,
    ctx: DatagramContext,
  ): Promise<Ready> | Uint8Array | undefined {
    const key = ctx.peer.keyHex;
    const ack = (status: TrustAck["status"], detail: string) =>
      encodeTrustPacket({ op: "ack", requestId, status, detail });
    const refuse = (reason: TrustDropReason) => {
      this.#o.drop(reason);
      return ack("refused", reason);
    };
    // Not cached: once the budget refills, a repeat is processed.
    if (!this.#limiter.allow(key)) return refuse("rate_limited");
    const header = headerRefusal(message, this.#o.localKey, ctx);
    if (header !== undefined) return refuse(header);
    // A repeat (a new request id) of the very request pending from this key
    // (header checked above, so over the session it was bound to): the same
    // answer, without verifying or writing.
    const pending = this.#o.pendingHash(key);
    if (pending !== undefined && sha256Hex(message) === pending) return ack("pending", "");
    const done = Promise.withResolvers<Ready>();
    const lane = this.#o.isKnown(key) ? "known" : "stranger";
    if (!this.#queue.admit(key, lane, { message, requestId, ctx, done })) {
      // No ack: the sender repeats, and by then there may be room.
      this.#o.drop("queue_full");
      return undefined;
    }
    this.#pump();
    return done.promise;
  }

  /** Starts workers while there is queued work for keys not already being processed. */
  #pump(): void {
    while (this.#workers < TRUST_WORKERS) {
      const next = this.#queue.take();
      if (next === undefined) return;
      this.#workers++;
      const { key, item } = next;
      void this.#o.locks.run(key, async () => {
        const { status, detail, after } = await this.#o.process(item.message, item.ctx);
        const bytes = encodeTrustPacket({ op: "ack", requestId: item.requestId, status, detail });
        return { bytes, after };
      }).then(item.done.resolve, item.done.reject).finally(() => {
        this.#workers--;
        this.#queue.done(key);
        this.#pump();
      });
    }
  }
}

/** SHA-256 of bytes, hex (synchronous: cheaper than a signature check by far). */
function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * The session checks of §7.3 on the raw header, for the price of three
 * compares instead of a signature check; undefined when they pass or the
 * message is too short to say (the decoder then refuses it).
 */
function headerRefusal(
  m: Uint8Array,
  localKey: Uint8Array,
  ctx: DatagramContext,
): "misaddressed" | "wrong_sender" | "wrong_binding" | undefined {
  if (m.length < BINDING[1]) return undefined;
  if (!equal(m.subarray(...TO_KEY), localKey)) return "misaddressed";
  if (!equal(m.subarray(...FROM_KEY), ctx.peer.publicKey)) return "wrong_sender";
  if (!equal(m.subarray(...BINDING), ctx.binding)) return "wrong_binding";
  return undefined;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
