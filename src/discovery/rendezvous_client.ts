/**
 * A node's side of its rendezvous nodes (issue 9; design:
 * `docs/design/rendezvous.md`), sans-IO: it keeps the node's presence
 * record published at every configured rendezvous (refreshed before it
 * expires, and at once when what it says changes: its endpoints, or which
 * rendezvous it names as its mailboxes), remembers the endpoint the
 * rendezvous observed, and asks all of them on a lookup, believing only
 * records it verifies itself (a mailbox lookup also believes a record
 * expired less than `MAILBOX_RETENTION_MS` ago, which the rendezvous named
 * as its mailbox keeps). A rendezvous can withhold a record; one that
 * lies is caught here (a record that does not verify or does not match the
 * question is dropped) or at the Noise handshake (the expected key).
 *
 * The caller sends and receives the port-445 datagrams (inside its session
 * with each rendezvous) and calls {@linkcode RendezvousClient.tick} every
 * few hundred milliseconds.
 *
 * @module
 */
import type { Address } from "../identity/address.ts";
import { DecodeError } from "../bytes.ts";
import {
  MAILBOX_RETENTION_MS,
  PresenceError,
  type PresenceSigner,
  signOwnPresence,
  type VerifiedPresence,
  verifyPresence,
} from "./presence.ts";
import {
  MAX_RECORD_MAILBOXES,
  type RecordEndpoint,
  type Visibility,
} from "../wire/presence_record.ts";
import {
  decodeRendezvousMessage,
  encodeRendezvousMessage,
  type LookupKey,
} from "../wire/rendezvous_message.ts";
import type { IpEndpoint } from "../wire/ip_endpoint.ts";

/** How long a published record stays valid (ms). */
export const RECORD_LIFETIME_MS = 30 * 60 * 1000;
/** A record is republished this long before it expires (ms). */
export const RECORD_REFRESH_BEFORE_MS = 10 * 60 * 1000;
/** First wait before a request with no answer is sent again (ms); it doubles. */
export const REQUEST_RETRY_MS = 1000;
/** A publish unanswered this long (after retransmissions at 1, 2, 4 and 8 s) has timed out (ms). */
export const PUBLISH_TIMEOUT_MS = 15_000;
/** Wait before publishing again to a rendezvous that did not answer (ms). */
export const PUBLISH_RETRY_MS = 15_000;
/** Wait before publishing again to a rendezvous that refused the record (ms). */
export const PUBLISH_REFUSED_RETRY_MS = 60_000;

/** What the node publishes about itself. */
export interface SelfPresence {
  /** The node's identity: its key signs the record, which carries its bound static key. */
  identity: PresenceSigner;
  /** Claimed hostname, `""` for none. */
  hostname: string;
  /** Whether strangers may learn the endpoints. */
  visibility: Visibility;
  /** Endpoints to publish (public nodes only; a private record carries none). */
  endpoints: RecordEndpoint[];
  /**
   * Addresses of the rendezvous whose key the node knows: the record names
   * the first four distinct ones as its mailboxes.
   */
  mailboxes: Address[];
}

/** Options of {@linkcode RendezvousClient.lookup}. */
export interface LookupOptions {
  /**
   * A mailbox lookup: also believe a record that expired less than
   * `MAILBOX_RETENTION_MS` ago (a rendezvous keeps a mailbox owner's last
   * record that long). Default false.
   */
  stale?: boolean;
}

/** Options of {@linkcode RendezvousClient}. */
export interface RendezvousClientOptions {
  /** How many rendezvous nodes there are; they are numbered from 0. */
  count: number;
  /** Sends a port-445 datagram to rendezvous `index`. */
  send(index: number, bytes: Uint8Array): void;
  /** Wall clock, Unix ms (records carry wall-clock expiry). */
  now: () => number;
}

/** One rendezvous's view of this node, as its last answer to a publish said. */
export interface PublishState {
  /** Whether the current record is stored there. */
  published: boolean;
  /** Our endpoint as that rendezvous sees it, once it answered. */
  observed: IpEndpoint | null;
  /** Another key holds our hostname there. */
  conflict: { hostname: string; boundTo: Address } | null;
  /** The last refusal code, "" when none. */
  error: string;
}

/** A verified record, and which rendezvous hold it. */
export interface HeldPresence extends VerifiedPresence {
  /** Indices of the rendezvous that answered with this key's record (they can relay to it). */
  at: number[];
}

/** What a lookup found across every rendezvous. */
export interface LookupResult {
  /** Verified records matching the question, one per key, the most recent serial each. */
  records: HeldPresence[];
  /** Addresses the rendezvous listed as other claimants of a hostname. */
  conflicts: Address[];
  /** How many rendezvous answered in time. */
  answered: number;
}

