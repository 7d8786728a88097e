/**
 * The session table: every handshake and session of one node, found by
 * session index, and every peer, keyed by its full Ed25519 key. It turns UDP
 * datagrams into authenticated inner packets, enforces the zero-trust gate
 * on every packet, and runs the WireGuard-style timers.
 *
 * What an index names, and how that changes (docs/PROTOCOL.md §5):
 *
 * ```text
 * connect, rekey ─> initiator ──message 2 ok──> session ──replaced──> previous ──10 s──> gone
 *                     │ key mismatch, self, 90 s     │ 180 s old, stranger idle 60 s, untrust
 *                     └─> gone                        └─> gone (with any rekey under way)
 * message 1 ─admitted─> responder (half-open) ──message 3 ok──> session
 *                     │ 15 s, 4 failed message 3s
 *                     └─> gone
 * ```
 *
 * A peer is handshaken again (a rekey) at 120 s (135 s as responder), after
 * 2^22 frames, when its data went unanswered for 5 s, or when an initiator
 * session stays unconfirmed for 5 s; failed rekeys back off to 40 s.
 *
 * @module
 */
import {
  COOKIE_LOAD_THRESHOLD,
  COOKIE_REPLY_RATE_PER_SOURCE,
  COOKIE_REPLY_RATE_TOTAL,
  DATA_ANSWER_MS,
  FINAL_RETRY_MS,
  HALF_OPEN_TIMEOUT_MS,
  HANDSHAKE_RATE_PER_KEY,
  KEEPALIVE_TIMEOUT_MS,
  MAX_FINAL_FAILURES,
  MAX_SEEN_EPHEMERALS,
  MAX_SESSIONS,
  PERSISTENT_KEEPALIVE_MS,
  PORT_TRUST,
  PREVIOUS_SESSION_GRACE_MS,
  RECONFIRM_RATE,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS,
  REKEY_ATTEMPT_TIME_MS,
  REKEY_BACKOFF_MAX_MS,
  REKEY_TIMEOUT_JITTER_MS,
  REKEY_TIMEOUT_MS,
  RELAY_FRAME_RATE,
  RESERVED_TRUSTED_SESSIONS,
  SESSION_FULL_SWEEP_MS,
  SESSION_KEY_IDLE_MS,
  SESSION_SILENCE_MS,
  SESSION_SWEEP_MS,
  TIMER_TICK_MS,
  UNTRUSTED_FRAME_RATE,
  UNTRUSTED_IDLE_MS,
} from "../constants.ts";
import { type Endpoint, formatEndpoint, RELAY_PORT } from "../discovery/endpoint.ts";
import { PilotError } from "../errors.ts";
import { compareBytes, constantTimeEqual } from "../bytes.ts";
import {
  type CookieReplyFrame,
  type DataFrame,
  decodeFrame,
  encodeFrame,
  type Frame,
  type HandshakeFinalFrame,
  type HandshakeInitFrame,
  type HandshakeRespFrame,
} from "../wire/frames.ts";
import { decodeInner, encodeInner, type PortPacket } from "../wire/inner.ts";
import { CookieJar, mac1Key, Mac1Verifier } from "./cookie.ts";
import { randomBytes } from "./crypto.ts";
import {
  type Expected,
  InitiatorHandshake,
  type LocalHandshakeIdentity,
  ResponderHandshake,
  WorkShed,
} from "./handshake.ts";
import type { DropCounters, DropReason } from "./drop_reason.ts";
import { HandshakeFailure, type PeerIdentity } from "./peer_identity.ts";
import { RateLimiter } from "./rate_limit.ts";
import { HandshakeAdmission, type Lane } from "./admission.ts";
import type { Session } from "./session.ts";

/** Timers, shortened by configuration in tests; never longer than the protocol's. */
export interface SessionTimers {
  /** Initiator rekeys once a session is this old. */
  rekeyAfterMs: number;
  /** Sessions are unusable once this old. */
  rejectAfterMs: number;
  /** Handshake retransmission interval. */
  rekeyTimeoutMs: number;
  /** A handshake attempt gives up after this long. */
  rekeyAttemptMs: number;
  /** Passive keepalive after receiving with nothing sent. */
  keepaliveMs: number;
  /** Persistent keepalive interval for every session; 0 (the default) turns it off. */
  persistentKeepaliveMs: number;
  /** How long a replaced session still decrypts packets in flight. */
  previousGraceMs: number;
  /** An untrusted peer's sessions end after this long without a port-444 datagram. */
  untrustedIdleMs: number;
  /** Data received is answered within this long (a keepalive if nothing else went back). */
  answerMs: number;
  /** A peer silent this long after we sent it data is handshaken again. */
  silenceMs: number;
}

/** The protocol's timers. */
export const DEFAULT_TIMERS: SessionTimers = {
  rekeyAfterMs: REKEY_AFTER_TIME_MS,
  rejectAfterMs: REJECT_AFTER_TIME_MS,
  rekeyTimeoutMs: REKEY_TIMEOUT_MS,
  rekeyAttemptMs: REKEY_ATTEMPT_TIME_MS,
  keepaliveMs: KEEPALIVE_TIMEOUT_MS,
  // Off: keepalives go only where a NAT mapping needs holding (`holdsMapping`).
  persistentKeepaliveMs: 0,
  previousGraceMs: PREVIOUS_SESSION_GRACE_MS,
  untrustedIdleMs: UNTRUSTED_IDLE_MS,
  answerMs: DATA_ANSWER_MS,
  silenceMs: SESSION_SILENCE_MS,
};

/** Our identity as the session table needs it. */
export interface LocalNodeIdentity extends LocalHandshakeIdentity {
  /** Our Ed25519 key. */
  publicKey: Uint8Array;
  /** Our address as 6 raw bytes. */
  addressBytes: Uint8Array;
}

