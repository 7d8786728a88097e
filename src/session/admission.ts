/**
 * Admission of handshake work: who may make the responder compute message 2
 * or check a message 3, decided by cheap checks only (map lookups, token
 * buckets, at most one HMAC) before any Diffie-Hellman or signature.
 *
 * Message 1 takes one of three lanes (docs/PROTOCOL.md §5.3, §5.10):
 *
 * - **known**: from a trusted peer's current endpoint (or from its IP with a
 *   valid mac1: a restarted peer on a new port), within that endpoint's own
 *   rate (or that IP's, by mac1), or with a valid mac2 whatever that rate
 *   says. It may use the reserved half-open slots and the reserved work, so
 *   strangers cannot starve a trusted peer's rekeys;
 * - **proven**: mac2 is valid for its source, so the address is real; over
 *   the rate of that IP and port it is dropped (only the node really there
 *   is refused);
 * - **stranger**: anything else, within the rate of its IP; past it, or when
 *   the strangers' work is spent, it gets a cookie reply, never a plain
 *   drop, so spoofing an address cannot lock out the node that has it.
 *
 * Every admitted computation holds one of a bounded number of slots until
 * {@linkcode HandshakeAdmission.done}, also while it waits for the work
 * budget: a source that proved its address (mac2, or by answering message
 * 2) may borrow against the next refill and waits for it, so a burst above
 * the budget is delayed by milliseconds instead of dropped and retried
 * seconds later (`work_budget.ts`).
 *
 * @module
 */
import {
  HANDSHAKE_COMPUTE_CONCURRENCY,
  HANDSHAKE_RATE_KNOWN,
  HANDSHAKE_RATE_PER_SOURCE,
  HANDSHAKE_RATE_UNPROVEN,
  HANDSHAKE_WORK_BURST_MS,
  HANDSHAKE_WORK_MAX_WAIT_MS,
  HANDSHAKE_WORK_PER_SECOND,
  HANDSHAKE_WORK_PER_SOURCE,
  HANDSHAKE_WORK_RESERVED,
  IDENTITY_WORK,
  MAX_HANDSHAKES_IN_FLIGHT,
  MAX_PENDING_HANDSHAKES,
  MSG2_WORK,
  MSG3_WORK,
  RESERVED_KNOWN_HANDSHAKES,
} from "../constants.ts";
import { type Endpoint, formatEndpoint } from "../discovery/endpoint.ts";
import { ConcurrencyLimit } from "./concurrency.ts";
import type { DropReason } from "./drop_reason.ts";
import { RateLimiter } from "./rate_limit.ts";
import { WorkBudget } from "./work_budget.ts";

/** The lane a message 1 was admitted by; its message 3 is charged to the same. */
export type Lane = "known" | "proven" | "stranger";

/**
 * The decision on a handshake message: compute (holding a slot, after
 * `waitMs` when the work budget is borrowed against), answer with a cookie,
 * or drop.
 */
export type Admission =
  | { kind: "admit"; lane: Lane; waitMs: number }
  | { kind: "cookie" }
  | { kind: "drop"; reason: DropReason };

/** A message 1 that passed the MAC and deduplication checks. */
export interface InitCandidate {
  /** Its source. */
  from: Endpoint;
  /** Whether its mac2 is valid for `from` (a cookie we sent there). */
  proven: boolean;
  /** Whether its mac1 is valid; asked only when needed (one HMAC). */
  mac1Valid(): Promise<boolean>;
  /** Half-open handshakes right now. */
  halfOpen: number;
}

const TRACKED = 65_536;

/** The lanes, rates, work budget and slots of handshake work. */
export class HandshakeAdmission {
  /** Expensive computations admitted: message 2 written, message 3 checked, new identities checked. */
  readonly workSpent = { init: 0, final: 0, identity: 0 };
  #unproven: RateLimiter;
  #proven: RateLimiter;
  #known: RateLimiter;
  #work: WorkBudget;
  #inFlight = 0;
  #computing = new ConcurrencyLimit(HANDSHAKE_COMPUTE_CONCURRENCY);
  #knownEndpoints = new Set<string>();
  #knownHosts = new Set<string>();
  #knownSource: () => Iterable<Endpoint>;
  #knownStale = false;

