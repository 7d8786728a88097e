/**
 * Contract of the message routes: send, inbox (list, long poll, follow),
 * ack and clear, call and reply.
 *
 * @module
 */
import { anyJson, anyOf, arr, bool, int, nullable, obj, oneOf, record, str } from "../schema.ts";
import {
  ACK_FROM_FIELD,
  AFTER_FIELD,
  DELIVERY_TIMEOUT_MS,
  ERROR_BODY,
  HEARTBEAT_FIELD,
  HEARTBEAT_LINE,
  LIMIT_FIELD,
  PEER_FIELD,
  PEER_REF,
  timeoutField,
  UP_TO_FIELD,
  WAIT_FIELD,
} from "./common.ts";
import { type FieldSpec, route } from "./spec.ts";
import { DEFAULT_QUEUE_TTL_MS, MAX_QUEUE_TTL_MS } from "../../constants.ts";

/** Default time `call` waits for the reply (ms). */
export const CALL_TIMEOUT_MS = 60_000;

/** The message types. */
export const TYPES = ["text", "json", "binary"] as const;

export const TYPE = {
  type: "string",
  description: "text, json or binary",
  default: "text",
  values: TYPES,
} as const satisfies FieldSpec;

export const DATA = {
  type: "json",
  required: true,
  description: "text; for json a JSON value (or a string holding JSON); for binary base64",
} as const satisfies FieldSpec;

/**
 * Schema of an inbox message; `value` is the parsed data of a json message,
 * the other optional fields are there when the sender set them.
 */
export const MESSAGE = obj({
  seq: int,
  id: str,
  from: str,
  from_key: str,
  hostname: nullable(str),
  fingerprint: str,
  type: oneOf(...TYPES),
  data: str,
  bytes: int,
  received_at: str,
}, {
  correlation_id: str,
  in_reply_to: str,
  expires_at: str,
  meta: record(str),
  value: anyJson,
});

/** The fields of a delivery result (send, reply, and a call's request). */
const SEND_RESULT_FIELDS = {
  to: PEER_REF,
  id: str,
  type: oneOf(...TYPES),
  bytes: int,
  // stored: the peer fsynced it (receipt); queued_local: kept in this node's outbox (`queue`);
  // queued_relay: kept there, and a sealed copy left at the peer's mailbox.
  delivery: oneOf("stored", "queued_local", "queued_relay"),
  receipt: nullable(obj({ status: oneOf("stored", "duplicate"), seq: int })),
  // When a queued message is given up; null when stored.
  expires_at: nullable(str),
};

/** Schema of a delivery result (send, reply, and a call's request). */
export const SEND_RESULT = obj(SEND_RESULT_FIELDS);

/** The input fields of one message: `POST /v1/send`'s, and each of a batch's. */
const MESSAGE_FIELDS = {
  type: TYPE,
  data: DATA,
  id: {
    type: "string",
    description: "message id: retries with the same id are stored once",
    default: "",
  },
  correlation_id: {
    type: "string",
    description: "correlates a reply with its request",
    default: "",
  },
  in_reply_to: { type: "string", description: "id of the message this answers", default: "" },
  meta: { type: "json", description: "a small map of strings (absent: none)" },
} as const satisfies Record<string, FieldSpec>;

/** The delivery fields of `POST /v1/send` and of a batch (one setting for all its messages). */
const DELIVERY_FIELDS = {
  timeout_ms: timeoutField(DELIVERY_TIMEOUT_MS, "keep retrying delivery this long (ms)"),
  queue: {
    type: "boolean",
    description: "keep the message in the local outbox when the peer cannot take it in time, " +
      "and retry until ttl_ms ends (a trusted peer only)",
    default: false,
  },
  ttl_ms: {
    type: "integer",
    description: "how long a queued message is retried (ms)",
    default: DEFAULT_QUEUE_TTL_MS,
    min: 1000,
    max: MAX_QUEUE_TTL_MS,
  },
} as const satisfies Record<string, FieldSpec>;

/** `POST /v1/send`: a typed message, answered once stored durably at the peer. */
export const SEND = route({
  route: "POST /v1/send",
  input: { peer: PEER_FIELD, ...MESSAGE_FIELDS, ...DELIVERY_FIELDS },
  output: SEND_RESULT,
});

/** Messages in one `POST /v1/send-batch`, at most. */
export const MAX_BATCH_MESSAGES = 256;

/**
 * One message of a batch, checked as `POST /v1/send` checks its body (the
 * route key names the batch in an error).
 */
