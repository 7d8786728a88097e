/**
 * `pilot handshake`, `pending`, `approve`, `reject`, `trust` and `untrust`:
 * the local side of the trust flow (the wire side is services/trust.ts).
 * Each returns a domain value; control/views.ts shapes it into the API's JSON.
 *
 * @module
 */
import { matches, matchOne } from "../../discovery/match.ts";
import { isAddressLike, parseAddress } from "../../identity/address.ts";
import { PilotError } from "../../errors.ts";
import { fingerprintIn, fingerprintMatches } from "../../identity/fingerprint.ts";
import type { PendingRequest } from "../../services/trust_types.ts";
import { type PeerRef, peerRef, refOf } from "../../session/peer_ref.ts";
import type { NodeContext } from "../context.ts";
import { type NameConflict, nameConflict } from "../name_claims.ts";
import { checkReason } from "../outgoing_message.ts";
import { log } from "../log.ts";
import { RetryBackoff } from "../../services/retry_backoff.ts";
import type { HandshakeQueue, QueuedHandshake } from "../handshake_queue.ts";
import { DEFAULT_QUEUE_TTL_MS } from "../../constants.ts";

/**
 * Where a handshake left the relationship (`queued`: the peer was not
 * reachable; `--queue`). A rejection is no status: it is the `rejected` error.
 */
export type HandshakeStatus = "pending" | "trusted" | "queued";

/** What `pilot handshake` learned. */
export interface HandshakeResult {
  /** The peer asked; null while the request is queued (who will answer is not known yet). */
  peer: PeerRef | null;
  /** Where the request stands. */
  status: HandshakeStatus;
  /** Whether the request changed anything. */
  changed: boolean;
  /** Whether waiting for the decision ran out of time. */
  timedOut: boolean;
  /** The key was not known before: trust on first use (compare the fingerprint out of band). */
  firstContact: boolean;
  /** When a queued request is given up (ISO); null unless queued. */
  expiresAt: string | null;
  /** The rendezvous (address) whose mailbox holds a queued request, or null. */
  mailbox: string | null;
  /** This node's own fingerprint: what the peer's owner compares before approving. */
  ownFingerprint: string;
}

/** Leaves a trust request at the mailbox of the peer `text` names (the mailboxes feature). */
export type MailboxRequest = (
  text: string,
  reason: string,
  ttlMs: number,
  expectFingerprint: string,
) => Promise<{ peer: PeerRef; via: string }>;

/** Options of {@linkcode TrustFeature.handshake}. */
export interface HandshakeOptions {
  /** Wait until the peer decides (or time runs out). */
  wait?: boolean;
  /** Refuse unless the peer that answers has this fingerprint ("" for any). */
  expectFingerprint?: string;
  /** Keep the request and ask again when the peer cannot be reached now. */
  queue?: boolean;
  /** How long a queued request is asked again (ms). */
  ttlMs?: number;
}

/** First wait before a queued handshake is tried again (ms); it doubles. */
const QUEUED_HANDSHAKE_RETRY_MS = 5_000;
/** Longest wait between two tries of a queued handshake (ms). */
const QUEUED_HANDSHAKE_RETRY_MAX_MS = 5 * 60_000;
/** How long one try of a queued handshake may take (ms). */
const QUEUED_HANDSHAKE_ATTEMPT_MS = 15_000;

/** A pending request, flagged when it claims a name bound to another key. */
export interface FlaggedRequest {
  /** The request. */
  request: PendingRequest;
  /** Which binding its hostname collides with, or null. */
  nameConflict: NameConflict;
}

/** How `pilot approve` or `pilot reject` ended. */
export interface TrustDecision {
  /** The requester. */
  peer: PeerRef;
  /** The decision: approve always answers trusted, reject rejected. */
  status: "trusted" | "rejected";
  /** Whether this call changed anything. */
  changed: boolean;
  /** Whether the peer acknowledged (false: queued for later delivery). */
  delivered: boolean;
}

/** One trusted peer as `pilot trust` lists it. */
export interface TrustedPeer {
  /** The peer. */
  peer: PeerRef;
  /** ISO time trust was given. */
  since: string;
  /** Whether the peer trusts us too (as far as we know). */
  mutual: boolean;
  /** Where it was last authenticated (a hint for reaching it after a restart), or null. */
  endpoint: string | null;
  /** ISO time it was last seen there (as of the last write), or null. */
  lastSeen: string | null;
}

