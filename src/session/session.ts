/**
 * One established tunnel session: the two transport keys from the Noise
 * split, the send counter and the receive replay window. Sessions are found
 * by their local index, never by IP; the endpoint follows the last
 * authenticated packet (roaming).
 *
 * @module
 */
import {
  MAX_INFLIGHT_DECRYPT_BYTES,
  MAX_INFLIGHT_DECRYPTS,
  REJECT_AFTER_MESSAGES,
} from "../constants.ts";
import type { Endpoint } from "../discovery/endpoint.ts";
import { DATA_HEADER_SIZE, type DataFrame, encodeDataHeader } from "../wire/frames.ts";
import { AEAD_KEY_LENGTH, AeadKey, nonceFromCounter } from "./crypto.ts";
import { packBytes } from "../bytes.ts";
import type { PeerIdentity } from "./peer_identity.ts";
import { InFlightCap } from "./in_flight.ts";
import { ReplayWindow } from "./replay.ts";

/** Why an incoming data frame was dropped. */
export type OpenFailure = "replay" | "busy" | "auth";

/** What {@linkcode Session.open} made of a data frame: its plaintext, or why it was dropped. */
export type OpenResult =
  | { ok: true; plaintext: Uint8Array }
  | { ok: false; reason: OpenFailure };

/** What {@linkcode Session.create} needs. */
export interface SessionInit {
  /** Our index for this session (peers put it in frames they send us). */
  localIndex: number;
  /** The peer's index (we put it in frames we send). */
  remoteIndex: number;
  /** Whether we sent message 1. */
  initiator: boolean;
  /** The authenticated peer. */
  peer: PeerIdentity;
  /** Where the peer was when the handshake completed. */
  endpoint: Endpoint;
  /** Key for frames we send. */
  sendKey: Uint8Array;
  /** Key for frames we receive. */
  receiveKey: Uint8Array;
  /** The Noise handshake hash (channel binding for later layers). */
  handshakeHash: Uint8Array;
  /** Monotonic now (ms). */
  now: number;
}

/**
 * A transport key kept as its 32 bytes and imported into WebCrypto on first
 * use; {@linkcode TransportKey.release} drops the import while the session
 * is idle (most sessions of a busy node are), and the next use imports it
 * again.
 */
class TransportKey {
  #raw: Uint8Array;
  #imported: Promise<AeadKey> | undefined;

  /** Keeps `raw` itself, not a copy: the session owns the bytes. */
  constructor(raw: Uint8Array) {
    this.#raw = raw;
  }

