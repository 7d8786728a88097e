/**
 * Messages between two trusted peers about the path between them (issue 9:
 * hole punching), one per datagram on virtual port 446 inside their session.
 * Only trusted peers reach the port (the gate), so the endpoints a
 * `candidates` message lists never reach a stranger.
 *
 * | type | name | fields after the type byte |
 * |---:|---|---|
 * | 0x01 | candidates | count u8 (1 to 8), endpoints (`wire/ip_endpoint.ts`) |
 * | 0x02 | probe | nonce u64 |
 * | 0x03 | probe_ack | nonce u64 |
 *
 * `candidates` says where the sender may be reached directly: the
 * endpoints its rendezvous observe and its local ones. The receiver sends a
 * `probe` to each (straight over UDP, not along the session's path) and,
 * unless it just did, its own candidates back, so both sides punch at once.
 * A `probe` is answered with a `probe_ack` along the session's path, which
 * follows the probe's source once it arrived: that is the upgrade.
 *
 * @module
 */
import { DecodeError, Reader, Writer } from "../bytes.ts";
import { type IpEndpoint, MAX_ENDPOINT_SIZE, readEndpoint, writeEndpoint } from "./ip_endpoint.ts";

/** Most endpoints one `candidates` message lists. */
export const MAX_CANDIDATES = 8;
/** Bytes of the largest path message. */
export const MAX_PATH_MESSAGE_SIZE = 2 + MAX_CANDIDATES * MAX_ENDPOINT_SIZE;

/** A message on port 446. */
export type PathMessage =
  | { type: "candidates"; endpoints: IpEndpoint[] }
  | { type: "probe"; nonce: bigint }
  | { type: "probe_ack"; nonce: bigint };

const TYPES = { candidates: 0x01, probe: 0x02, probe_ack: 0x03 } as const satisfies Record<
  PathMessage["type"],
  number
>;

/** Decodes one message strictly; throws only {@linkcode DecodeError}. */
export function decodePathMessage(bytes: Uint8Array): PathMessage {
  const r = new Reader(bytes);
  const type = r.u8("type");
  let m: PathMessage;
  if (type === TYPES.candidates) {
    const n = r.u8("candidate count");
    if (n < 1 || n > MAX_CANDIDATES) {
      throw new DecodeError(
        "bad_count",
        `Cannot decode path message: ${n} candidates, expected 1 to ${MAX_CANDIDATES}`,
      );
    }
    m = {
      type: "candidates",
      endpoints: Array.from({ length: n }, (_, i) => readEndpoint(r, `candidate ${i}`)),
    };
  } else if (type === TYPES.probe || type === TYPES.probe_ack) {
    m = { type: type === TYPES.probe ? "probe" : "probe_ack", nonce: r.u64("nonce") };
  } else {
    throw new DecodeError(
      "unknown_type",
      `Cannot decode path message: type 0x${type.toString(16).padStart(2, "0")}`,
    );
  }
  r.end("path message");
  return m;
}

/** Encodes a message; throws `RangeError` for a field out of range. */
export function encodePathMessage(m: PathMessage): Uint8Array {
  const w = new Writer(MAX_PATH_MESSAGE_SIZE).u8(TYPES[m.type]);
  if (m.type === "candidates") {
    if (m.endpoints.length < 1 || m.endpoints.length > MAX_CANDIDATES) {
      throw new RangeError(
        `Invalid candidate count ${m.endpoints.length}: expected 1 to ${MAX_CANDIDATES}`,
      );
    }
    w.u8(m.endpoints.length);
    for (const e of m.endpoints) writeEndpoint(w, e);
  } else {
    if (m.nonce < 0n || m.nonce >= 1n << 64n) {
      throw new RangeError(`Invalid nonce ${m.nonce}: expected a u64`);
    }
    w.u64(m.nonce);
  }
  return w.finish();
}
