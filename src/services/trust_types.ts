/**
 * The records of the trust flow, shared by the trust service (which decides)
 * and the daemon's state files (which persist). All keyed by full keys (hex).
 *
 * @module
 */
import type { AckStatus } from "../wire/trust_packet.ts";

/** An acknowledgement as the sender sees it. */
export interface TrustAck {
  /** What became of the message. */
  status: AckStatus;
  /** Why (for `approved`, `rejected` and `refused`), else empty. */
  detail: string;
}

/** An acknowledgement to send, and what to do once it is on its way. */
export interface TrustAnswer extends TrustAck {
  /** Runs after the ack went out (a revoke closes the sessions only then). */
  after?: () => void;
}

/** One trusted peer. */
export interface TrustEntry {
  /** Ed25519 key, hex. */
  public_key: string;
  /** The address it proved when trust was given. */
  address: string;
  /** Its hostname then, or null. */
  hostname: string | null;
  /** ISO time trust was given. */
  since: string;
  /** Whether the peer trusts us too (as far as we know). */
  mutual: boolean;
  /** Hashes of the accepts (sent or received) that made this trust; a revoke names one. */
  accept_hashes?: string[];
  /** Where the peer was last reached (IP:PORT), to reconnect later. */
  endpoint?: string;
  /** The highest static-key serial the peer proved: an older one is refused (rollback). */
  static_serial?: number;
}

/**
 * Every reason the trust service drops or refuses a port-444 datagram, as
 * counted in `pilot info`. Admission (before any signature is checked):
 * `malformed` (undecodable datagram), `rate_limited` (the key's budget is
 * spent), `queue_full` (its share of the verification queue is taken). Then
 * the reasons of the signed-message codec and checks, and the state rules:
 * `pending_full` and `source_full` (the pending list, or one source IP's
 * share of it, is full; the ack still says `rate_limited`).
 */
export const TRUST_DROP_REASONS = [
  "malformed",
  "rate_limited",
  "queue_full",
  "too_large",
  "bad_key",
  "bad_stamp",
  "bad_signature",
  "misaddressed",
  "wrong_sender",
  "wrong_binding",
  "missing_expiry",
  "expired",
  "clock_skew",
  "replayed",
  "unknown_request",
  "unknown_accept",
  "pending_full",
  "source_full",
] as const;

/** One reason of {@linkcode TRUST_DROP_REASONS}. */
export type TrustDropReason = typeof TRUST_DROP_REASONS[number];

/** A request waiting for `approve` or `reject`. */
export interface PendingRequest {
  /** Requester's key, hex. */
  public_key: string;
  /** Its stamp, hex. */
  stamp: string;
  /** Its address. */
  address: string;
  /** Its hostname, or null. */
  hostname: string | null;
  /** Its fingerprint. */
  fingerprint: string;
  /** The reason it gave (untrusted text). */
  reason: string;
  /** ISO time received. */
  received_at: string;
  /** SHA-256 of the request's wire bytes, hex (what an accept names). */
  request_hash: string;
  /** The IP it came from, when known: pending requests per source are capped. */
  source?: string;
}

/** A request we sent. */
export interface OutgoingRequest {
  /** Target key, hex. */
  public_key: string;
  /** Target address. */
  address: string;
  /** Target hostname, or null. */
  hostname: string | null;
  /** Our reason. */
  reason: string;
  /** ISO time first sent. */
  created_at: string;
  /** Wall-clock ms after which it no longer approves crossing requests. */
  expires_at: number;
  /** Where it stands. */
  status: "pending" | "approved" | "rejected";
  /** Hashes of every signed version sent (re-signed per session). */
  hashes: string[];
  /** The peer's reason, when it rejected. */
  reject_reason?: string;
  /**
   * Whether the user named this exact key (as key, fingerprint or address):
   * only then does a request crossing ours approve itself. Absent = false.
   */
  pinned?: boolean;
}

/** An answer to deliver once the peer is reachable. */
export interface OutboxItem {
  /** Recipient key, hex. */
  public_key: string;
  /** What to send. */
  kind: "accept" | "reject" | "revoke";
  /** The request hash (accept, reject) or accept hash (revoke) it names. */
  ref_hash: string;
  /** Reason (reject). */
  reason: string;
  /** Wall-clock ms after which delivery is abandoned. */
  expires_at: number;
  /** Where the peer was last reached, to reconnect for delivery. */
  endpoint?: string;
}

/** What the trust service needs from the trust store. */
export interface TrustBook {
  /** Whether a key (hex) is trusted. */
  has(keyHex: string): boolean;
  /** The entry of a key. */
  get(keyHex: string): TrustEntry | undefined;
  /** Adds or replaces an entry. */
  put(entry: TrustEntry): Promise<void>;
  /** Removes a key; false when it was not trusted. */
  remove(keyHex: string): Promise<boolean>;
  /** Every entry. */
  list(): TrustEntry[];
}

/** What the trust service needs from the persisted flow state. */
export interface FlowBook {
  /** Requests waiting for a decision. */
  readonly pending: readonly PendingRequest[];
  /** Answers not yet delivered. */
  readonly outbox: readonly OutboxItem[];
  /** The pending request from a key. */
  pendingFrom(key: string): PendingRequest | undefined;
  /** Adds or replaces a pending request, in memory before its first await (count-then-put is safe). */
  putPending(p: PendingRequest): Promise<void>;
  /** Removes a pending request. */
  removePending(key: string): Promise<boolean>;
  /** Our request to a key. */
  outgoingTo(key: string): OutgoingRequest | undefined;
  /** Adds or replaces our request to a key. */
  putOutgoing(o: OutgoingRequest): Promise<void>;
  /** Forgets our request to a key. */
  removeOutgoing(key: string): Promise<void>;
  /** Queues an answer. */
  putOutbox(item: OutboxItem): Promise<void>;
  /** Removes an answer. */
  removeOutbox(item: OutboxItem): Promise<void>;
  /** Until when a key is suppressed (0 = not). */
  suppressedUntil(key: string, now: number): number;
  /** Suppresses a key. */
  suppress(key: string, until: number): Promise<void>;
  /** Records an offline message's replay key; false when seen before; throws `rate_limited` when full. */
  rememberOffline(replayKey: string, expiresAt: number, now: number): Promise<boolean>;
}
