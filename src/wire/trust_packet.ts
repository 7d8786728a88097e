/**
 * Datagrams of the trust service (virtual port 444): a signed trust message
 * with a request id, and the acknowledgement that answers it. The sender
 * repeats a message until its acknowledgement arrives; the receiver answers a
 * repeat with the same acknowledgement and processes it only once.
 *
 * @module
 */
import { DecodeError, Reader, Writer } from "../bytes.ts";

/** What an acknowledgement reports. */
export const ACK_STATUSES = ["pending", "approved", "rejected", "recorded", "refused"] as const;
/** One acknowledgement status. */
export type AckStatus = typeof ACK_STATUSES[number];

/** A datagram on port 444. */
export type TrustPacket =
  | { op: "message"; requestId: Uint8Array; message: Uint8Array }
  | { op: "ack"; requestId: Uint8Array; status: AckStatus; detail: string };

/** Encodes a port-444 datagram. */
export function encodeTrustPacket(p: TrustPacket): Uint8Array {
  if (p.requestId.length !== 8) throw new RangeError("Request id must be 8 bytes");
  const w = new Writer(16 + (p.op === "message" ? p.message.length : 64));
  if (p.op === "message") return w.u8(1).bytes(p.requestId).bytes(p.message).finish();
  const detail = new TextEncoder().encode(p.detail);
  if (detail.length > 255) throw new RangeError("Acknowledgement detail is over 255 bytes");
  return w.u8(2).bytes(p.requestId).u8(ACK_STATUSES.indexOf(p.status)).u8(detail.length)
    .bytes(detail).finish();
}

/** Decodes a port-444 datagram strictly; throws DecodeError only. */
export function decodeTrustPacket(bytes: Uint8Array): TrustPacket {
  const r = new Reader(bytes);
  const op = r.u8("op");
  const requestId = r.bytes(8, "request id").slice();
  if (op === 1) {
    const message = r.rest().slice();
    if (message.length === 0) throw new DecodeError("truncated", "Trust packet carries no message");
    return { op: "message", requestId, message };
  }
  if (op === 2) {
    const s = r.u8("status");
    const status = ACK_STATUSES[s];
    if (status === undefined) throw new DecodeError("unknown_status", `Unknown ack status ${s}`);
    const raw = r.bytes(r.u8("detail length"), "detail");
    r.end("ack");
    let detail: string;
    try {
      detail = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(raw);
    } catch {
      throw new DecodeError("bad_utf8", "Ack detail is not valid UTF-8");
    }
    return { op: "ack", requestId, status, detail };
  }
  throw new DecodeError("unknown_op", `Unknown trust packet op ${op}`);
}