interface Pending {
  index: number;
  bytes: Uint8Array;
  nextSendAt: number;
  retryMs: number;
  deadline: number;
  onAnswer(answer: ReturnType<typeof decodeRendezvousMessage> | null): void;
}

/** Keeps a node's record at its rendezvous nodes and asks them on lookups. */
export class RendezvousClient {
  #o: RendezvousClientOptions;
  #self: SelfPresence | null = null;
  #serial = 0;
  #record: Uint8Array | null = null;
  #expiresAt = 0;
  #states: PublishState[];
  #publishDueAt: number[];
  #nextId = 1;
  #pending = new Map<number, Pending>();
  /**
   * Answers that were unparseable or matched no request, records that did
   * not verify or answer the question, and records past their expiry (a
   * rendezvous keeps a mailbox owner's for a week; only a stale lookup
   * believes them).
   */
  readonly dropped = { malformed: 0, unsolicited: 0, bad_record: 0, expired: 0 };

  /** A client of `options.count` rendezvous nodes. */
  constructor(options: RendezvousClientOptions) {
    this.#o = options;
    this.#states = Array.from({ length: options.count }, () => ({
      published: false,
      observed: null,
      conflict: null,
      error: "",
    }));
    this.#publishDueAt = Array(options.count).fill(Infinity);
  }

  /** What each rendezvous said to our last publish (copies). */
  get states(): PublishState[] {
    return this.#states.map((s) => ({ ...s }));
  }

  /**
   * Publishes `self` everywhere now: a new record, signed again only when
   * the caller publishes again (what it says changed: its endpoints, or a
   * rendezvous whose key became known) or when it nears expiry.
   */
  publish(self: SelfPresence): void {
    this.#self = self;
    this.#sign();
    this.#publishDueAt.fill(0);
    this.tick();
  }

  /**
   * Asks every rendezvous; resolves once all answered or at `timeoutMs`,
   * with the verified records that match the question (with `stale`, also
   * records expired less than `MAILBOX_RETENTION_MS` ago).
   */
  lookup(key: LookupKey, timeoutMs: number, options: LookupOptions = {}): Promise<LookupResult> {
    const { stale = false } = options;
    const now = this.#o.now();
    const found = new Map<string, HeldPresence>();
    const conflicts = new Set<Address>();
    let answered = 0;
    let waiting = this.#o.count;
    const { promise, resolve } = Promise.withResolvers<LookupResult>();
    const finish = () =>
      resolve({ records: [...found.values()], conflicts: [...conflicts], answered });
    if (waiting === 0) finish();
    for (let index = 0; index < this.#o.count; index++) {
      this.#request(index, now + timeoutMs, (id) => ({ type: "lookup", id, ...key }), (m) => {
        if (m !== null) answered++;
        if (m?.type === "found") {
          const v = this.#believe(m.record, key, stale ? MAILBOX_RETENTION_MS : 0);
          if (v !== null) {
            const have = found.get(v.record.publicKey.toHex());
            const at = [...(have?.at ?? []), index];
            const newest = have === undefined || have.record.serial < v.record.serial ? v : have;
            found.set(v.record.publicKey.toHex(), { ...newest, at });
          }
          for (const a of m.conflicts) conflicts.add(a);
        }
        if (--waiting === 0) finish();
      });
    }
    return promise;
  }

  /**
   * Asks rendezvous `index` for our own record: a request that keeps the
   * session alive and checks the record is still there. When it is gone (the
   * rendezvous restarted, or let it expire, or answers with an older record
   * it keeps as our mailbox), it is published there again at the next tick.
   */
  checkPublished(index: number, timeoutMs: number): void {
    if (this.#self === null || this.#record === null) return;
    const key: LookupKey = { by: "key", key: this.#self.identity.publicKey };
    this.#request(
      index,
      this.#o.now() + timeoutMs,
      (id) => ({ type: "lookup", id, ...key }),
      (m) => {
        const current = this.#record;
        if (m?.type === "found" && current !== null && sameBytes(m.record, current)) return;
        if (m?.type !== "not_found" && m?.type !== "found") return;
        this.#states[index]!.published = false;
        this.#publishDueAt[index] = 0;
      },
    );
  }

  /**
   * Asks rendezvous `index` where it sees us now (a NAT may have moved us):
   * the answer updates that rendezvous's `observed`.
   */
  observe(index: number, timeoutMs: number): void {
    this.#request(
      index,
      this.#o.now() + timeoutMs,
      (id) => ({ type: "observe", id }),
      (m) => {
        if (m?.type === "observed") this.#states[index]!.observed = m.endpoint;
      },
    );
  }

  /**
   * Asks rendezvous `index` to tell the node at `to` where it sees us now
   * (`punch`; the target punches back only if it trusts us); its answer
   * updates that rendezvous's `observed`, and nothing about the target
   * comes back.
   */
  punch(index: number, to: Address, timeoutMs: number): void {
    this.#request(
      index,
      this.#o.now() + timeoutMs,
      (id) => ({ type: "punch", id, to }),
      (m) => {
        if (m?.type === "observed") this.#states[index]!.observed = m.endpoint;
      },
    );
  }

  /** Handles a port-445 datagram from rendezvous `index`. */
  receive(index: number, bytes: Uint8Array): void {
    let m;
    try {
      m = decodeRendezvousMessage(bytes);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.dropped.malformed++;
      return;
    }
    if (!("id" in m) || m.type === "punch_from") {
      // Relayed frames and punch notices are the path layer's (the link
      // takes them before us): here they are counted and dropped.
      this.dropped.unsolicited++;
      return;
    }
    const p = this.#pending.get(m.id);
    if (p === undefined || p.index !== index) {
      this.dropped.unsolicited++;
      return;
    }
    this.#pending.delete(m.id);
    p.onAnswer(m);
  }

  /** Sends what is due: publishes, refreshes and retransmissions; ends requests past their deadline. */
  tick(): void {
    const now = this.#o.now();
    if (this.#self !== null && now >= this.#expiresAt - RECORD_REFRESH_BEFORE_MS) {
      this.#sign();
      this.#publishDueAt.fill(0);
    }
    for (let index = 0; index < this.#o.count; index++) {
      if (now < this.#publishDueAt[index]! || this.#record === null) continue;
      this.#publishDueAt[index] = Infinity;
      this.#publishTo(index, now);
    }
    for (const [id, p] of this.#pending) {
      if (now >= p.deadline) {
        this.#pending.delete(id);
        p.onAnswer(null);
      } else if (now >= p.nextSendAt) {
        p.nextSendAt = now + (p.retryMs *= 2);
        this.#o.send(p.index, p.bytes);
      }
    }
  }

  #sign(): void {
    const self = this.#self!;
    const now = this.#o.now();
    // Serials only grow, even when the clock steps back.
    this.#serial = Math.max(now, this.#serial + 1);
    this.#expiresAt = now + RECORD_LIFETIME_MS;
    this.#record = signOwnPresence(self.identity, {
      hostname: self.hostname,
      visibility: self.visibility,
      serial: this.#serial,
      expiresAt: this.#expiresAt,
      endpoints: self.endpoints,
      mailboxes: [...new Set(self.mailboxes)].slice(0, MAX_RECORD_MAILBOXES),
    });
  }

  #publishTo(index: number, now: number): void {
    const record = this.#record!;
    this.#request(
      index,
      now + PUBLISH_TIMEOUT_MS,
      (id) => ({ type: "publish", id, record }),
      (m) => {
        // An answer about a record we have replaced since (a retransmission
        // that arrived after its successor, and is stale) says nothing now.
        if (record !== this.#record) return;
        const state = this.#states[index]!;
        if (m?.type === "ok") {
          this.#states[index] = {
            published: true,
            observed: m.observed,
            conflict: m.conflict,
            error: "",
          };
          return;
        }
        state.published = false;
        state.error = m?.type === "error" ? m.code : m === null ? "timeout" : m.type;
        // Try again later; a refusal will not change by itself soon.
        this.#publishDueAt[index] = this.#o.now() +
          (m === null ? PUBLISH_RETRY_MS : PUBLISH_REFUSED_RETRY_MS);
      },
    );
  }

  #request(
    index: number,
    deadline: number,
    build: (id: number) => Parameters<typeof encodeRendezvousMessage>[0],
    onAnswer: Pending["onAnswer"],
  ): void {
    const id = this.#nextId;
    this.#nextId = this.#nextId >= 0xffff_ffff ? 1 : this.#nextId + 1;
    const bytes = encodeRendezvousMessage(build(id));
    this.#pending.set(id, {
      index,
      bytes,
      nextSendAt: this.#o.now() + REQUEST_RETRY_MS,
      retryMs: REQUEST_RETRY_MS,
      deadline,
      onAnswer,
    });
    this.#o.send(index, bytes);
  }

  /**
   * A record we verify ourselves (accepting one expired less than `staleMs`
   * ago) and that answers the question asked, else null (counted).
   */
  #believe(bytes: Uint8Array, key: LookupKey, staleMs: number): VerifiedPresence | null {
    let v: VerifiedPresence;
    try {
      v = verifyPresence(bytes, this.#o.now(), { staleMs });
    } catch (e) {
      if (e instanceof PresenceError && e.reason === "expired") this.dropped.expired++;
      else this.dropped.bad_record++;
      return null;
    }
    const matches = key.by === "address"
      ? v.address === key.address
      : key.by === "key"
      ? v.record.publicKey.toHex() === key.key.toHex()
      : v.record.hostname === key.hostname;
    if (!matches) {
      this.dropped.bad_record++;
      return null;
    }
    return v;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
