/**
 * What a sealed item carries (issue 10; `session/seal.ts` seals it to its
 * recipient, and a rendezvous mailbox holds it without being able to read
 * it): a message, a receipt for one, or a signed trust message. The kind
 * is inside the encryption, so the rendezvous cannot tell them apart.
 *
 * Layout (big-endian):
 *
 * | size | field |
 * |---:|---|
 * | 1 | kind: 1 message, 2 receipt, 3 trust |
 * | … | message: an envelope (`data_message.ts`), data at most {@linkcode MAILBOX_MESSAGE_MAX} bytes |
 * | … | receipt: status u8 (1 stored, 2 duplicate, 3 refused) · seq u64 · id (u8 length, 1 to 128 bytes of UTF-8) · code (u8 length, 0 to 32 bytes of `[a-z_]`, empty unless refused) |
 * | … | trust: a signed trust message (`trust_message.ts`), 1 to TRUST_MESSAGE_MAX bytes |
 *
 * @module
 */
import { MAX_MESSAGE_ID, TRUST_MESSAGE_MAX } from "../constants.ts";
import { DecodeError, Reader, utf8, Writer } from "../bytes.ts";
import {
  decodeEnvelope,
  encodeEnvelope,
  type Envelope,
  type ReceiptStatus,
} from "./data_message.ts";

/** Largest message data a mailbox carries (bytes); larger messages wait in the local outbox. */
export const MAILBOX_MESSAGE_MAX = 64 * 1024;
/** Longest refusal code in a receipt. */
const MAX_CODE = 32;

/** A message, its receipt, or a trust message, as sealed for a mailbox. */
export type SealedContent =
  | { kind: "message"; envelope: Envelope }
  | { kind: "receipt"; id: string; status: ReceiptStatus; seq: number; code: string }
  | { kind: "trust"; signed: Uint8Array };

const KINDS = ["message", "receipt", "trust"] as const;
const STATUSES: readonly ReceiptStatus[] = ["stored", "duplicate", "refused"];
const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Encodes sealed content; throws RangeError for a field out of range (a message too large for a mailbox). */
export function encodeSealedContent(c: SealedContent): Uint8Array {
  const kind = KINDS.indexOf(c.kind) + 1;
  switch (c.kind) {
    case "message": {
      const envelope = encodeEnvelope(c.envelope, MAILBOX_MESSAGE_MAX);
      return new Writer(1 + envelope.length).u8(kind).bytes(envelope).finish();
    }
    case "receipt": {
      const id = utf8(c.id);
      if (id.length === 0 || id.length > MAX_MESSAGE_ID) {
        throw new RangeError(`Receipt id is ${id.length} bytes; expected 1 to ${MAX_MESSAGE_ID}`);
      }
      if (!/^[a-z_]{0,32}$/.test(c.code) || (c.code !== "") !== (c.status === "refused")) {
        throw new RangeError(`Receipt code "${c.code}" does not fit status ${c.status}`);
      }
      if (!Number.isSafeInteger(c.seq) || c.seq < 0) {
        throw new RangeError(`Receipt seq ${c.seq} is not an integer below 2^53`);
      }
      return new Writer(12 + id.length + c.code.length)
        .u8(kind)
        .u8(STATUSES.indexOf(c.status) + 1)
        .u64(BigInt(c.seq))
        .u8(id.length)
        .bytes(id)
        .u8(c.code.length)
        .bytes(utf8(c.code))
        .finish();
    }
    case "trust": {
      if (c.signed.length === 0 || c.signed.length > TRUST_MESSAGE_MAX) {
        throw new RangeError(
          `Trust message is ${c.signed.length} bytes; expected 1 to ${TRUST_MESSAGE_MAX}`,
        );
      }
      return new Writer(1 + c.signed.length).u8(kind).bytes(c.signed).finish();
    }
  }
}

/** Decodes sealed content strictly; throws DecodeError only. */
export function decodeSealedContent(bytes: Uint8Array): SealedContent {
  const r = new Reader(bytes);
  const k = r.u8("kind");
  const kind = KINDS[k - 1];
  if (kind === undefined) throw new DecodeError("unknown_kind", `Unknown sealed item kind ${k}`);
  switch (kind) {
    case "message":
      return { kind, envelope: decodeEnvelope(r.rest(), MAILBOX_MESSAGE_MAX) };
    case "receipt": {
      const s = r.u8("status");
      const status = STATUSES[s - 1];
      if (status === undefined) throw new DecodeError("bad_status", `Unknown receipt status ${s}`);
      const seq = r.u64("seq");
      if (seq >= 2n ** 53n) throw new DecodeError("out_of_range", "Receipt seq is out of range");
      const idLength = r.u8("id length");
      if (idLength === 0 || idLength > MAX_MESSAGE_ID) {
        throw new DecodeError("bad_id", `Receipt id is ${idLength} bytes`);
      }
      let id: string;
      try {
        id = fatal.decode(r.bytes(idLength, "id"));
      } catch (e) {
        if (e instanceof DecodeError) throw e;
        throw new DecodeError("bad_utf8", "Receipt id is not valid UTF-8");
      }
      const codeLength = r.u8("code length");
      if (codeLength > MAX_CODE) {
        throw new DecodeError("too_long", `Receipt code is ${codeLength} bytes`);
      }
      const code = String.fromCharCode(...r.bytes(codeLength, "code"));
      if (!/^[a-z_]*$/.test(code) || (code !== "") !== (status === "refused")) {
        throw new DecodeError("bad_code", `Receipt code "${code}" does not fit status ${status}`);
      }
      r.end("receipt");
      return { kind, id, status, seq: Number(seq), code };
    }
    case "trust": {
      const signed = r.rest().slice();
      if (signed.length === 0 || signed.length > TRUST_MESSAGE_MAX) {
        throw new DecodeError("bad_length", `Trust message is ${signed.length} bytes`);
      }
      return { kind, signed };
    }
  }
}