  /** The imported key (importing it now if it is not; a failed import is tried again next time). */
  get(): Promise<AeadKey> {
    if (this.#imported === undefined) {
      const importing = AeadKey.create(this.#raw);
      this.#imported = importing;
      importing.catch(() => {
        if (this.#imported === importing) this.#imported = undefined;
      });
    }
    return this.#imported;
  }

  /** Whether the key is imported now. */
  get imported(): boolean {
    return this.#imported !== undefined;
  }

  /** Drops the import; calls already under way keep theirs. */
  release(): void {
    this.#imported = undefined;
  }
}

function requireKey(raw: Uint8Array): Uint8Array {
  if (raw.length !== AEAD_KEY_LENGTH) {
    throw new TypeError(
      `Invalid transport key: expected ${AEAD_KEY_LENGTH} bytes, got ${raw.length}`,
    );
  }
  return raw;
}

function ignore(): void {}

/** An established session. */
export class Session {
  /** Our index. */
  readonly localIndex: number;
  /** The peer's index. */
  readonly remoteIndex: number;
  /** Whether we initiated it. */
  readonly initiator: boolean;
  /** The authenticated peer. */
  readonly peer: PeerIdentity;
  /** Noise handshake hash. */
  readonly handshakeHash: Uint8Array;
  /** Monotonic creation time (ms). */
  readonly createdAt: number;
  /** Where the peer's last authenticated packet came from. */
  endpoint: Endpoint;
  /** Initiator: true once an authenticated packet arrived (message 3 got through). */
  confirmed: boolean;
  /** Monotonic time of the last frame sent (ms). */
  lastSent: number;
  /** Monotonic time of the last authenticated frame received (ms). */
  lastReceived: number;
  /** Frames received that authenticated. */
  received = 0;
  /**
   * The message 3 that made it, while it may be repeated (the manager drops
   * it after): the initiator's, to repeat until confirmed; the responder's,
   * to answer the initiator's repeats.
   */
  finalFrame: Uint8Array | undefined;
  /** Initiator: monotonic time message 3 was last sent (ms). */
  finalSentAt = 0;
  /** Monotonic time of the first data frame sent since the last frame received (ms), or null. */
  awaitingReplySince: number | null = null;
  /** Monotonic time of the first data frame received since the last frame sent (ms), or null. */
  owedAnswerSince: number | null = null;
  /** Whether the last authenticated frame received carried data (was not a keepalive). */
  lastReceivedData = false;
  /**
   * Called when `awaitingReplySince` or `owedAnswerSince` is set: a timer of
   * the session's that counts in seconds has begun (the manager's sweeps
   * then walk this session every time until it is over).
   */
  onTimerStart: ((session: Session) => void) | undefined;
  #sealTail: Promise<unknown> = Promise.resolve();
  #openTail: Promise<unknown> = Promise.resolve();

  #send: TransportKey;
  #receive: TransportKey;
  #sendCounter = 0;
  #replay = new ReplayWindow();
  #inflight = new InFlightCap(MAX_INFLIGHT_DECRYPTS, MAX_INFLIGHT_DECRYPT_BYTES);

  private constructor(init: SessionInit) {
    this.localIndex = init.localIndex;
    this.remoteIndex = init.remoteIndex;
    this.initiator = init.initiator;
    this.peer = init.peer;
    this.createdAt = init.now;
    this.endpoint = init.endpoint;
    this.confirmed = !init.initiator;
    this.lastSent = init.now;
    this.lastReceived = init.now;
    // One buffer for the two keys and the hash: in Deno every typed array,
    // however small, has its own backing store (about 0.5 KB of memory
    // each, measured), and a busy node holds thousands of sessions.
    const bytes = packBytes(
      requireKey(init.sendKey),
      requireKey(init.receiveKey),
      init.handshakeHash,
    );
    this.#send = new TransportKey(bytes[0]);
    this.#receive = new TransportKey(bytes[1]);
    this.handshakeHash = bytes[2];
  }

  /**
   * A session with these transport keys, imported into WebCrypto on first
   * use. Keys and counters never touch disk.
   */
  static create(init: SessionInit): Session {
    return new Session(init);
  }

  /** How many of the two transport keys are imported into WebCrypto now. */
  get importedKeys(): number {
    return Number(this.#send.imported) + Number(this.#receive.imported);
  }

  /**
   * Releases the WebCrypto import of a key unused (no frame sealed, or none
   * opened) for `idleMs`: the session then holds its keys as bytes. Returns
   * how many keys were released.
   */
  releaseIdleKeys(now: number, idleMs: number): number {
    let released = 0;
    if (this.#send.imported && now - this.lastSent >= idleMs) {
      this.#send.release();
      released++;
    }
    if (this.#receive.imported && now - this.lastReceived >= idleMs) {
      this.#receive.release();
      released++;
    }
    return released;
  }

  /** When {@linkcode releaseIdleKeys} with `idleMs` would next release a key; Infinity with none imported. */
  keysIdleAt(idleMs: number): number {
    let at = Infinity;
    if (this.#send.imported) at = this.lastSent + idleMs;
    if (this.#receive.imported) at = Math.min(at, this.lastReceived + idleMs);
    return at;
  }

  /** Frames sent so far (the next send counter). */
  get sent(): number {
    return this.#sendCounter;
  }

  /**
   * {@linkcode seal}, resolving in the order of the calls: WebCrypto runs
   * encryptions in parallel and completes them out of order, and frames
   * sent as they complete would reach the peer reordered (which its stream
   * layer takes for loss). The encryptions still run in parallel.
   */
  sealInOrder(plaintext: Uint8Array, now: number): Promise<Uint8Array | null> {
    const sealing = this.seal(plaintext, now);
    const ordered = this.#sealTail.then(() => sealing);
    // Settled with nothing, so that the tail does not keep the last frame alive.
    this.#sealTail = ordered.then(ignore, ignore);
    return ordered;
  }

  /** {@linkcode open}, resolving in the order frames arrived (see {@linkcode sealInOrder}). */
  openInOrder(frame: DataFrame, now: number): Promise<OpenResult> {
    const opening = this.open(frame, now);
    const ordered = this.#openTail.then(() => opening);
    this.#openTail = ordered.then(ignore, ignore);
    return ordered;
  }

  /** Encrypts `plaintext` into a data frame, or null once the counter is exhausted. */
  async seal(plaintext: Uint8Array, now: number): Promise<Uint8Array | null> {
    const counter = this.#sendCounter;
    if (counter >= REJECT_AFTER_MESSAGES) return null;
    this.#sendCounter++;
    this.lastSent = now;
    // Anything we send answers the peer; data of ours expects an answer back.
    this.owedAnswerSince = null;
    if (plaintext.length > 0 && this.awaitingReplySince === null) {
      this.awaitingReplySince = now;
      this.onTimerStart?.(this);
    }
    const header = encodeDataHeader(this.remoteIndex, counter);
    const key = await this.#send.get();
    const sealed = await key.seal(nonceFromCounter(counter), plaintext, header);
    const frame = new Uint8Array(DATA_HEADER_SIZE + sealed.length);
    frame.set(header);
    frame.set(sealed, DATA_HEADER_SIZE);
    return frame;
  }

  /**
   * Authenticates and decrypts a data frame. The replay window is checked
   * before decrypting and checked again, and only then set, synchronously
   * after the tag verifies: WebCrypto completes out of order, so two copies of
   * one counter may both be in flight and only the first to verify may pass.
   */
  async open(frame: DataFrame, now: number): Promise<OpenResult> {
    if (!this.#replay.check(frame.counter)) return { ok: false, reason: "replay" };
    const size = frame.body.length;
    if (!this.#inflight.fits(size)) return { ok: false, reason: "busy" };
    this.#inflight.take(size);
    let plaintext: Uint8Array | null;
    try {
      const key = await this.#receive.get();
      plaintext = await key.open(
        nonceFromCounter(frame.counter),
        frame.body,
        frame.header,
      );
    } finally {
      this.#inflight.give(size);
    }
    if (plaintext === null) return { ok: false, reason: "auth" };
    if (!this.#replay.accept(frame.counter)) return { ok: false, reason: "replay" };
    this.lastReceived = now;
    this.received++;
    this.confirmed = true;
    this.awaitingReplySince = null;
    this.lastReceivedData = plaintext.length > 0;
    if (plaintext.length > 0 && this.owedAnswerSince === null) {
      this.owedAnswerSince = now;
      this.onTimerStart?.(this);
    }
    return { ok: true, plaintext };
  }
}