/** How `pilot untrust` ended. */
export interface UntrustResult {
  /** The peer no longer trusted, or null when no trusted peer matched. */
  peer: PeerRef | null;
  /** Whether this call changed anything. */
  changed: boolean;
  /** Whether the peer acknowledged the revoke (false: queued for later delivery). */
  delivered: boolean;
}

/** The trust commands over a node's context. */
export class TrustFeature {
  #ctx: NodeContext;
  #queue: HandshakeQueue;
  /** Per queued name: when it is tried next, and the wait after. */
  #backoff = new RetryBackoff({
    minMs: QUEUED_HANDSHAKE_RETRY_MS,
    maxMs: QUEUED_HANDSHAKE_RETRY_MAX_MS,
    // Queued handshakes end with their TTL, not with the backoff.
    giveUpMs: Infinity,
  });
  #retrying = false;

  /** Leaves queued requests at peers' mailboxes, when this node has rendezvous. */
  #mailbox: MailboxRequest | undefined;

  /** Queued requests also go to the peer's mailbox, through `request` (the mailboxes feature). */
  useMailbox(request: MailboxRequest): void {
    this.#mailbox = request;
  }

  /**
   * Leaves a queued request at its peer's mailbox, once; the peer and the
   * mailbox when one holds it (now or before). Never throws.
   */
  async #relay(q: QueuedHandshake): Promise<{ peer: PeerRef | null; via: string } | null> {
    if (q.mailbox !== undefined) return { peer: this.#refOfKey(q.public_key), via: q.mailbox };
    if (this.#mailbox === undefined) return null;
    const ttlMs = Date.parse(q.expires_at) - Date.now();
    if (ttlMs <= 0) return null;
    try {
      const { peer, via } = await this.#mailbox(q.name, q.reason, ttlMs, q.expect_fingerprint);
      await this.#queue.relayed(q.name, peer.public_key, via);
      return { peer, via };
    } catch (e) {
      log(`trust request for "${q.name}" not left at a mailbox: ${(e as Error).message}`);
      return null;
    }
  }

  #refOfKey(key: string | undefined): PeerRef | null {
    const out = key === undefined ? undefined : this.#ctx.flow.outgoingTo(key);
    return out === undefined ? null : refOf(out);
  }

  /** Creates the feature over `ctx`, with the queue of handshakes waiting for their peer. */
  constructor(ctx: NodeContext, queue: HandshakeQueue) {
    this.#ctx = ctx;
    this.#queue = queue;
  }

  /**
   * `pilot handshake`: asks a peer to trust us; with `wait`, until it
   * decides or time runs out. With `queue`, a peer that cannot be reached
   * now (unreachable, unknown yet, no answer) is asked again until `ttlMs`
   * ends: the answer says `queued`.
   */
  async handshake(
    text: string,
    reason: string,
    timeoutMs: number,
    options: HandshakeOptions = {},
  ): Promise<HandshakeResult> {
    checkReason(reason);
    const { wait = false, expectFingerprint = "" } = options;
    const deadline = Date.now() + timeoutMs;
    let reached;
    try {
      // `handshake ENDPOINT` asks whoever answers there now, never a session from before.
      reached = await this.#ctx.reach.reach(text, timeoutMs, { freshEndpoint: true });
    } catch (e) {
      if (!options.queue || !askAgainLater(e)) throw e;
      const now = Date.now();
      const queued = await this.#queue.add({
        name: text,
        reason,
        expect_fingerprint: expectFingerprint,
        created_at: new Date(now).toISOString(),
        expires_at: new Date(now + (options.ttlMs ?? DEFAULT_QUEUE_TTL_MS)).toISOString(),
      });
      await this.#queue.attempt(text, e.code);
      // A name already waiting out a backoff keeps its schedule.
      if (this.#backoff.due(text)) this.#backoff.failed(text);
      const relayed = await this.#relay(queued);
      return {
        peer: relayed?.peer ?? null,
        status: "queued",
        changed: queued.attempts === 0,
        timedOut: false,
        firstContact: false,
        expiresAt: queued.expires_at,
        mailbox: relayed?.via ?? null,
        ownFingerprint: this.#ctx.identity.fingerprint,
      };
    }
    const { peer, resolution } = reached;
    // The handshake proved who answered; nothing is asked of another key than the one expected.
    if (expectFingerprint !== "" && !fingerprintMatches(peer.publicKey, expectFingerprint)) {
      throw new PilotError(
        "key_changed",
        `"${text}" answered with fingerprint ${peer.fingerprint}, not the expected ` +
          expectFingerprint,
        "nothing was sent to it; check the fingerprint with the peer's owner (its `pilot info`)",
      );
    }
    const firstContact = !resolution.trusted && !resolution.pinned &&
      !this.#ctx.trust.has(peer.keyHex);
    // Only a request to the exact key the user named may approve a crossing one.
    const outcome = await this.#ctx.trustService.request(
      peer,
      reason,
      Math.max(1, deadline - Date.now()),
      { pinned: resolution.pinned },
    );
    // Asked: a queued request for this name has done its work (a rejection included).
    const asked = async () => {
      if (this.#queue.get(text) !== undefined) await this.#queue.remove(text);
    };
    if (outcome.status === "rejected") {
      await asked();
      throw this.#rejected(text, peer.keyHex);
    }
    // request() never answers "untrusted" (only untrust does); its type allows it.
    let status: HandshakeStatus = outcome.status === "untrusted" ? "pending" : outcome.status;
    let timedOut = false;
    if (status === "trusted" || (wait && status === "pending")) {
      // "Approved" by the peer is "trusted" here only once its accept arrived.
      const settled = await this.#waitForDecision(peer.keyHex, deadline);
      if (settled === "rejected") {
        await asked();
        throw this.#rejected(text, peer.keyHex);
      }
      status = settled ?? "pending";
      timedOut = settled === undefined;
    }
    await asked();
    return {
      peer: peerRef(peer),
      status,
      changed: outcome.changed,
      timedOut,
      firstContact,
      expiresAt: null,
      mailbox: null,
      ownFingerprint: this.#ctx.identity.fingerprint,
    };
  }

  /**
   * The `rejected` error of a handshake to `key` (named `text` by the user),
   * with the reason the peer gave, if any. The reason is the peer's text:
   * quoted as a JSON string, so it stays on one line and cannot pose as ours.
   */
  #rejected(text: string, key: string): PilotError {
    const reason = this.#ctx.flow.outgoingTo(key)?.reject_reason ?? "";
    return new PilotError(
      "rejected",
      `${text} rejected the trust request` +
        (reason === "" ? " and gave no reason" : `: ${JSON.stringify(reason)}`),
      "ask the peer's owner; a new request is refused for a while",
    );
  }

  /** `pilot handshake --list-queued`: trust requests waiting for their peer. */
  queued(): QueuedHandshake[] {
    return this.#queue.list();
  }

  /**
   * One round of queued handshakes, for the node's timer: expired ones are
   * dropped, due ones are tried (each in turn, once the last try's wait is
   * over, doubling from 5 s to 5 min, plus up to a quarter of jitter: RetryBackoff).
   * Never throws.
   */
  async retryQueued(): Promise<void> {
    if (this.#retrying) return;
    this.#retrying = true;
    try {
      const now = Date.now();
      const queued = this.#queue.list();
      this.#backoff.retain(new Set(queued.map((q) => q.name)));
      for (const q of queued) {
        if (Date.parse(q.expires_at) <= now) {
          await this.#queue.remove(q.name).catch(() => {});
          continue;
        }
        // Answered through the mailboxes: its work is done.
        const out = q.public_key === undefined
          ? undefined
          : this.#ctx.flow.outgoingTo(q.public_key);
        if (
          q.public_key !== undefined &&
          (this.#ctx.trust.has(q.public_key) || out?.status === "rejected")
        ) {
          await this.#queue.remove(q.name).catch(() => {});
          continue;
        }
        if (!this.#backoff.due(q.name)) continue;
        try {
          await this.handshake(q.name, q.reason, QUEUED_HANDSHAKE_ATTEMPT_MS, {
            expectFingerprint: q.expect_fingerprint,
          });
          this.#backoff.reset(q.name);
        } catch (e) {
          // key_changed, rejected and the like will not change by asking again: given up.
          if (!askAgainLater(e)) {
            await this.#queue.remove(q.name).catch(() => {});
            continue;
          }
          await this.#queue.attempt(q.name, e.code).catch(() => {});
          this.#backoff.failed(q.name);
          await this.#relay(q);
        }
      }
    } finally {
      this.#retrying = false;
    }
  }

  /** Whether any handshake waits for its peer. */
  get hasQueued(): boolean {
    return this.#queue.list().length > 0;
  }

  /** Waits until our request to `key` is decided: "trusted", "rejected", or undefined at the deadline. */
  async #waitForDecision(
    key: string,
    deadline: number,
  ): Promise<"trusted" | "rejected" | undefined> {
    const { flow, trust, events } = this.#ctx;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), Math.max(0, deadline - Date.now()));
    try {
      for (;;) {
        const out = flow.outgoingTo(key);
        if (trust.get(key)?.mutual || out?.status === "approved") return "trusted";
        if (out?.status === "rejected") return "rejected";
        if (ac.signal.aborted) return undefined;
        await events.next(ac.signal);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** `pilot pending`: each request, flagged when it claims a name bound to another key. */
  pending(): FlaggedRequest[] {
    const { flow, trust, config, reach } = this.#ctx;
    const trusted = trust.list();
    return flow.pending.map((p) => ({
      request: p,
      nameConflict: nameConflict(
        { keyHex: p.public_key, hostname: p.hostname, endpoint: reach.endpointOf(p.public_key) },
        trusted,
        config.peers,
      ),
    }));
  }

  /** `pilot approve`. */
  async approve(text: string, timeoutMs: number): Promise<TrustDecision> {
    const { flow, trust, trustService } = this.#ctx;
    const candidates = [
      ...flow.pending,
      ...trust.list().map((e) => refOf(e)).filter((e) => !flow.pendingFrom(e.public_key)),
    ];
    const p = matchOne(text, candidates, "pending request");
    const outcome = await trustService.approve(p.public_key, timeoutMs);
    return {
      peer: refOf(p),
      status: "trusted",
      changed: outcome.changed,
      delivered: outcome.delivered,
    };
  }

  /** `pilot reject`. */
  async reject(text: string, reason: string, timeoutMs: number): Promise<TrustDecision> {
    checkReason(reason);
    const p = matchOne(text, this.#ctx.flow.pending, "pending request");
    const outcome = await this.#ctx.trustService.reject(p.public_key, reason, timeoutMs);
    return {
      peer: refOf(p),
      status: "rejected",
      changed: outcome.changed,
      delivered: outcome.delivered,
    };
  }

  /**
   * Whether `text` names a peer this node knows of, trusted or not: one
   * named exactly (key, fingerprint, address), one a pending or sent request
   * names, or one the resolver knows (a `--peer` name, a session).
   */
  #knows(text: string): boolean {
    if (namesOneKey(text)) return true;
    const { flow, reach } = this.#ctx;
    const requests = [...flow.pending, ...flow.outgoing.map((o) => refOf(o))];
    if (requests.some((r) => matches(text, r))) return true;
    try {
      reach.resolve(text);
      return true;
    } catch (e) {
      if (e instanceof PilotError && e.code === "not_found") return false;
      // A conflict names peers too; a malformed name is its own error.
      if (e instanceof PilotError && e.code === "conflict") return true;
      throw e;
    }
  }

  /** `pilot trust`. */
  trusted(): TrustedPeer[] {
    return this.#ctx.trust.list().map((e) => ({
      peer: refOf(e),
      since: e.since,
      mutual: e.mutual,
      endpoint: e.endpoint ?? null,
      lastSeen: e.last_seen ?? null,
    }));
  }

  /**
   * `pilot untrust`: at once; sessions closed, the peer told. A peer known
   * but not trusted (or named by key, fingerprint or address: a repeat is
   * safe) answers changed: false; a name that matches nothing is `not_found`.
   */
  async untrust(text: string, timeoutMs: number): Promise<UntrustResult> {
    let entry;
    try {
      entry = matchOne(text, this.#ctx.trust.list().map((e) => refOf(e)), "trusted peer");
    } catch (e) {
      if (e instanceof PilotError && e.code === "not_found") {
        if (this.#knows(text)) return { peer: null, changed: false, delivered: true };
        throw new PilotError(
          "not_found",
          `No peer is known as "${text}": nothing to untrust`,
          "run `pilot trust` to list the trusted peers",
        );
      }
      throw e;
    }
    const outcome = await this.#ctx.trustService.untrust(entry.public_key, timeoutMs);
    return { peer: entry, changed: outcome.changed, delivered: outcome.delivered };
  }
}

/** Whether `text` is a full key, a fingerprint or an address: each names one peer exactly. */
function namesOneKey(text: string): boolean {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return true;
  if (!isAddressLike(t)) return fingerprintIn(t) !== null;
  try {
    parseAddress(t);
    return true;
  } catch {
    return false;
  }
}

/** Whether a failed handshake may go through later: the peer is down, unknown yet, or silent. */
function askAgainLater(e: unknown): e is PilotError {
  return e instanceof PilotError &&
    (e.code === "unreachable" || e.code === "timeout" || e.code === "not_found");
}
