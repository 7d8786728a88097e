/**
 * `pilot handshake`, `pending`, `approve`, `reject`, `trust` and `untrust`:
 * the local side of the trust flow (the wire side is services/trust.ts).
 *
 * @module
 */
import { matchOne } from "../../discovery/match.ts";
import { PilotError } from "../../errors.ts";
import { peerRef, refOf } from "../../session/peer_ref.ts";
import type { NodeContext } from "../context.ts";
import { nameConflict } from "../name_claims.ts";
import { checkReason } from "../outgoing_message.ts";

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
  ): Promise<Record<string, unknown>> {
    checkReason(reason);
    const deadline = Date.now() + timeoutMs;
    // `handshake ENDPOINT` asks whoever answers there now, never a session from before.
    const { peer, resolution } = await this.#ctx.reach.reach(text, timeoutMs, {
      freshEndpoint: true,
    });
    // Only a request to the exact key the user named may approve a crossing one.
    const outcome = await this.#ctx.trustService.request(
      peer,
      reason,
      Math.max(1, deadline - Date.now()),
      { pinned: resolution.pinned },
    );
    let status: string = outcome.status;
    let timedOut = false;
    if (status === "trusted" || (wait && status === "pending")) {
      // "Approved" by the peer is "trusted" here only once its accept arrived.
      const settled = await this.#waitForDecision(peer.keyHex, deadline);
      status = settled ?? "pending";
      timedOut = settled === undefined;
    }
    return { peer: peerRef(peer), status, changed: outcome.changed, timed_out: timedOut };
  }

  /** Waits until our request to `key` is decided: "trusted", "rejected", or undefined at the deadline. */
  async #waitForDecision(key: string, deadline: number): Promise<string | undefined> {
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
  pending(): Record<string, unknown> {
    const { flow, trust, config, reach } = this.#ctx;
    const trusted = trust.list();
    return {
      pending: flow.pending.map((p) => ({
        address: p.address,
        hostname: p.hostname,
        fingerprint: p.fingerprint,
        public_key: p.public_key,
        reason: p.reason,
        received_at: p.received_at,
        name_conflict: nameConflict(
          { keyHex: p.public_key, hostname: p.hostname, endpoint: reach.endpointOf(p.public_key) },
          trusted,
          config.peers,
        ),
      })),
    };
  }

  /** `pilot approve`. */
  async approve(text: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const { flow, trust, trustService } = this.#ctx;
    const candidates = [
      ...flow.pending,
      ...trust.list().map((e) => refOf(e)).filter((e) => !flow.pendingFrom(e.public_key)),
    ];
    const p = matchOne(text, candidates, "pending request");
    const outcome = await trustService.approve(p.public_key, timeoutMs);
    return {
      peer: refOf(p),
      status: outcome.status,
      changed: outcome.changed,
      delivered: outcome.delivered,
    };
  }

  /** `pilot reject`. */
  async reject(text: string, reason: string, timeoutMs: number): Promise<Record<string, unknown>> {
    checkReason(reason);
    const p = matchOne(text, this.#ctx.flow.pending, "pending request");
    const outcome = await this.#ctx.trustService.reject(p.public_key, reason, timeoutMs);
    return {
      peer: refOf(p),
      status: outcome.status,
      changed: outcome.changed,
      delivered: outcome.delivered,
    };
  }

  /** `pilot trust`. */
  trusted(): Record<string, unknown> {
    return {
      trusted: this.#ctx.trust.list().map((e) => ({
        ...refOf(e),
        since: e.since,
        mutual: e.mutual,
      })),
    };
  }

  /** `pilot untrust`: at once; sessions closed, the peer told. Unknown peers answer changed: false. */
  async untrust(text: string, timeoutMs: number): Promise<Record<string, unknown>> {
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
