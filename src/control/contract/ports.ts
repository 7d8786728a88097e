/**
 * Contract of the virtual-port routes: datagrams (dgram, recv) and reliable
 * streams (stream, listen, connections).
 *
 * @module
 */
import { anyOf, arr, bool, int, nullable, num, obj, oneOf, str } from "../schema.ts";
import {
  ERROR_BODY,
  LONG_READ_TIMEOUT_MS,
  MAX_TIMEOUT_MS,
  PEER_CALL_TIMEOUT_MS,
  PEER_FIELD,
  PEER_REF,
  timeoutField,
} from "./common.ts";
import { type FieldSpec, route } from "./spec.ts";

/** Default time `recv` waits for its datagrams (ms). */
export const RECV_TIMEOUT_MS = 30_000;

const PORT = {
  type: "integer",
  required: true,
  description: "virtual port 1-65535",
  min: 1,
  max: 65_535,
} as const satisfies FieldSpec;

const ENCODING = {
  type: "string",
  description: "how data is written: text or base64",
  default: "text",
  values: ["text", "base64"],
} as const satisfies FieldSpec;

/** Schema of a received datagram. */
export const DATAGRAM = obj({
  from: str,
  from_key: str,
  hostname: nullable(str),
  fingerprint: str,
  src_port: int,
  data: str,
  bytes: int,
  received_at: str,
});

/**
 * The JSON text frames the daemon sends on a stream's WebSocket once it is
 * open: `credit` when it took bytes the client sent, `fin` when the peer
 * finished sending (stream_socket.ts).
 */
const STREAM_FRAMES = [
  obj({ type: oneOf("credit"), bytes: int }),
  obj({ type: oneOf("fin") }),
] as const;

/** `POST /v1/dgram`: one unreliable datagram. */
export const DGRAM = route({
  route: "POST /v1/dgram",
  input: {
    peer: PEER_FIELD,
    port: PORT,
    data: { type: "string", required: true, description: "the data (text, or base64)" },
    encoding: ENCODING,
    timeout_ms: timeoutField(PEER_CALL_TIMEOUT_MS),
  },
  output: obj({ to: PEER_REF, port: int, bytes: int }),
});

/** `GET /v1/recv`: bind a port and take datagrams (NDJSON with `follow`). */
export const RECV = route({
  route: "GET /v1/recv",
  input: {
    port: PORT,
    count: {
      type: "integer",
      description: "stop after this many",
      default: 1,
      min: 1,
      max: 10_000,
    },
    follow: { type: "boolean", description: "NDJSON: datagrams as they come", default: false },
    timeout_ms: timeoutField(RECV_TIMEOUT_MS),
  },
  output: obj({ port: int, datagrams: arr(DATAGRAM), timed_out: bool, overflowed: int }),
  // With `follow`: each datagram as it comes; no heartbeats.
  lines: DATAGRAM,
});

const STREAM_OPEN = obj({ type: oneOf("open"), peer: PEER_REF, port: int });

/** `GET /v1/stream` (WebSocket): a reliable stream to a peer's port. */
export const STREAM = route({
  route: "GET /v1/stream",
  input: {
    peer: PEER_FIELD,
    port: PORT,
    flow: {
      type: "string",
      description: "credit: the client grants reading credit",
      values: ["credit"],
    },
    timeout_ms: timeoutField(PEER_CALL_TIMEOUT_MS, "give up opening after this long (ms)"),
  },
  // The first text frame of the WebSocket.
  output: STREAM_OPEN,
  // Every text frame: the open frame, or the error object before the close with 4006; then
  // the frames of an open stream.
  lines: anyOf(STREAM_OPEN, ERROR_BODY, ...STREAM_FRAMES),
});

const LISTEN_OPEN = obj({ type: oneOf("open"), peer: PEER_REF, port: int, src_port: int });

/** `GET /v1/listen` (WebSocket): accept one stream on a port. */
export const LISTEN = route({
  route: "GET /v1/listen",
  input: {
    port: PORT,
    flow: {
      type: "string",
      description: "credit: the client grants reading credit",
      values: ["credit"],
    },
    timeout_ms: {
      ...timeoutField(LONG_READ_TIMEOUT_MS, "wait this long for a stream (ms)"),
      max: MAX_TIMEOUT_MS,
    },
  },
  // The text frame that carries the accepted stream (after the listening frame).
  output: LISTEN_OPEN,
  // Every text frame: listening once the port is registered, then the open frame or the
  // error object before the close with 4006; then the frames of an open stream.
  lines: anyOf(
    obj({ type: oneOf("listening"), port: int }),
    LISTEN_OPEN,
    ERROR_BODY,
    ...STREAM_FRAMES,
  ),
});

/** `GET /v1/connections`: the reliable streams and their state. */
export const CONNECTIONS = route({
  route: "GET /v1/connections",
  input: {},
  output: obj({
    connections: arr(obj({
      peer: PEER_REF,
      local_port: int,
      remote_port: int,
      state: str,
      cwnd: int,
      srtt_ms: nullable(num),
      rto_ms: int,
      bytes_in_flight: int,
      retransmits: int,
      sent: int,
      received: int,
    })),
  }),
});
