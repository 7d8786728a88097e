/**
 * Contract of the file routes: send-file, received (list and long poll),
 * ack and clear.
 *
 * @module
 */
import { anyOf, arr, bool, int, nullable, obj, oneOf, str } from "../schema.ts";
import {
  ACK_FROM_FIELD,
  AFTER_FIELD,
  ERROR_FIELDS,
  LIMIT_FIELD,
  LONG_READ_TIMEOUT_MS,
  PEER_FIELD,
  PEER_REF,
  timeoutField,
  UP_TO_FIELD,
  WAIT_FIELD,
} from "./common.ts";
import { route } from "./spec.ts";

/** Schema of a received file. */
export const FILE = obj({
  seq: int,
  id: str,
  from: str,
  from_key: str,
  hostname: nullable(str),
  fingerprint: str,
  name: str,
  original_name: str,
  path: str,
  bytes: int,
  sha256: str,
  received_at: str,
});

/** The fields of a sent file's answer, also in the result line of a `progress` stream. */
const SENT_FILE_FIELDS = {
  to: PEER_REF,
  name: str,
  stored_as: str,
  bytes: int,
  sha256: str,
  receipt: obj({ status: oneOf("stored", "duplicate"), seq: int, id: str }),
};

/** `POST /v1/send-file`: stream a file to a peer (NDJSON progress with `progress`). */
export const SEND_FILE = route({
  route: "POST /v1/send-file",
  input: {
    peer: PEER_FIELD,
    path: { type: "string", required: true, description: "absolute path of the file to send" },
    progress: {
      type: "boolean",
      description: "NDJSON progress lines, then the result",
      default: false,
    },
    timeout_ms: timeoutField(LONG_READ_TIMEOUT_MS),
  },
  output: obj(SENT_FILE_FIELDS),
  // With `progress`: progress lines, then one result line or one error line.
  lines: anyOf(
    obj({ kind: oneOf("progress"), sent: int, size: int }),
    obj({ kind: oneOf("result"), ...SENT_FILE_FIELDS }),
    obj({ kind: oneOf("error"), ...ERROR_FIELDS }),
  ),
});

/** `GET /v1/received`: a page of received files, or a long poll (`wait`). */
export const RECEIVED = route({
  route: "GET /v1/received",
  input: {
    after: AFTER_FIELD,
    limit: LIMIT_FIELD,
    from: { type: "string", description: "only files from this peer" },
    wait: WAIT_FIELD,
  },
  output: obj({ files: arr(FILE), next: int, timed_out: bool }),
});

/** `POST /v1/received/ack`: take files off the list by id. */
export const RECEIVED_ACK = route({
  route: "POST /v1/received/ack",
  input: {
    ids: { type: "strings", required: true, description: "file ids" },
    from: ACK_FROM_FIELD,
  },
  output: obj({ removed: int }),
});

/** `POST /v1/received/clear`: take every file up to a seq read off the list. */
export const RECEIVED_CLEAR = route({
  route: "POST /v1/received/clear",
  input: {
    up_to: UP_TO_FIELD,
  },
  output: obj({ removed: int }),
});
