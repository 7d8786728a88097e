/**
 * The API's JSON, shaped from the daemon's domain values: one small function
 * per route output, each typed by its contract schema (`Infer<typeof
 * C.X.output>`), so a view and the published schema cannot drift apart
 * silently. Features (daemon/features/) return domain values and know
 * nothing of field names on the wire; routes.ts calls feature, then view.
 *
 * Where a route returns more than its schema lists, the view's type names
 * the extra fields too.
 *
 * @module
 */
import type * as C from "./contract/mod.ts";
import type { Infer } from "./schema.ts";
import type {
  FlaggedRequest,
  HandshakeResult,
  TrustDecision,
  TrustedPeer,
  UntrustResult,
} from "../daemon/features/trust.ts";
import type { NameConflict } from "../daemon/name_claims.ts";

// ---- Trust ----

/** `POST /v1/handshake`. */
export function handshakeView(r: HandshakeResult): Infer<typeof C.HANDSHAKE.output> {
  return { peer: r.peer, status: r.status, changed: r.changed, timed_out: r.timedOut };
}

/** One entry of `GET /v1/pending`, with the name-conflict flag the schema does not list. */
type PendingEntry = Infer<typeof C.PENDING.output>["pending"][number] & {
  name_conflict: NameConflict;
};

/** `GET /v1/pending`. */
export function pendingView(
  requests: readonly FlaggedRequest[],
): Infer<typeof C.PENDING.output> & { pending: PendingEntry[] } {
  return {
    pending: requests.map(({ request: p, nameConflict }) => ({
      address: p.address,
      hostname: p.hostname,
      fingerprint: p.fingerprint,
      public_key: p.public_key,
      reason: p.reason,
      received_at: p.received_at,
      name_conflict: nameConflict,
    })),
  };
}

/** `POST /v1/approve` and `POST /v1/reject`. */
export function decisionView(r: TrustDecision): Infer<typeof C.APPROVE.output> {
  return { peer: r.peer, status: r.status, changed: r.changed, delivered: r.delivered };
}

/** `GET /v1/trust`. */
export function trustView(peers: readonly TrustedPeer[]): Infer<typeof C.TRUST.output> {
  return { trusted: peers.map((t) => ({ ...t.peer, since: t.since, mutual: t.mutual })) };
}

/** `POST /v1/untrust`. */
export function untrustView(r: UntrustResult): Infer<typeof C.UNTRUST.output> {
  return { peer: r.peer, changed: r.changed, delivered: r.delivered };
}