export const BATCH_MESSAGE = route({
  route: "POST /v1/send-batch",
  input: MESSAGE_FIELDS,
  output: SEND_RESULT,
});

/**
 * `POST /v1/send-batch`: up to MAX_BATCH_MESSAGES messages to one peer in one
 * request, delivered at once on the peer's message stream; each gets its own
 * answer, in order: what `POST /v1/send` would have answered for it alone
 * (`{"status": "ok", "data": …}` with its receipt, or the error object).
 */
export const SEND_BATCH = route({
  route: "POST /v1/send-batch",
  input: {
    peer: PEER_FIELD,
    messages: {
      type: "json",
      required: true,
      description: `a list of 1 to ${MAX_BATCH_MESSAGES} messages, each an object of the ` +
        "message fields of POST /v1/send (type, data, id, correlation_id, in_reply_to, meta)",
    },
    ...DELIVERY_FIELDS,
  },
  output: obj({
    results: arr(anyOf(obj({ status: oneOf("ok"), data: SEND_RESULT }), ERROR_BODY)),
  }),
});

/** One message in the local outbox. */
export const QUEUED_MESSAGE = obj({
  to: PEER_REF,
  id: str,
  type: oneOf(...TYPES),
  bytes: int,
  created_at: str,
  expires_at: str,
  attempts: int,
  last_error: nullable(str),
  // queued_local: it waits here only; queued_relay: a sealed copy waits at the peer's mailbox too.
  state: oneOf("queued_local", "queued_relay"),
  // The address of the rendezvous whose mailbox holds it, or null.
  mailbox: nullable(str),
});

/** `GET /v1/outbox`: messages queued by `send --queue`, oldest first. */
export const OUTBOX = route({
  route: "GET /v1/outbox",
  input: {},
  output: obj({ messages: arr(QUEUED_MESSAGE) }),
});

/** `POST /v1/outbox/cancel`: give up queued messages by id. */
export const OUTBOX_CANCEL = route({
  route: "POST /v1/outbox/cancel",
  input: {
    id: { type: "string", required: true, description: "the queued message's id" },
    to: { type: "string", description: "only the one queued for this peer" },
  },
  output: obj({ cancelled: int }),
});

/** `GET /v1/inbox`: a page of messages, a long poll (`wait`), or NDJSON (`follow`). */
export const INBOX = route({
  route: "GET /v1/inbox",
  input: {
    after: AFTER_FIELD,
    limit: LIMIT_FIELD,
    from: { type: "string", description: "only messages from this peer" },
    wait: WAIT_FIELD,
    follow: { type: "boolean", description: "NDJSON: messages as they arrive", default: false },
    heartbeat_ms: HEARTBEAT_FIELD,
  },
  output: obj({ messages: arr(MESSAGE), next: int, timed_out: bool }),
  // With `follow`: messages, and a heartbeat when none came for `heartbeat_ms`.
  lines: anyOf(MESSAGE, HEARTBEAT_LINE),
});

/** `POST /v1/inbox/ack`: remove messages by id. */
export const INBOX_ACK = route({
  route: "POST /v1/inbox/ack",
  input: {
    ids: { type: "strings", required: true, description: "message ids" },
    from: ACK_FROM_FIELD,
  },
  output: obj({ removed: int }),
});

/** `POST /v1/inbox/clear`: remove every message up to a seq read. */
export const INBOX_CLEAR = route({
  route: "POST /v1/inbox/clear",
  input: {
    up_to: UP_TO_FIELD,
  },
  output: obj({ removed: int }),
});

/** `POST /v1/call`: send a request and wait for its reply. */
export const CALL = route({
  route: "POST /v1/call",
  input: {
    peer: PEER_FIELD,
    type: TYPE,
    data: DATA,
    id: { type: "string", description: "request id (retries are stored once)", default: "" },
    timeout_ms: timeoutField(CALL_TIMEOUT_MS, "how long to wait for the reply (ms)"),
  },
  output: obj({ request: SEND_RESULT, reply: MESSAGE }),
});

/** `POST /v1/reply`: answer a message in the inbox. */
export const REPLY = route({
  route: "POST /v1/reply",
  input: {
    id: { type: "string", required: true, description: "the id of the message to answer" },
    type: TYPE,
    data: DATA,
    from: { type: "string", description: "the sender of the message", default: "" },
    timeout_ms: timeoutField(DELIVERY_TIMEOUT_MS, "keep retrying delivery this long (ms)"),
  },
  output: SEND_RESULT,
});
