/**
 * Pieces every contract group shares: the peer reference in answers, the
 * error object, the heartbeat line of follow streams, the `peer` and
 * `timeout_ms` inputs, and the timeout policy numbers.
 *
 * @module
 */
import { ERROR_CODES, type ErrorCode } from "../../errors.ts";
import { bool, int, nullable, obj, oneOf, str } from "../schema.ts";
import type { FieldSpec } from "./spec.ts";

/** The longest single call or long poll the API allows (ms); the CLI renews longer waits. */
export const MAX_TIMEOUT_MS = 600_000;

/** Default timeout of a call that reaches a peer once (ms). */
export const PEER_CALL_TIMEOUT_MS = 10_000;

/** Default time `send` and `reply` keep retrying delivery (ms). */
export const DELIVERY_TIMEOUT_MS = 30_000;

/** Default time the CLI's `--wait` waits for an entry (ms); the API's `wait` is explicit. */
export const WAIT_TIMEOUT_MS = 30_000;

/** Default time a long-lived reader (`subscribe`, `listen`, follow) runs (ms). */
export const LONG_READ_TIMEOUT_MS = 600_000;

/** Schema of a peer reference in answers. */
export const PEER_REF = obj({
  address: str,
  hostname: nullable(str),
  fingerprint: str,
  public_key: str,
});

/** The fields of the API's error object, for the stream lines that carry them too. */
export const ERROR_FIELDS = {
  status: oneOf("error"),
  code: oneOf(...Object.keys(ERROR_CODES) as ErrorCode[]),
  message: str,
  hint: str,
  retryable: bool,
  request_id: str,
};

/**
 * Schema of the API's error object: an error answer, and the error frame a
 * WebSocket route sends before it closes with 4006.
 */
export const ERROR_BODY = obj(ERROR_FIELDS);

/**
 * Schema of the heartbeat line a follow stream (inbox, events) writes after
 * `heartbeat_ms` of silence; `seq` is the cursor to resume after.
 */
export const HEARTBEAT_LINE = obj({ type: oneOf("heartbeat"), seq: int, time: str });

/**
 * Schema of `name_conflict` in `peers` and `pending`: which binding an
 * untrusted peer's claimed hostname collides with (a trusted key, or a
 * `--peer` entry from another endpoint), or null.
 */
export const NAME_CONFLICT = nullable(oneOf("trusted", "configured"));

/** The `peer` input: how the user names a peer. */
export const PEER_FIELD = {
  type: "string",
  required: true,
  description: "address, hostname, fingerprint, key, or endpoint IP:PORT",
} as const satisfies FieldSpec;

/** A `timeout_ms` input with this default, bounded so every call ends. */
export function timeoutField(defaultMs: number, description = "give up after this long (ms)") {
  return {
    type: "integer",
    description,
    default: defaultMs,
    min: 1,
    max: MAX_TIMEOUT_MS,
  } as const satisfies FieldSpec;
}

/** An `after` cursor input (a seq). */
export const AFTER_FIELD = {
  type: "integer",
  description: "only entries after this seq",
  default: 0,
  min: 0,
  max: Number.MAX_SAFE_INTEGER,
} as const satisfies FieldSpec;

/** A `limit` input of a list page. */
export const LIMIT_FIELD = {
  type: "integer",
  description: "at most this many entries",
  default: 100,
  min: 0,
  max: 1000,
} as const satisfies FieldSpec;

/** The long-poll `wait` input of a list (ms; 0 answers at once). */
export const WAIT_FIELD = {
  type: "integer",
  description: "when there is nothing, wait this long for an entry (ms)",
  default: 0,
  min: 0,
  max: MAX_TIMEOUT_MS,
} as const satisfies FieldSpec;

/** The `heartbeat_ms` input of follow streams. */
export const HEARTBEAT_FIELD = {
  type: "integer",
  description: "heartbeat interval of a follow stream (ms)",
  default: 15_000,
  min: 0,
  max: 15_000,
} as const satisfies FieldSpec;

/** The `up_to` input of a clear route (inbox, received files): the last seq the caller read. */
export const UP_TO_FIELD = {
  type: "integer",
  required: true,
  min: 0,
  max: Number.MAX_SAFE_INTEGER,
  description: "the last seq you read",
} as const satisfies FieldSpec;

/** The `from` input of an ack route: ids are scoped per sender. */
export const ACK_FROM_FIELD = {
  type: "string",
  description: "the sender the ids belong to",
  default: "",
} as const satisfies FieldSpec;