/** What the session table needs from the node around it. */
export interface SessionManagerOptions {
  /** Our identity. */
  local: LocalNodeIdentity;
  /**
   * Sends one UDP datagram. `queue` "reply" marks an answer to a message 1
   * (a cookie reply, message 2): nothing orders it against the frames sent
   * to the same endpoint, so it may wait apart from them (`udp.ts`).
   */
  transmit(bytes: Uint8Array, to: Endpoint, queue?: "session" | "reply"): void;
  /** Asked on every packet: is this peer trusted right now? */
  isTrusted(peer: PeerIdentity): boolean;
  /** Receives every packet that passed authentication and the trust gate. */
  deliver(session: Session, packet: PortPacket): void;
  /** A peer got its first session. */
  onPeerUp?(peer: PeerIdentity): void;
  /** A peer lost its last session. */
  onPeerDown?(peer: PeerIdentity): void;
  /**
   * Datagram ports other than 444 that an untrusted peer may reach (a
   * rendezvous serves strangers on 445; a node hears its rendezvous there).
   * Asked per packet; none when absent.
   */
  untrustedPort?(peer: PeerIdentity, port: number): boolean;
  /**
   * Stream segments an untrusted peer may send (a rendezvous serves
   * strangers' mailbox streams; a node hears its rendezvous answer the
   * mailbox streams it opened there). Asked per segment; none when absent:
   * streams need trust.
   */
  untrustedStream?(
    peer: PeerIdentity,
    segment: { srcPort: number; dstPort: number; payload: Uint8Array },
  ): boolean;
  /**
   * Untrusted peers whose frames carry relayed traffic (a node's rendezvous;
   * every node at a rendezvous): they get `RELAY_FRAME_RATE` instead of
   * `UNTRUSTED_FRAME_RATE`. None when absent.
   */
  relaysFor?(peer: PeerIdentity): boolean;
  /**
   * Whether a session on a direct path to `peer` at `endpoint` needs
   * keepalives every 25 s to hold a NAT mapping open (a punched path).
   * Asked on every tick; none when absent (`timers.persistentKeepaliveMs`
   * still applies to every session).
   */
  holdsMapping?(peer: PeerIdentity, endpoint: Endpoint): boolean;
  /** A peer's path changed: `endpoint` is where its frames go now (a relay path, or UDP). */
  onPathChanged?(peer: PeerIdentity, endpoint: Endpoint): void;
  /** Refuse message 1 without a valid mac1 (stealth). */
  requireMac1?: boolean;
  /** Half-open handshakes at or above which message 1 needs a cookie. */
  cookieThreshold?: number;
  /** Timer overrides. */
  timers?: Partial<SessionTimers>;
  /** The highest static-key serial a peer proved before, as kept on disk (survives restarts). */
  serialFloor?(peerKeyHex: string): number;
  /** Monotonic clock in ms (default `performance.now`). */
  now?: () => number;
  /** Waits `ms` on that clock (default `setTimeout`): handshake work delayed by the work budget. */
  sleep?: (ms: number) => Promise<void>;
}

export type { DropCounters, DropReason } from "./drop_reason.ts";

/** Options of {@linkcode SessionManager.connect}. */
export interface ConnectOptions {
  /** Always handshake with the endpoint, even when a live session could be reused. */
  fresh?: boolean;
}

/** One peer as `pilot peers` shows it. */
export interface PeerStatus {
  /** The peer's identity. */
  identity: PeerIdentity;
  /** Where its last authenticated packet came from (null without a session). */
  endpoint: Endpoint | null;
  /** Whether it is trusted right now. */
  trusted: boolean;
  /** Age of the current session (seconds), null when none. */
  sessionAgeS: number | null;
  /** Round-trip time of the last handshake we initiated (ms). */
  rttMs: number | null;
  /** Packets from it dropped by the trust gate. */
  dropped: number;
  /** Milliseconds since its last authenticated frame (on either of its sessions), or null. */
  idleMs: number | null;
}

interface PeerState {
  identity: PeerIdentity;
  current: Session | undefined;
  previous: Session | undefined;
  previousUntil: number;
  rekey: Attempt | undefined;
  rekeyStarting: boolean;
  rekeyNotBefore: number;
  /** Rekeys in a row that failed: the wait before the next one doubles with each. */
  rekeyFailures: number;
  /** Monotonic time of the last port-444 datagram either way (or of its first session). */
  trustTrafficAt: number;
  dropped: number;
  rttMs: number | null;
  /** Set when a rekey found another key at the peer's endpoint; cleared by its next packet. */
  keyChanged?: PilotError;
  /** The relay path it was last reached or heard on: where its frames go when the direct path dies. */
  relayPath?: Endpoint;
  /** Monotonic time of its last authenticated frame over UDP (not relayed), or -Infinity. */
  directAt: number;
  /** Whether the path last reported (onPathChanged, or the first session's) went through a relay. */
  reportedRelayed?: boolean;
}

interface Waiter {
  resolve(peer: PeerIdentity): void;
  reject(err: Error): void;
}

interface Attempt {
  key: string;
  handshake: InitiatorHandshake;
  /** Monotonic start of the whole attempt (fresh handshakes inside it keep it). */
  createdAt: number;
  nextSendAt: number;
  waiters: Set<Waiter>;
}

type IndexEntry =
  | { kind: "session"; session: Session }
  | { kind: "initiator"; attempt: Attempt }
  | { kind: "responder"; handshake: ResponderHandshake; ephemeral: string; lane: Lane };

const EMPTY = new Uint8Array(0);

/** Every handshake, session and peer of one node. */
export class SessionManager {
  #o: SessionManagerOptions;
  #timers: SessionTimers;
  #now: () => number;
  #sleep: (ms: number) => Promise<void>;
  #cookieSources: RateLimiter;
  #cookieTotal: RateLimiter;
  #untrustedFrames: RateLimiter;
  #relayFrames: RateLimiter;
  #reconfirms: RateLimiter;
  #byIndex = new Map<number, IndexEntry>();
  #peers = new Map<string, PeerState>();
  #attempts = new Map<string, Attempt>();
  #starting = new Map<string, Promise<Attempt>>();
  #responders = new Map<string, ResponderHandshake>();
  #seenEphemerals = new Map<string, number>();
  #nextSweepAt = -Infinity;
  #sweepMs: number;
  #nextFullSweepAt = -Infinity;
  #fullSweepMs: number;
  /** Peers (by key) every sweep walks: a timer of theirs is due before the next full sweep. */
  #active = new Set<string>();
  /** One function for every session's `onTimerStart`, not a closure each. */
  #timerStarted = (session: Session) => void this.#active.add(session.peer.keyHex);
  /** Lanes, rates, work budget and slots of handshake work. */
  #admission: HandshakeAdmission;
  #keyLimiter: RateLimiter;
  #cookies: CookieJar;
  #mac1: Promise<Mac1Verifier>;
  #sessions = 0;
  #completing = new Map<number, Promise<void>>();
  /** Highest static-key serial seen per key; outlives sessions (bounded, oldest forgotten). */
  #serials = new Map<string, number>();
  /** Datagrams dropped, by reason. */
  readonly drops: DropCounters = {};

