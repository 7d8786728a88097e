/**
 * Contract of the webhook routes: `webhook list`, `webhook add`, `webhook
 * remove` (the `webhooks` of config.json, changed while the daemon runs).
 *
 * @module
 */
import { arr, bool, int, nullable, obj, str } from "../schema.ts";
import type { FieldSpec } from "./spec.ts";
import { route } from "./spec.ts";

const URL_FIELD = {
  type: "string",
  required: true,
  description:
    "where to POST events: an http(s) URL on this machine (127.0.0.0/8, [::1], localhost) unless the daemon allows remote webhooks",
} as const satisfies FieldSpec;

/** `GET /v1/webhooks`: the webhooks and their delivery counters (never their secrets). */
export const WEBHOOK_LIST = route({
  route: "GET /v1/webhooks",
  input: {},
  output: obj({
    webhooks: arr(obj({
      url: str,
      events: arr(str),
      secret: bool,
      delivered: int,
      failed: int,
      dropped: int,
      queued: int,
      last_status: nullable(int),
      last_error: nullable(str),
      last_attempt_at: nullable(str),
    })),
    allow_remote: bool,
  }),
});

/** `POST /v1/webhooks/add`: add a webhook, or change the events and secret of the one at its URL. */
export const WEBHOOK_ADD = route({
  route: "POST /v1/webhooks/add",
  input: {
    url: URL_FIELD,
    events: {
      type: "strings",
      required: true,
      description: 'event types to send: a type (message.received), "prefix.*" or "*"; 1 to 64',
    },
    secret: {
      type: "string",
      description:
        "sign each request: x-pilot-signature: sha256=HEX, the HMAC-SHA256 of the body under this secret (1-256 characters)",
    },
  },
  output: obj({ url: str, events: arr(str), secret: bool, changed: bool }),
});

/** `POST /v1/webhooks/remove`: remove the webhook at a URL. */
export const WEBHOOK_REMOVE = route({
  route: "POST /v1/webhooks/remove",
  input: { url: URL_FIELD },
  output: obj({ url: str, events: arr(str), secret: bool, changed: bool }),
});