  /**
   * Full buckets on the monotonic clock `now` (ms). `known` lists trusted
   * peers' current endpoints, read again after {@linkcode expireKnown} when
   * next needed.
   */
  constructor(now: () => number, known?: () => Iterable<Endpoint>) {
    this.#knownSource = known ?? (() => []);
    // With a source, it is read at the first need; without, `noteKnown` alone fills them.
    this.#knownStale = known !== undefined;
    const limiter = (rate: { burst: number; perSecond: number }) =>
      new RateLimiter({ ...rate, maxKeys: TRACKED, now });
    this.#unproven = limiter(HANDSHAKE_RATE_UNPROVEN);
    this.#proven = limiter(HANDSHAKE_RATE_PER_SOURCE);
    this.#known = limiter(HANDSHAKE_RATE_KNOWN);
    this.#work = new WorkBudget({
      perSecond: HANDSHAKE_WORK_PER_SECOND,
      reserved: HANDSHAKE_WORK_RESERVED,
      perSource: HANDSHAKE_WORK_PER_SOURCE,
      maxWaitMs: HANDSHAKE_WORK_MAX_WAIT_MS,
      burstMs: HANDSHAKE_WORK_BURST_MS,
      maxSources: TRACKED,
      now,
    });
  }

  /** Sources and endpoints whose rates are tracked, in every lane and the work budget. */
  get keysTracked(): number {
    return this.#lanes().reduce((n, l) => n + l.size, 0) + this.#work.sourcesTracked;
  }

  /** Forgets the sources whose buckets are full again, in every lane and the work budget. */
  forgetFull(): number {
    return this.#lanes().reduce((n, l) => n + l.forgetFull(), 0) + this.#work.forgetFull();
  }

  #lanes(): RateLimiter[] {
    return [this.#unproven, this.#proven, this.#known];
  }

  /**
   * Trust or paths may have changed (the session table says so once a
   * sweep): the known endpoints are read again from the source when next
   * needed. Not before: an idle node with thousands of trusted sessions
   * would rebuild them every second for no message 1 at all.
   */
  expireKnown(): void {
    this.#knownStale = true;
  }

  /** Gives a trusted peer's current endpoint the known lane (until the next expiry). */
  noteKnown(endpoint: Endpoint): void {
    // Stale, the next read of the source includes it.
    if (this.#knownStale) return;
    this.#knownEndpoints.add(formatEndpoint(endpoint));
    this.#knownHosts.add(endpoint.hostname);
  }

  /** Whether `endpoint` is a trusted peer's current endpoint (its message 1 is never shed). */
  isKnownEndpoint(endpoint: Endpoint): boolean {
    this.#refreshKnown();
    return this.#knownEndpoints.has(formatEndpoint(endpoint));
  }

  #refreshKnown(): void {
    if (!this.#knownStale) return;
    this.#knownStale = false;
    this.#knownEndpoints.clear();
    this.#knownHosts.clear();
    for (const e of this.#knownSource()) this.noteKnown(e);
  }

  /** Decides on a message 1; an admitted one holds a slot until `done()`. */
  async admitInit(m: InitCandidate): Promise<Admission> {
    const source = formatEndpoint(m.from);
    const host = m.from.hostname;
    this.#refreshKnown();
    const exact = this.#knownEndpoints.has(source);
    // From a trusted peer's IP but another port: known only with a valid mac1.
    const sameHost = !exact && this.#knownHosts.has(host);
    let lane: Lane = "stranger";
    if (m.proven) {
      if (!this.#proven.allow(source)) return { kind: "drop", reason: "rate_limited" };
      // A known endpoint that proved itself is the trusted peer, whoever
      // drained its lane. Another port of its IP proves only that someone
      // there knows our key (mac1): the known lane's bucket for that IP still
      // applies, or anyone behind a trusted peer's NAT would have priority.
      const known = exact || (sameHost && this.#known.allow(host) && await m.mac1Valid());
      lane = known ? "known" : "proven";
    } else if (
      // The lane's bucket comes before the HMAC, so a flood from a trusted
      // peer's IP costs a map lookup once it is spent; the mac1 path shares
      // one bucket per IP, so new ports cannot multiply it.
      (exact || sameHost) && this.#known.allow(exact ? source : host) &&
      (exact || await m.mac1Valid())
    ) lane = "known";
    else if (!this.#unproven.allow(host)) return { kind: "cookie" };
    const cap = lane === "known"
      ? MAX_PENDING_HANDSHAKES
      : MAX_PENDING_HANDSHAKES - RESERVED_KNOWN_HANDSHAKES;
    if (m.halfOpen >= cap) return { kind: "drop", reason: "half_open_full" };
    if (this.#inFlight >= MAX_HANDSHAKES_IN_FLIGHT) {
      return { kind: "drop", reason: "handshakes_busy" };
    }
    // Only a source that proved its address may wait for the budget; any
    // other gets a cookie, not work.
    const waitMs = this.#take(host, MSG2_WORK, lane, m.proven);
    if (waitMs === false) {
      return m.proven ? { kind: "drop", reason: "work_budget" } : { kind: "cookie" };
    }
    this.workSpent.init++;
    this.#inFlight++;
    return { kind: "admit", lane, waitMs };
  }

  /**
   * Spends work for `host`. Proven and unproven sources of one IP have
   * separate shares: spoofers of an address spend only the unproven one,
   * and the nodes really behind it (one NAT) still have theirs.
   */
  #take(host: string, units: number, lane: Lane, mayWait: boolean): number | false {
    return this.#work.reserve(
      `${lane === "stranger" ? "unproven" : "proven"}|${host}`,
      units,
      lane === "known",
      mayWait,
    );
  }

  /**
   * Decides on a message 3 for a half-open handshake whose message 1 came
   * from `from` by `lane`; an admitted one holds a slot until `done()`. Its
   * sender answered our message 2, so its address is proven: it may wait.
   */
  admitFinal(from: Endpoint, lane: Lane): Exclude<Admission, { kind: "cookie" }> {
    if (this.#inFlight >= MAX_HANDSHAKES_IN_FLIGHT) {
      return { kind: "drop", reason: "handshakes_busy" };
    }
    const waitMs = this.#take(from.hostname, MSG3_WORK, lane, true);
    if (waitMs === false) return { kind: "drop", reason: "work_budget" };
    this.workSpent.final++;
    this.#inFlight++;
    return { kind: "admit", lane, waitMs };
  }

  /**
   * Charges the check of an identity not seen before (`IDENTITY_WORK`) to a
   * message 3 admitted by `lane` from `from`, before it is done: the wait in
   * ms (0: at once), or false when it must be shed. The admitted message 3
   * already holds a slot.
   */
  chargeIdentity(from: Endpoint, lane: Lane): number | false {
    const waitMs = this.#take(from.hostname, IDENTITY_WORK, lane, true);
    if (waitMs !== false) this.workSpent.identity++;
    return waitMs;
  }

  /**
   * Runs an admitted computation by `lane`: a trusted peer's at once, any
   * other once fewer than HANDSHAKE_COMPUTE_CONCURRENCY others run, so that
   * a burst of strangers' handshakes cannot crowd the runtime's crypto
   * threads in front of a trusted peer's packets.
   */
  compute<T>(lane: Lane, work: () => Promise<T>): Promise<T> {
    return lane === "known" ? work() : this.#computing.run(work);
  }

  /** Releases the slot of an admitted computation. */
  done(): void {
    this.#inFlight--;
  }
}