  /** Creates an empty table. */
  constructor(options: SessionManagerOptions) {
    this.#o = options;
    this.#timers = clampTimers(options.timers ?? {});
    // A timer configured shorter than a sweep still fires on time: every tick sweeps then.
    const shortest = Math.min(...Object.values(this.#timers).filter((ms) => ms > 0));
    this.#sweepMs = shortest < SESSION_SWEEP_MS ? 0 : SESSION_SWEEP_MS;
    this.#fullSweepMs = this.#sweepMs === 0 ? 0 : SESSION_FULL_SWEEP_MS;
    this.#now = options.now ?? (() => performance.now());
    this.#sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.#admission = new HandshakeAdmission(this.#now, () => this.#trustedEndpoints());
    this.#keyLimiter = new RateLimiter({
      ...HANDSHAKE_RATE_PER_KEY,
      maxKeys: 65_536,
      now: this.#now,
    });
    this.#cookies = new CookieJar(this.#now);
    this.#cookieSources = new RateLimiter({
      ...COOKIE_REPLY_RATE_PER_SOURCE,
      maxKeys: 65_536,
      now: this.#now,
    });
    this.#cookieTotal = new RateLimiter({ ...COOKIE_REPLY_RATE_TOTAL, maxKeys: 1, now: this.#now });
    this.#untrustedFrames = new RateLimiter({
      ...UNTRUSTED_FRAME_RATE,
      maxKeys: MAX_SESSIONS,
      now: this.#now,
    });
    this.#relayFrames = new RateLimiter({
      ...RELAY_FRAME_RATE,
      maxKeys: MAX_SESSIONS,
      now: this.#now,
    });
    this.#reconfirms = new RateLimiter({
      ...RECONFIRM_RATE,
      maxKeys: MAX_SESSIONS,
      now: this.#now,
    });
    this.#mac1 = Mac1Verifier.create(options.local.publicKey);
  }

  /** Number of established sessions (current and previous). */
  get sessionCount(): number {
    return this.#sessions;
  }

  /** Whether `endpoint` is a trusted peer's current endpoint (as of the last tick or session). */
  isKnownEndpoint(endpoint: Endpoint): boolean {
    return this.#admission.isKnownEndpoint(endpoint);
  }

  /** Expensive handshake computations admitted: message 2 written, message 3 checked. */
  get workSpent(): { readonly init: number; readonly final: number; readonly identity: number } {
    return this.#admission.workSpent;
  }

  /**
   * Keys (sources, endpoints, peers) its rate limiters track: bounded, and
   * forgotten on the sweep after their buckets are full again, so a flood
   * from many sources leaves nothing behind once it stops.
   */
  get rateKeysTracked(): number {
    return this.#admission.keysTracked +
      this.#rateLimiters().reduce((n, l) => n + l.size, 0);
  }

  #rateLimiters(): RateLimiter[] {
    return [
      this.#keyLimiter,
      this.#cookieSources,
      this.#cookieTotal,
      this.#untrustedFrames,
      this.#relayFrames,
      this.#reconfirms,
    ];
  }

  /** Number of half-open responder handshakes. */
  get halfOpenCount(): number {
    return this.#responders.size;
  }

  #drop(reason: DropReason): void {
    this.drops[reason] = (this.drops[reason] ?? 0) + 1;
  }

  /** Handles one received UDP datagram. Never throws for anything the network sends. */
  async handle(bytes: Uint8Array, from: Endpoint): Promise<void> {
    let frame: Frame;
    try {
      frame = decodeFrame(bytes);
    } catch {
      this.#drop("malformed");
      return;
    }
    switch (frame.type) {
      case "init":
        return await this.#onInit(frame, bytes, from);
      case "resp":
        return await this.#onResp(frame, from);
      case "final":
        return await this.#onFinal(frame, bytes, from);
      case "cookie":
        return await this.#onCookie(frame);
      case "data":
        return await this.#onData(frame, from);
    }
  }

  /**
   * Message 1, checks cheapest first: MACs (one HMAC each) and map lookups,
   * then the lanes, rates and work budget (`admission.ts`), and only then
   * Diffie-Hellman.
   */
  async #onInit(frame: HandshakeInitFrame, bytes: Uint8Array, from: Endpoint): Promise<void> {
    let mac1Ok: boolean | undefined;
    const mac1Valid = async () => mac1Ok ??= await (await this.#mac1).verify(bytes, frame.mac1);
    if (this.#o.requireMac1 && !(await mac1Valid())) return this.#drop("mac1");
    const ephemeral = frame.noise.subarray(0, 32).toHex();
    const existing = this.#responders.get(ephemeral);
    const source = formatEndpoint(from);
    const underLoad = this.#responders.size >= (this.#o.cookieThreshold ?? COOKIE_LOAD_THRESHOLD);
    const sameSource = existing !== undefined && formatEndpoint(existing.endpoint) === source;
    const proven = !isZero(frame.mac2) &&
      await this.#cookies.verifyMac2(bytes, frame.mac2, from);
    // Under load, nothing (not even a cached message 2) goes to a source that
    // has not proved it can receive there.
    if (underLoad && !sameSource && !proven) return await this.#sendCookie(frame, from);
    if (existing !== undefined) {
      // A retransmitted message 1: answer with the cached message 2, same bytes.
      if (constantTimeEqual(existing.initNoise, frame.noise)) {
        this.#o.transmit(existing.response, from, "reply");
      } else this.#drop("duplicate_ephemeral");
      return;
    }
    if (this.#seenEphemerals.has(ephemeral)) return this.#drop("replayed_init");
    const admitted = await this.#admission.admitInit({
      from,
      proven,
      mac1Valid,
      halfOpen: this.#responders.size,
    });
    if (admitted.kind === "cookie") return await this.#sendCookie(frame, from);
    if (admitted.kind === "drop") return this.#drop(admitted.reason);
    const lane = admitted.lane;
    const localIndex = this.#allocateIndex();
    let handshake: ResponderHandshake;
    try {
      if (admitted.waitMs > 0) await this.#sleep(admitted.waitMs);
      handshake = await this.#admission.compute(lane, () =>
        ResponderHandshake.start({
          local: this.#o.local,
          localIndex,
          init: frame,
          endpoint: from,
          now: this.#now(),
        }));
    } catch {
      return this.#drop("bad_init");
    } finally {
      this.#admission.done();
    }
    const raced = this.#responders.get(ephemeral);
    if (raced !== undefined || this.#seenEphemerals.has(ephemeral)) {
      // Two copies were processed at once: answer this one with the first's message 2.
      if (raced !== undefined && constantTimeEqual(raced.initNoise, frame.noise)) {
        this.#o.transmit(raced.response, from, "reply");
      }
      return this.#drop("duplicate_ephemeral");
    }
    this.#responders.set(ephemeral, handshake);
    this.#seenEphemerals.set(ephemeral, this.#now() + this.#timers.rejectAfterMs);
    if (this.#seenEphemerals.size > MAX_SEEN_EPHEMERALS) {
      this.#seenEphemerals.delete(this.#seenEphemerals.keys().next().value!);
    }
    this.#byIndex.set(localIndex, { kind: "responder", handshake, ephemeral, lane });
    this.#o.transmit(handshake.response, from, "reply");
  }

  async #sendCookie(frame: HandshakeInitFrame, to: Endpoint): Promise<void> {
    // Shed before the MAC: a flood of message 1s gets a bounded number of
    // answers per source endpoint and in all; the rest cost a map lookup. A
    // trusted peer's current endpoint is never shed, so spoofing its exact
    // address cannot keep it from proving itself.
    const shed = !this.#admission.isKnownEndpoint(to) &&
      (!this.#cookieSources.allow(formatEndpoint(to)) || !this.#cookieTotal.allow("all"));
    if (shed) return this.#drop("cookie_rate");
    const reply: CookieReplyFrame = {
      type: "cookie",
      receiverIndex: frame.senderIndex,
      echo: frame.noise.subarray(0, 16),
      cookie: await this.#cookies.cookieFor(to),
    };
    this.#o.transmit(encodeFrame(reply), to, "reply");
    this.#drop("cookie_sent");
  }

  async #onResp(frame: HandshakeRespFrame, from: Endpoint): Promise<void> {
    const entry = this.#byIndex.get(frame.receiverIndex);
    if (entry?.kind === "session") {
      // The responder answered a repeated message 1: repeat message 3.
      const s = entry.session;
      if (s.initiator && !s.confirmed && s.finalFrame) this.#o.transmit(s.finalFrame, s.endpoint);
      return this.#drop("stale_resp");
    }
    if (entry?.kind !== "initiator" || entry.attempt.handshake.spent) {
      return this.#drop("unknown_index");
    }
    const attempt = entry.attempt;
    const handshake = attempt.handshake;
    let result;
    try {
      result = await handshake.complete(frame, from, this.#now());
    } catch (e) {
      attempt.nextSendAt = this.#now() + this.#timers.rekeyTimeoutMs +
        Math.random() * REKEY_TIMEOUT_JITTER_MS;
      if (e instanceof HandshakeFailure && e.reason.startsWith("unexpected_")) {
        const changed = new PilotError(
          "key_changed",
          e.message,
          "check the peer's identity; nothing was revealed to it",
        );
        // A rekey whose endpoint now answers with another key: until the peer
        // proves itself again (any authenticated packet), `connect` reports
        // the change instead of handing out a session that may lead nowhere.
        // The session itself stays: the real peer may come back to it.
        const stale = [...this.#peers.values()].find((p) => p.rekey === attempt);
        if (stale !== undefined) stale.keyChanged = changed;
        this.#finishAttempt(attempt, changed);
      }
      return this.#drop(e instanceof HandshakeFailure ? e.reason : "bad_resp");
    }
    const { session, final } = result;
    if (this.#isSelf(session.peer)) {
      // Our own endpoint answered (or something relaying to it): a session
      // with ourselves would only show up in `peers` and route to nowhere.
      this.#finishAttempt(
        attempt,
        new PilotError(
          "invalid_argument",
          `Cannot handshake with ${formatEndpoint(handshake.endpoint)}: it is this node itself`,
          "give the endpoint, address or key of another node",
        ),
      );
      return this.#drop("self");
    }
    session.finalFrame = final;
    session.finalSentAt = this.#now();
    if (!this.#install(session, handshake.lastSentAt)) {
      this.#finishAttempt(
        attempt,
        new PilotError("rate_limited", "Too many sessions", "try again later"),
      );
      return;
    }
    this.#o.transmit(final, from);
    this.#finishAttempt(attempt, session.peer);
  }

  async #onFinal(frame: HandshakeFinalFrame, bytes: Uint8Array, from: Endpoint): Promise<void> {
    const entry = this.#byIndex.get(frame.receiverIndex);
    if (entry?.kind === "session") {
      const s = entry.session;
      // The initiator repeats message 3 until it hears from us: confirm again.
      if (
        !s.initiator && s.finalFrame && constantTimeEqual(s.finalFrame, bytes) &&
        this.#reconfirms.allow(String(s.localIndex))
      ) {
        await this.#sendOn(s, EMPTY);
      } else this.#drop("stale_final");
      return;
    }
    if (entry?.kind !== "responder" || entry.handshake.spent) return this.#drop("unknown_index");
    const handshake = entry.handshake;
    // A repeat of message 3 while the first copy is still being processed.
    if (handshake.busy) return this.#drop("final_in_progress");
    // A replay of a message 3 that failed would fail again: it costs no crypto.
    if (handshake.failedBefore(frame)) return this.#drop("final_failed");
    // The initiator repeats message 3 every second until confirmed, so a
    // message 3 over budget is only delayed.
    const admitted = this.#admission.admitFinal(handshake.endpoint, entry.lane);
    if (admitted.kind === "drop") return this.#drop(admitted.reason);
    // Data the initiator sends right after message 3 may arrive while the
    // session is still being made: it waits for this instead of being dropped.
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#completing.set(frame.receiverIndex, promise);
    try {
      let session: Session;
      try {
        if (admitted.waitMs > 0) {
          // Repeats that arrive meanwhile are dropped as in progress.
          handshake.busy = true;
          await this.#sleep(admitted.waitMs);
        }
        // A wait for the identity's work (below) keeps the turn: what waits
        // behind it needs the same budget.
        session = await this.#admission.compute(
          entry.lane,
          () =>
            handshake.complete(frame, from, this.#now(), async () => {
              const waitMs = this.#admission.chargeIdentity(handshake.endpoint, entry.lane);
              if (waitMs === false) return false;
              if (waitMs > 0) await this.#sleep(waitMs);
              return true;
            }),
        );
      } catch (e) {
        // The handshake stays as it was after message 2: a forged or corrupted
        // message 3 cannot end it; the genuine one still completes it. Only
        // whoever holds its keys (the initiator, or an on-path attacker
        // altering its message 3) gets past Noise's first check, so after a
        // few failures the initiator is misbehaving: the half-open state goes.
        if (e instanceof WorkShed) return this.#drop("work_budget");
        if (handshake.failures >= MAX_FINAL_FAILURES) {
          this.#responders.delete(entry.ephemeral);
          this.#byIndex.delete(frame.receiverIndex);
        }
        return this.#drop(e instanceof HandshakeFailure ? e.reason : "bad_final");
      } finally {
        this.#admission.done();
      }
      this.#responders.delete(entry.ephemeral);
      this.#byIndex.delete(frame.receiverIndex);
      if (this.#isSelf(session.peer)) return this.#drop("self");
      if (!this.#keyLimiter.allow(session.peer.keyHex)) return this.#drop("rate_limited");
      session.finalFrame = Uint8Array.from(bytes);
      if (!this.#install(session, null)) return;
      await this.#sendOn(session, EMPTY);
    } finally {
      this.#completing.delete(frame.receiverIndex);
      resolve();
    }
  }

  async #onCookie(frame: CookieReplyFrame): Promise<void> {
    const entry = this.#byIndex.get(frame.receiverIndex);
    if (entry?.kind !== "initiator") return this.#drop("unknown_index");
    const attempt = entry.attempt;
    if (!constantTimeEqual(frame.echo, attempt.handshake.echo)) return this.#drop("bad_cookie");
    if (!attempt.handshake.takeCookie(frame.cookie)) return this.#drop("cookie_ignored");
    await this.#sendInit(attempt);
  }

  async #onData(frame: DataFrame, from: Endpoint): Promise<void> {
    let entry = this.#byIndex.get(frame.receiverIndex);
    const completing = entry?.kind === "session"
      ? undefined
      : this.#completing.get(frame.receiverIndex);
    if (completing !== undefined) {
      await completing;
      entry = this.#byIndex.get(frame.receiverIndex);
    }
    if (entry?.kind !== "session") return this.#drop("unknown_index");
    const s = entry.session;
    const now = this.#now();
    if (now - s.createdAt >= this.#timers.rejectAfterMs) return this.#drop("expired");
    // An untrusted peer has a few datagrams a second to send: a flood of its
    // frames is shed here, before each would cost a decryption.
    if (!this.#o.isTrusted(s.peer)) {
      const frames = this.#o.relaysFor?.(s.peer) ? this.#relayFrames : this.#untrustedFrames;
      if (!frames.allow(s.peer.keyHex)) return this.#drop("untrusted_rate");
    }
    const opened = await s.openInOrder(frame, now);
    if (!opened.ok) return this.#drop(opened.reason);
    const peer = this.#peers.get(s.peer.keyHex);
    if (peer !== undefined) {
      delete peer.keyChanged;
      this.#roam(peer, s, from, now);
    } else s.endpoint = from;
    let packet;
    try {
      packet = decodeInner(opened.plaintext);
    } catch {
      return this.#drop("malformed_inner");
    }
    if (packet.kind === "keepalive") return;
    if (
      !constantTimeEqual(packet.srcAddress, s.peer.addressBytes) ||
      !constantTimeEqual(packet.dstAddress, this.#o.local.addressBytes)
    ) {
      return this.#drop("inner_address");
    }
    const open = packet.kind === "datagram"
      ? this.#openToStrangers(s.peer, packet.dstPort)
      : packet.kind === "stream" &&
        (this.#o.untrustedStream?.(s.peer, packet) ?? false);
    if (open && peer) peer.trustTrafficAt = now;
    if (!this.#o.isTrusted(s.peer)) {
      // Zero trust: an untrusted peer reaches the trust service's datagrams
      // (and those of ports the node opens to strangers) and nothing else.
      // Its stream segments never reach the stream layer, whose resets would
      // tell it which ports listen, unless the node opens that stream port
      // to it (mailboxes).
      if (!open) {
        if (peer) peer.dropped++;
        return this.#drop(packet.kind === "stream" ? "not_trusted_stream" : "not_trusted");
      }
    }
    this.#o.deliver(s, packet);
  }

  /**
   * Roaming: a session's endpoint follows the last authenticated packet, with
   * one exception. A relayed frame does not move a path that carried a direct
   * frame within the last `silenceMs` (frames still in flight on the relay
   * after an upgrade), so a punched path is not dropped for a slower one.
   */
  #roam(peer: PeerState, s: Session, from: Endpoint, now: number): void {
    const relayed = from.port === RELAY_PORT;
    if (relayed) peer.relayPath = from;
    else peer.directAt = now;
    const sticky = relayed && s.endpoint.port !== RELAY_PORT &&
      now - peer.directAt < this.#timers.silenceMs;
    if (sticky || formatEndpoint(s.endpoint) === formatEndpoint(from)) return;
    s.endpoint = from;
    this.#reportPath(peer);
  }

  /**
   * Tells onPathChanged when the current session's path changed kind (direct
   * or relayed) since the last report: called after every change of the
   * current session or of its endpoint, so events and `peers()` never
   * disagree. A peer's first session sets the kind without an event.
   */
  #reportPath(peer: PeerState): void {
    const s = peer.current;
    if (s === undefined) return;
    const relayed = s.endpoint.port === RELAY_PORT;
    const before = peer.reportedRelayed;
    peer.reportedRelayed = relayed;
    if (before !== undefined && before !== relayed) {
      this.#o.onPathChanged?.(peer.identity, s.endpoint);
    }
  }

  /** Whether an untrusted peer's datagrams to `port` pass the gate (444, or a port opened to it). */
  #openToStrangers(peer: PeerIdentity, port: number): boolean {
    return port === PORT_TRUST || (this.#o.untrustedPort?.(peer, port) ?? false);
  }

  #isSelf(peer: PeerIdentity): boolean {
    return constantTimeEqual(peer.publicKey, this.#o.local.publicKey);
  }

  /** Adds a session to the table; false when it was refused. */
  #install(session: Session, sentAt: number | null): boolean {
    const key = session.peer.keyHex;
    let peer = this.#peers.get(key);
    const trusted = this.#o.isTrusted(session.peer);
    const limit = trusted ? MAX_SESSIONS : MAX_SESSIONS - RESERVED_TRUSTED_SESSIONS;
    if (this.#sessions >= limit && peer === undefined) {
      this.#drop("sessions_full");
      return false;
    }
    const highest = Math.max(this.#serials.get(key) ?? 0, this.#o.serialFloor?.(key) ?? 0);
    if (session.peer.staticSerial < highest) {
      // An older static key than one this peer already proved: refuse the rollback.
      this.#drop("old_static_key");
      return false;
    }
    const now = this.#now();
    if (peer === undefined) {
      peer = {
        identity: session.peer,
        current: undefined,
        previous: undefined,
        previousUntil: 0,
        rekey: undefined,
        rekeyStarting: false,
        rekeyNotBefore: 0,
        rekeyFailures: 0,
        trustTrafficAt: now,
        dropped: 0,
        rttMs: null,
        directAt: -Infinity,
      };
      this.#peers.set(key, peer);
    }
    peer.identity = session.peer;
    this.#serials.delete(key);
    this.#serials.set(key, Math.max(highest, session.peer.staticSerial));
    if (this.#serials.size > MAX_SEEN_EPHEMERALS) {
      this.#serials.delete(this.#serials.keys().next().value!);
    }
    if (sentAt !== null) peer.rttMs = Math.round((now - sentAt) * 100) / 100;
    this.#byIndex.set(session.localIndex, { kind: "session", session });
    this.#sessions++;
    const old = peer.current;
    let keep = session;
    let spare = old;
    if (old !== undefined && this.#prefersOld(old, session, now)) {
      keep = old;
      spare = session;
    }
    if (peer.previous !== undefined && peer.previous !== spare) this.#forget(peer.previous);
    peer.current = keep;
    peer.previous = spare;
    peer.previousUntil = now + this.#timers.previousGraceMs;
    session.onTimerStart = this.#timerStarted;
    // A new session's timers (message 3, confirmation, the previous one's grace) run finely.
    this.#active.add(key);
    if (keep.endpoint.port === RELAY_PORT) peer.relayPath = keep.endpoint;
    // A handshake through the relay (a rekey both sides started when the
    // path went quiet) does not move a path that carried a direct frame
    // within the silence window, as in #roam: the new session keeps it.
    if (
      old !== undefined && keep !== old && keep.endpoint.port === RELAY_PORT &&
      old.endpoint.port !== RELAY_PORT && now - peer.directAt < this.#timers.silenceMs
    ) {
      keep.endpoint = old.endpoint;
    }
    // A new session over another kind of path (a rekey through the relay
    // after the direct path died, or the other way) is a change of path too.
    this.#reportPath(peer);
    this.#noteKnown(session.peer, keep.endpoint);
    if (old === undefined) this.#o.onPeerUp?.(session.peer);
    return true;
  }

  /** Gives a trusted peer's endpoint the known lane for message 1 (until the next sweep). */
  #noteKnown(peer: PeerIdentity, endpoint: Endpoint): void {
    if (this.#o.isTrusted(peer)) this.#admission.noteKnown(endpoint);
  }

  /**
   * Every trusted peer with a session (by key), and where its current
   * session sends: a walk of them all without building {@linkcode peers}'s
   * status objects.
   */
  *trustedPaths(): Iterable<[keyHex: string, endpoint: Endpoint]> {
    for (const [key, peer] of this.#peers) {
      if (peer.current !== undefined && this.#o.isTrusted(peer.identity)) {
        yield [key, peer.current.endpoint];
      }
    }
  }

  /** The current endpoints of trusted peers: the known lane, read by admission when it needs it. */
  *#trustedEndpoints(): Iterable<Endpoint> {
    for (const [, endpoint] of this.trustedPaths()) yield endpoint;
  }

  /**
   * Tie-break for handshakes that crossed: when both sides initiated at about
   * the same time, both keep the session whose initiator has the smaller key,
   * so they agree without talking.
   */
  #prefersOld(old: Session, fresh: Session, now: number): boolean {
    if (now - old.createdAt >= this.#timers.rekeyTimeoutMs) return false;
    if (old.initiator === fresh.initiator) return false;
    const ours = this.#o.local.publicKey;
    const theirs = fresh.peer.publicKey;
    const oldInitiator = old.initiator ? ours : theirs;
    const freshInitiator = fresh.initiator ? ours : theirs;
    return compareBytes(oldInitiator, freshInitiator) < 0;
  }

  #forget(session: Session): void {
    if (this.#byIndex.get(session.localIndex)?.kind === "session") {
      this.#byIndex.delete(session.localIndex);
      this.#sessions--;
    }
  }

  #allocateIndex(): number {
    for (;;) {
      const v = new DataView(randomBytes(4).buffer).getUint32(0);
      if (v !== 0 && !this.#byIndex.has(v)) return v;
    }
  }

  async #sendInit(attempt: Attempt): Promise<void> {
    const now = this.#now();
    attempt.handshake.lastSentAt = now;
    attempt.nextSendAt = now + this.#timers.rekeyTimeoutMs +
      Math.random() * REKEY_TIMEOUT_JITTER_MS;
    this.#o.transmit(await attempt.handshake.frame(), attempt.handshake.endpoint);
  }

  async #startAttempt(key: string, endpoint: Endpoint, expected: Expected): Promise<Attempt> {
    const localIndex = this.#allocateIndex();
    const handshake = await InitiatorHandshake.start({
      local: this.#o.local,
      localIndex,
      endpoint,
      expected,
      mac1Key: expected.publicKey ? await mac1Key(expected.publicKey) : undefined,
      now: this.#now(),
    });
    const attempt: Attempt = {
      key,
      handshake,
      createdAt: handshake.startedAt,
      nextSendAt: 0,
      waiters: new Set(),
    };
    this.#byIndex.set(localIndex, { kind: "initiator", attempt });
    return attempt;
  }

  #finishAttempt(attempt: Attempt, outcome: PeerIdentity | Error): void {
    if (this.#attempts.get(attempt.key) === attempt) this.#attempts.delete(attempt.key);
    if (this.#byIndex.get(attempt.handshake.localIndex)?.kind === "initiator") {
      this.#byIndex.delete(attempt.handshake.localIndex);
    }
    for (const p of this.#peers.values()) {
      if (p.rekey !== attempt) continue;
      p.rekey = undefined;
      // A failed rekey is retried on the handshake schedule, not on every
      // tick, and ever later while the peer keeps not answering.
      if (outcome instanceof Error) {
        const wait = Math.min(
          this.#timers.rekeyTimeoutMs * 2 ** p.rekeyFailures,
          Math.max(REKEY_BACKOFF_MAX_MS, this.#timers.rekeyTimeoutMs),
        );
        p.rekeyFailures++;
        p.rekeyNotBefore = this.#now() + wait + Math.random() * REKEY_TIMEOUT_JITTER_MS;
      } else p.rekeyFailures = 0;
    }
    for (const w of attempt.waiters) {
      if (outcome instanceof Error) w.reject(outcome);
      else w.resolve(outcome);
    }
    attempt.waiters.clear();
  }

  /**
   * Opens (or reuses) a session with whoever answers at `endpoint`; with an
   * expectation, the peer must hold that key or address, checked before we
   * reveal who we are. With `fresh`, a live session is not reused: the
   * endpoint is always contacted, so the answer names whoever is there now
   * (a node replaced by another identity on the same endpoint shows up).
   */
  async connect(
    endpoint: Endpoint,
    expected: Expected,
    timeoutMs: number,
    options: ConnectOptions = {},
  ): Promise<PeerIdentity> {
    if (
      expected.publicKey !== undefined &&
      constantTimeEqual(expected.publicKey, this.#o.local.publicKey)
    ) {
      throw new PilotError(
        "invalid_argument",
        "Cannot handshake with this node's own key",
        "give the key, address or endpoint of another node",
      );
    }
    const existing = options.fresh ? undefined : this.#findPeer(endpoint, expected);
    if (existing?.current !== undefined) {
      if (existing.keyChanged !== undefined) throw existing.keyChanged;
      return existing.identity;
    }
    const key = `${formatEndpoint(endpoint)}|${expected.publicKey?.toHex() ?? ""}|${
      expected.address ?? ""
    }`;
    let attempt = this.#attempts.get(key);
    if (attempt === undefined) {
      // Concurrent first contacts share one attempt: it is registered before
      // anything is awaited.
      let starting = this.#starting.get(key);
      if (starting === undefined) {
        starting = this.#startAttempt(key, endpoint, expected).then(async (a) => {
          this.#attempts.set(key, a);
          await this.#sendInit(a);
          return a;
        }).finally(() => this.#starting.delete(key));
        this.#starting.set(key, starting);
      }
      attempt = await starting;
    }
    const { promise, resolve, reject } = Promise.withResolvers<PeerIdentity>();
    const waiter: Waiter = { resolve, reject };
    attempt.waiters.add(waiter);
    const timer = setTimeout(() => {
      attempt.waiters.delete(waiter);
      reject(
        new PilotError(
          "unreachable",
          `No handshake answer from ${formatEndpoint(endpoint)} within ${timeoutMs} ms`,
          "check that a pilot daemon listens there and UDP is not blocked",
        ),
      );
    }, timeoutMs);
    try {
      return await promise;
    } finally {
      clearTimeout(timer);
    }
  }

  #findPeer(endpoint: Endpoint, expected: Expected): PeerState | undefined {
    if (expected.publicKey !== undefined) return this.#peers.get(expected.publicKey.toHex());
    const text = formatEndpoint(endpoint);
    for (const p of this.#peers.values()) {
      if (p.current === undefined || formatEndpoint(p.current.endpoint) !== text) continue;
      if (expected.address !== undefined && expected.address !== p.identity.address) continue;
      if (expected.hostname !== undefined && expected.hostname !== p.identity.hostname) continue;
      return p;
    }
    return undefined;
  }

  /**
   * Sends an inner packet to a peer over its current session; false when
   * there is none. With `to`, the frame goes there instead of the session's
   * endpoint (a hole-punching probe), which stays as it is.
   */
  async send(
    peerKeyHex: string,
    packet: Omit<PortPacket, "srcAddress" | "dstAddress">,
    options: { to?: Endpoint } = {},
  ): Promise<boolean> {
    const peer = this.#peers.get(peerKeyHex);
    const s = peer?.current;
    const now = this.#now();
    if (s === undefined || now - s.createdAt >= this.#timers.rejectAfterMs) return false;
    if (packet.kind === "datagram" && this.#openToStrangers(peer!.identity, packet.dstPort)) {
      peer!.trustTrafficAt = now;
    }
    const ok = await this.#sendOn(
      s,
      encodeInner({
        ...packet,
        srcAddress: this.#o.local.addressBytes,
        dstAddress: s.peer.addressBytes,
      }),
      options.to,
    );
    if (s.sent >= REKEY_AFTER_MESSAGES) this.#startRekey(peer!);
    return ok;
  }

  async #sendOn(s: Session, plaintext: Uint8Array, to?: Endpoint): Promise<boolean> {
    const awaiting = s.awaitingReplySince;
    const frame = await s.sealInOrder(plaintext, this.#now());
    if (frame === null) return false;
    // A probe to another endpoint (hole punching) may well be lost: it never
    // makes the session look silent.
    if (to !== undefined) s.awaitingReplySince = awaiting;
    this.#o.transmit(frame, to ?? s.endpoint);
    return true;
  }

  #startRekey(peer: PeerState): void {
    if (peer.rekey !== undefined || peer.rekeyStarting || peer.current === undefined) return;
    if (this.#now() < peer.rekeyNotBefore) return;
    peer.rekeyStarting = true;
    const endpoint = peer.current.endpoint;
    const key = `rekey|${peer.identity.keyHex}`;
    // A rekey must reach the same key: the expectation is the full key.
    const expected: Expected = { publicKey: peer.identity.publicKey };
    this.#startAttempt(key, endpoint, expected).then(async (attempt) => {
      if (this.#peers.get(peer.identity.keyHex) !== peer) {
        // The peer went away while the handshake was being built.
        this.#byIndex.delete(attempt.handshake.localIndex);
        return;
      }
      peer.rekey = attempt;
      this.#attempts.set(key, attempt);
      await this.#sendInit(attempt);
    }).catch(() => this.#drop("rekey_failed")).finally(() => peer.rekeyStarting = false);
  }

  /**
   * Whether {@linkcode tick} is due every TIMER_TICK_MS now: while a
   * handshake is being tried (its retries are timed finer than a sweep), or
   * always when a timer is configured shorter than a sweep. Otherwise once
   * every SESSION_SWEEP_MS is enough. A handshake begun meanwhile sends its
   * first retry no sooner than rekeyTimeoutMs (at least a sweep) later.
   */
  get busy(): boolean {
    return this.#sweepMs === 0 || this.#attempts.size > 0;
  }

  /**
   * Runs the timers: retransmissions, rekeys, keepalives, expiry. Call every
   * TIMER_TICK_MS while {@linkcode busy}, else at least every SESSION_SWEEP_MS.
   */
  async tick(): Promise<void> {
    const now = this.#now();
    const t = this.#timers;
    for (const attempt of [...this.#attempts.values()]) {
      const h = attempt.handshake;
      if (now - attempt.createdAt >= t.rekeyAttemptMs) {
        this.#finishAttempt(
          attempt,
          new PilotError("unreachable", `Handshake with ${formatEndpoint(h.endpoint)} gave up`),
        );
        continue;
      }
      if (now < attempt.nextSendAt) continue;
      // A new ephemeral key when message 2 failed to authenticate (the state is
      // spent), or when the responder has forgotten our message 1 by now: a
      // repeat of the cached bytes would only be refused as a replay.
      if (h.spent || now - h.startedAt + t.rekeyTimeoutMs >= HALF_OPEN_TIMEOUT_MS) {
        this.#byIndex.delete(h.localIndex);
        const fresh = await this.#startAttempt(attempt.key, h.endpoint, h.expected);
        fresh.waiters = attempt.waiters;
        fresh.createdAt = attempt.createdAt;
        this.#attempts.set(attempt.key, fresh);
        for (const p of this.#peers.values()) if (p.rekey === attempt) p.rekey = fresh;
        await this.#sendInit(fresh);
      } else {
        await this.#sendInit(attempt);
      }
    }
    // Both maps are in the order their entries were made, which is the order
    // they expire in (to within an await): only the expired head is walked,
    // not the thousands a handshake burst leaves behind.
    for (const [ephemeral, r] of this.#responders) {
      if (now - r.createdAt < HALF_OPEN_TIMEOUT_MS) break;
      this.#responders.delete(ephemeral);
      this.#byIndex.delete(r.localIndex);
    }
    for (const [ephemeral, until] of this.#seenEphemerals) {
      if (now < until) break;
      this.#seenEphemerals.delete(ephemeral);
    }
    if (now < this.#nextSweepAt) return;
    // Half a tick early, so that a timer firing a little early does not skip a whole tick.
    this.#nextSweepAt = now + this.#sweepMs - TIMER_TICK_MS / 2;
    const full = now >= this.#nextFullSweepAt;
    if (full) this.#nextFullSweepAt = now + this.#fullSweepMs - TIMER_TICK_MS / 2;
    await this.#sweepPeers(now, full);
  }

  /**
   * The timers of peers' sessions, run by {@linkcode tick} every
   * SESSION_SWEEP_MS (or on every tick when a timer is configured shorter):
   * every peer's on a `full` sweep (each SESSION_FULL_SWEEP_MS), else only
   * those with a timer due before the next full sweep, or one just begun.
   */
  #sweepPeers(now: number, full: boolean): Promise<boolean[]> {
    const keepalives: Promise<boolean>[] = [];
    this.#admission.expireKnown();
    this.#admission.forgetFull();
    for (const limiter of this.#rateLimiters()) limiter.forgetFull();
    const horizon = now + this.#fullSweepMs;
    if (full) this.#active.clear();
    for (const key of full ? this.#peers.keys() : [...this.#active]) {
      const peer = this.#peers.get(key);
      const due = peer === undefined ? Infinity : this.#sweepPeer(key, peer, now, keepalives);
      if (due < horizon) this.#active.add(key);
      else this.#active.delete(key);
    }
    // Sealed together, not one after another: WebCrypto pipelines the calls
    // made in one turn, and the walk (synchronous, so V8 optimises it whole)
    // does not wait a thread hop per session.
    return Promise.all(keepalives);
  }

  /**
   * Runs one peer's timers that are due, and says when the next one is:
   * Infinity when none is pending (or the peer is gone). Only a frame sent
   * or received can bring one sooner, and `onTimerStart` reports those.
   */
  #sweepPeer(key: string, peer: PeerState, now: number, keepalives: Promise<boolean>[]): number {
    const t = this.#timers;
    if (peer.previous !== undefined && now >= peer.previousUntil) {
      this.#forget(peer.previous);
      peer.previous = undefined;
    }
    peer.previous?.releaseIdleKeys(now, SESSION_KEY_IDLE_MS);
    const s = peer.current;
    if (s === undefined) return Infinity;
    s.releaseIdleKeys(now, SESSION_KEY_IDLE_MS);
    const age = now - s.createdAt;
    if (age >= t.rejectAfterMs) {
      this.#removePeer(key, peer, "its session expired");
      return Infinity;
    }
    // A stranger may talk to the trust service, not park a session here.
    const trusted = this.#o.isTrusted(peer.identity);
    if (now - peer.trustTrafficAt >= t.untrustedIdleMs && !trusted) {
      this.#removePeer(key, peer, "it is untrusted and was idle");
      return Infinity;
    }
    if (s.initiator && !s.confirmed && s.finalFrame && now - s.finalSentAt >= FINAL_RETRY_MS) {
      s.finalSentAt = now;
      this.#o.transmit(s.finalFrame, s.endpoint);
    }
    // Message 3 is kept only while it may still be repeated: until the
    // initiator is confirmed, which it stops waiting for after
    // rekeyTimeoutMs (the responder keeps it twice as long).
    if (
      s.finalFrame !== undefined &&
      (s.initiator ? s.confirmed : age >= 2 * t.rekeyTimeoutMs)
    ) s.finalFrame = undefined;
    const rekeyAt = s.initiator ? t.rekeyAfterMs : t.rekeyAfterMs + 3 * t.rekeyTimeoutMs;
    // An initiator session the responder never confirmed (message 3 lost for
    // good, or refused) is replaced by a fresh handshake rather than left to
    // swallow data until the next rekey.
    const unconfirmed = s.initiator && !s.confirmed && age >= t.rekeyTimeoutMs;
    // Data went out and nothing came back although every data frame is
    // answered within answerMs: the peer has most likely lost the session
    // (restarted), so a new handshake, rather than waiting for the rekey.
    const silent = s.awaitingReplySince !== null && now - s.awaitingReplySince >= t.silenceMs;
    if (silent && s.endpoint.port !== RELAY_PORT && peer.relayPath !== undefined) {
      // A direct path that went quiet (a NAT mapping lost, the peer moved
      // behind another NAT): back to the relay it came through, which the
      // rekey below then uses. A punch may upgrade it again later.
      s.endpoint = peer.relayPath;
      this.#reportPath(peer);
    }
    if (age >= rekeyAt || unconfirmed || silent) this.#startRekey(peer);
    const answer = s.owedAnswerSince !== null && now - s.owedAnswerSince >= t.answerMs;
    // WireGuard's passive keepalive: for data received and nothing sent
    // since. Never for a keepalive, or two idle peers would trade
    // keepalives every keepaliveMs for as long as the session lasts.
    const idleReply = s.lastReceivedData && s.lastReceived > s.lastSent &&
      now - s.lastReceived >= t.keepaliveMs;
    // A configured interval applies to every session; without one, paths
    // that hold a NAT mapping get the protocol's 25 s.
    const keepaliveMs = t.persistentKeepaliveMs > 0
      ? t.persistentKeepaliveMs
      : this.#o.holdsMapping?.(peer.identity, s.endpoint)
      ? PERSISTENT_KEEPALIVE_MS
      : 0;
    const persistent = keepaliveMs > 0 && now - s.lastSent >= keepaliveMs;
    // Sealing sets lastSent and clears owedAnswerSince at once, before the
    // deadlines below are read.
    if (answer || idleReply || persistent) keepalives.push(this.#sendOn(s, EMPTY));

    // What is left pending, and when it is due. A message 3 still kept, or
    // an initiator not yet confirmed, is a fresh session's: walked every
    // sweep until it settles.
    if (s.finalFrame !== undefined || (s.initiator && !s.confirmed)) return now;
    let due = Math.min(s.createdAt + rekeyAt, s.keysIdleAt(SESSION_KEY_IDLE_MS));
    if (!trusted) due = Math.min(due, peer.trustTrafficAt + t.untrustedIdleMs);
    if (peer.previous !== undefined) {
      due = Math.min(due, peer.previousUntil, peer.previous.keysIdleAt(SESSION_KEY_IDLE_MS));
    }
    if (s.awaitingReplySince !== null) due = Math.min(due, s.awaitingReplySince + t.silenceMs);
    if (s.owedAnswerSince !== null) due = Math.min(due, s.owedAnswerSince + t.answerMs);
    if (s.lastReceivedData && s.lastReceived > s.lastSent) {
      due = Math.min(due, s.lastReceived + t.keepaliveMs);
    }
    if (keepaliveMs > 0) due = Math.min(due, s.lastSent + keepaliveMs);
    return due;
  }

  /** Closes every session with a peer at once (used by `untrust`). */
  closePeer(peerKeyHex: string): boolean {
    const peer = this.#peers.get(peerKeyHex);
    if (peer === undefined) return false;
    this.#removePeer(peerKeyHex, peer, "its sessions were closed");
    return true;
  }

  /** Forgets a peer's sessions and stops any rekey to it: nothing is retried for a peer that is gone. */
  #removePeer(key: string, peer: PeerState, why: string): void {
    if (peer.current) this.#forget(peer.current);
    if (peer.previous) this.#forget(peer.previous);
    peer.current = peer.previous = undefined;
    this.#peers.delete(key);
    this.#active.delete(key);
    if (peer.rekey !== undefined) {
      this.#finishAttempt(
        peer.rekey,
        new PilotError("unreachable", `Rekey with ${peer.identity.fingerprint} stopped: ${why}`),
      );
    }
    this.#o.onPeerDown?.(peer.identity);
  }

  /** The handshake hash of a peer's current session (channel binding), if it has one. */
  binding(peerKeyHex: string): Uint8Array | undefined {
    return this.#peers.get(peerKeyHex)?.current?.handshakeHash;
  }

  /** Where a peer's current session sends (its endpoint or relay path), or null without one. */
  endpointOf(peerKeyHex: string): Endpoint | null {
    return this.#peers.get(peerKeyHex)?.current?.endpoint ?? null;
  }

  /** Looks a peer up by key. */
  peer(peerKeyHex: string): PeerIdentity | undefined {
    return this.#peers.get(peerKeyHex)?.identity;
  }

  /** Every peer with a session. */
  peers(): PeerStatus[] {
    const now = this.#now();
    return [...this.#peers.values()].map((p) => {
      const heard = Math.max(
        p.current?.lastReceived ?? -Infinity,
        p.previous?.lastReceived ?? -Infinity,
      );
      return {
        identity: p.identity,
        endpoint: p.current?.endpoint ?? null,
        trusted: this.#o.isTrusted(p.identity),
        sessionAgeS: p.current ? Math.floor((now - p.current.createdAt) / 1000) : null,
        rttMs: p.rttMs,
        dropped: p.dropped,
        idleMs: heard === -Infinity ? null : Math.max(0, Math.round(now - heard)),
      };
    });
  }
}

function isZero(bytes: Uint8Array): boolean {
  return bytes.every((b) => b === 0);
}

function clampTimers(overrides: Partial<SessionTimers>): SessionTimers {
  const out = { ...DEFAULT_TIMERS };
  for (const [k, v] of Object.entries(overrides) as [keyof SessionTimers, number][]) {
    // Configuration may shorten timers (tests), never lengthen them past the protocol's.
    if (k === "persistentKeepaliveMs") out[k] = Math.min(Math.max(v, 0), PERSISTENT_KEEPALIVE_MS);
    else out[k] = Math.min(Math.max(v, 1), DEFAULT_TIMERS[k]);
  }
  return out;
}
