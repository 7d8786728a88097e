/**
 * The control API's contract, one file per command group: each route's
 * input fields (types, defaults, bounds) and the schema of its `data`. The
 * routes check input with it; the CLI builds flags, defaults and `help
 * --json` from it.
 *
 * @module
 */
import { APPROVE, HANDSHAKE, PENDING, REJECT, TRUST, UNTRUST } from "./trust.ts";
import {
  CALL,
  INBOX,
  INBOX_ACK,
  INBOX_CLEAR,
  OUTBOX,
  OUTBOX_CANCEL,
  REPLY,
  SEND,
  SEND_BATCH,
} from "./messages.ts";
import { RECEIVED, RECEIVED_ACK, RECEIVED_CLEAR, SEND_FILE } from "./files.ts";
import {
  BENCH,
  CONNECT,
  EVENTS,
  HEALTH,
  INFO,
  OPENAPI,
  PEERS,
  PING,
  SHUTDOWN,
} from "./diagnostics.ts";
import { CONNECTIONS, DGRAM, LISTEN, RECV, STREAM } from "./ports.ts";
import { PUBLISH, SUBSCRIBE } from "./pubsub.ts";
import { PEER_ADD, PEER_LIST, PEER_REMOVE } from "./static_peers.ts";
import { RENDEZVOUS_STATUS } from "./rendezvous.ts";
import { WEBHOOK_ADD, WEBHOOK_LIST, WEBHOOK_REMOVE } from "./webhooks.ts";
import { FIND } from "./find.ts";
import { EXPOSE, FORWARD, TUNNELS, UNEXPOSE, UNFORWARD } from "./tunnels.ts";
import {
  TASK_ACCEPT,
  TASK_DECLINE,
  TASK_LIST,
  TASK_PROGRESS,
  TASK_RESULT,
  TASK_STATUS,
  TASK_SUBMIT,
  TASK_WAIT,
} from "./tasks.ts";
import type { RouteSpec } from "./spec.ts";

export * from "./spec.ts";
export * from "./common.ts";
export * from "./trust.ts";
export * from "./messages.ts";
export * from "./files.ts";
export * from "./diagnostics.ts";
export * from "./ports.ts";
export * from "./pubsub.ts";
export * from "./static_peers.ts";
export * from "./rendezvous.ts";
export * from "./webhooks.ts";
export * from "./find.ts";
export * from "./tunnels.ts";
export * from "./tasks.ts";

/** Every route of the control API, each with its literal types (the typed client's). */
export const TYPED_ROUTES = [
  HEALTH,
  INFO,
  PEERS,
  PEER_LIST,
  PEER_ADD,
  PEER_REMOVE,
  WEBHOOK_LIST,
  WEBHOOK_ADD,
  WEBHOOK_REMOVE,
  FIND,
  CONNECT,
  HANDSHAKE,
  PENDING,
  APPROVE,
  REJECT,
  TRUST,
  UNTRUST,
  EVENTS,
  SEND,
  SEND_BATCH,
  INBOX,
  INBOX_ACK,
  INBOX_CLEAR,
  OUTBOX,
  OUTBOX_CANCEL,
  PING,
  DGRAM,
  RECV,
  BENCH,
  PUBLISH,
  SUBSCRIBE,
  SEND_FILE,
  RECEIVED,
  RECEIVED_ACK,
  RECEIVED_CLEAR,
  CALL,
  REPLY,
  TASK_SUBMIT,
  TASK_LIST,
  TASK_ACCEPT,
  TASK_DECLINE,
  TASK_PROGRESS,
  TASK_RESULT,
  TASK_STATUS,
  TASK_WAIT,
  CONNECTIONS,
  STREAM,
  LISTEN,
  EXPOSE,
  UNEXPOSE,
  FORWARD,
  UNFORWARD,
  TUNNELS,
  RENDEZVOUS_STATUS,
  SHUTDOWN,
] as const satisfies readonly RouteSpec[];

/**
 * Every route of the control API. `OPENAPI` answers the OpenAPI document
 * itself, not the envelope the typed client reads, so it has no typed method.
 */
export const ROUTES: readonly RouteSpec[] = [...TYPED_ROUTES, OPENAPI];
