/**
 * Contract of the trust routes: handshake, pending, approve, reject, trust,
 * untrust.
 *
 * @module
 */
import { arr, bool, nullable, obj, oneOf, str } from "../schema.ts";
import {
  NAME_CONFLICT,
  PEER_CALL_TIMEOUT_MS,
  PEER_FIELD,
  PEER_REF,
  timeoutField,
} from "./common.ts";
import { route } from "./spec.ts";
import { DEFAULT_QUEUE_TTL_MS, MAX_QUEUE_TTL_MS } from "../../constants.ts";

const REASON = {
  type: "string",
  description: "why (shown to the peer; at most 1 KiB)",
  default: "",
} as const;

/** `POST /v1/handshake`: ask a peer to trust this node. */
export const HANDSHAKE = route({
  route: "POST /v1/handshake",
  input: {
    peer: PEER_FIELD,
    reason: REASON,
    wait: {
      type: "boolean",
      description: "wait until the peer approves or rejects",
      default: false,
    },
    expect_fingerprint: {
      type: "string",
      description: "refuse, sending nothing, unless the peer that answers has this fingerprint",
      default: "",
    },
    timeout_ms: timeoutField(PEER_CALL_TIMEOUT_MS),
    queue: {
      type: "boolean",
      description: "when the peer cannot be reached now (down, unknown yet, no answer), keep " +
        "the request and ask again until ttl_ms ends",
      default: false,
    },
    ttl_ms: {
      type: "integer",
      description: "how long a queued request is asked again (ms)",
      default: DEFAULT_QUEUE_TTL_MS,
      min: 1000,
      max: MAX_QUEUE_TTL_MS,
    },
  },
  output: obj({
    // null while queued, unless a mailbox holds the request: who will answer is not known yet.
    peer: nullable(PEER_REF),
    // A rejection is not a status: it is the `rejected` error (exit 4), with the peer's reason.
    status: oneOf("pending", "trusted", "queued"),
    changed: bool,
    timed_out: bool,
    // The key was not known before (trust on first use): compare the fingerprint out of band.
    first_contact: bool,
    // When a queued request is given up; null unless queued.
    expires_at: nullable(str),
    // The rendezvous (address) whose mailbox holds a queued request, or null.
    mailbox: nullable(str),
    // This node's own fingerprint: the peer's owner compares it before approving.
    own_fingerprint: str,
  }),
});

/** `GET /v1/pending`: trust requests waiting for a decision. */
export const PENDING = route({
  route: "GET /v1/pending",
  input: {},
  output: obj({
    pending: arr(obj({
      address: str,
      hostname: nullable(str),
      fingerprint: str,
      public_key: str,
      reason: str,
      received_at: str,
      name_conflict: NAME_CONFLICT,
    })),
  }),
});

const DECISION = obj({
  peer: PEER_REF,
  status: oneOf("trusted", "rejected"),
  changed: bool,
  delivered: bool,
});

/** `POST /v1/approve`: approve a pending request. */
export const APPROVE = route({
  route: "POST /v1/approve",
  input: { peer: PEER_FIELD, timeout_ms: timeoutField(PEER_CALL_TIMEOUT_MS) },
  output: DECISION,
});

/** `POST /v1/reject`: reject a pending request. */
export const REJECT = route({
  route: "POST /v1/reject",
  input: {
    peer: PEER_FIELD,
    reason: { ...REASON, description: "told to the peer (at most 1 KiB)" },
    timeout_ms: timeoutField(PEER_CALL_TIMEOUT_MS),
  },
  output: DECISION,
});

/** `GET /v1/trust`: the trusted peers. */
export const TRUST = route({
  route: "GET /v1/trust",
  input: {},
  output: obj({
    trusted: arr(obj({
      address: str,
      hostname: nullable(str),
      fingerprint: str,
      public_key: str,
      since: str,
      mutual: bool,
      endpoint: nullable(str),
      last_seen: nullable(str),
    })),
  }),
});

/** `POST /v1/untrust`: stop trusting a peer. */
export const UNTRUST = route({
  route: "POST /v1/untrust",
  input: { peer: PEER_FIELD, timeout_ms: timeoutField(PEER_CALL_TIMEOUT_MS) },
  output: obj({ peer: nullable(PEER_REF), changed: bool, delivered: bool }),
});
