/**
 * `pilot handshake`, `pending`, `approve`, `reject`, `trust` and `untrust`:
 * the local side of the trust flow (the wire side is services/trust.ts).
 * Each returns a domain value; control/views.ts shapes it into the API's JSON.
 *
 * @module
 */
import { matchOne } from "../../discovery/match.ts";
import { PilotError } from "../../errors.ts";
import { fingerprintMatches } from "../../identity/fingerprint.ts";
import type { PendingRequest } from "../../services/trust_types.ts";
import { type PeerRef, peerRef, refOf } from "../../session/peer_ref.ts";
import type { NodeContext } from "../context.ts";
import { type NameConflict, nameConflict } from "../name_claims.ts";
import { checkReason } from "../outgoing_message.ts";

/** Where a handshake left the relationship. */
export type HandshakeStatus = "pending" | "trusted" | "rejected";

/** What `pilot handshake` learned. */
export interface HandshakeResult {
  /** The peer asked. */
  peer: PeerRef;
  /** Where the request stands. */
  status: HandshakeStatus;
  /** Whether the request changed anything. */
  changed: boolean;
  /** Whether waiting for the decision ran out of time. */
  timedOut: boolean;
  /** The key was not known before: trust on first use (compare the fingerprint out of band). */
  firstContact: boolean;
}

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

  /** Creates the feature over `ctx`. */
  constructor(ctx: NodeContext) {
    this.#ctx = ctx;
  }

  /** `pilot handshake`: asks a peer to trust us; with `wait`, until it decides or time runs out. */
  async handshake(
    text: string,
    reason: string,
    wait: boolean,
    timeoutMs: number,
    expectFingerprint = "",
  ): Promise<HandshakeResult> {
    checkReason(reason);
    const deadline = Date.now() + timeoutMs;
    // `handshake ENDPOINT` asks whoever answers there now, never a session from before.
    const { peer, resolution } = await this.#ctx.reach.reach(text, timeoutMs, {
      freshEndpoint: true,
    });
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
    // request() never answers "untrusted" (only untrust does); its type allows it.
    let status: HandshakeStatus = outcome.status === "untrusted" ? "pending" : outcome.status;
    let timedOut = false;
    if (status === "trusted" || (wait && status === "pending")) {
      // "Approved" by the peer is "trusted" here only once its accept arrived.
      const settled = await this.#waitForDecision(peer.keyHex, deadline);
      status = settled ?? "pending";
      timedOut = settled === undefined;
    }
    return { peer: peerRef(peer), status, changed: outcome.changed, timedOut, firstContact };
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

  /** `pilot untrust`: at once; sessions closed, the peer told. Unknown peers answer changed: false. */
  async untrust(text: string, timeoutMs: number): Promise<UntrustResult> {
    let entry;
    try {
      entry = matchOne(text, this.#ctx.trust.list().map((e) => refOf(e)), "trusted peer");
    } catch (e) {
      if (e instanceof PilotError && e.code === "not_found") {
        return { peer: null, changed: false, delivered: true };
      }
      throw e;
    }
    const outcome = await this.#ctx.trustService.untrust(entry.public_key, timeoutMs);
    return { peer: entry, changed: outcome.changed, delivered: outcome.delivered };
  }
}
