/**
 * The messages examples (§9.5): an envelope, its MESSAGE frame and receipt on
 * port 1001, and a small file with its receipt; also the frame caps of §9.2.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { utf8 } from "../../src/bytes.ts";
import { PORT_MESSAGES } from "../../src/constants.ts";
import { decodeEnvelope, encodeEnvelope, type Envelope } from "../../src/wire/data_message.ts";
import {
  decodeFrame as decodeExchangeFrame,
  encodeFrame as encodeExchangeFrame,
  FRAME_FILE_BEGIN,
  FRAME_FILE_DATA,
  FRAME_FILE_END,
  FRAME_MESSAGE,
  FRAME_RECEIPT,
  frameCap,
  type FrameKind,
  frameKindName,
  type MessageFrame,
} from "../../src/wire/message_frame.ts";
import { type Field, fieldTable, hexDump } from "./_tables.ts";
import { u32, u64 } from "./_values.ts";

/** The fixed inputs of the message example (port 1001). */
export const WORKED_DATA = {
  id: "job-1",
  type: "json",
  data: '{"command":"decrypt_payload"}',
  /** The inbox seq the receiver stored the message under. */
  seq: 1,
  /** The file's transfer id (a sender picks a random UUID unless told). */
  fileId: "report-1",
  fileName: "report.txt",
  fileContent: "nightly run: 42 jobs, 0 failed\n",
  /** The seq of the file in the receiver's received files. */
  fileSeq: 1,
} as const;

/** Encodes a port-1001 frame, asserting the decoder reads back exactly what was written. */
function exchangeChecked(frame: MessageFrame): Uint8Array {
  const bytes = encodeExchangeFrame(frame);
  assert.equal(encodeExchangeFrame(decodeExchangeFrame(bytes)).toHex(), bytes.toHex());
  return bytes;
}

/** The kind and length fields every port-1001 frame starts with. */
function headerFields(bytes: Uint8Array, kind: FrameKind): Field[] {
  return [
    { name: "kind", bytes: bytes.subarray(0, 1), note: `${kind} = ${frameKindName(kind)}` },
    {
      name: "length",
      bytes: bytes.subarray(1, 5),
      note: `${bytes.length - 5}: body bytes (cap ${frameCap(kind)})`,
    },
  ];
}

/** A length-prefixed UTF-8 string as its two fields. */
function stringFields(name: string, text: string, note = `\`${text}\``): Field[] {
  const b = utf8(text);
  return [
    { name: `${name}_len`, bytes: Uint8Array.of(b.length), note: `${b.length}` },
    { name, bytes: b, note: b.length === 0 ? "" : note },
  ];
}

/** The messages regions of §9, by id. */
export function messagesExamples(): Record<string, string> {
  const envelope: Envelope = {
    id: WORKED_DATA.id,
    type: WORKED_DATA.type,
    correlationId: "",
    inReplyTo: "",
    expiresAt: 0,
    meta: {},
    data: utf8(WORKED_DATA.data),
  };
  const env = encodeEnvelope(envelope);
  assert.deepEqual(decodeEnvelope(env), envelope);
  const message = exchangeChecked({ kind: "message", envelope });
  const messageReceipt = exchangeChecked({
    kind: "receipt",
    receipt: {
      subject: "message",
      status: "stored",
      seq: WORKED_DATA.seq,
      id: WORKED_DATA.id,
      detail: "",
    },
  });
  const content = utf8(WORKED_DATA.fileContent);
  const sha = new Uint8Array(createHash("sha256").update(content).digest());
  const begin = exchangeChecked({
    kind: "file_begin",
    file: { id: WORKED_DATA.fileId, name: WORKED_DATA.fileName, size: content.length, sha256: sha },
  });
  const chunk = exchangeChecked({ kind: "file_data", data: content });
  const end = exchangeChecked({ kind: "file_end", cancelled: false });
  const fileReceipt = exchangeChecked({
    kind: "receipt",
    receipt: {
      subject: "file",
      status: "stored",
      seq: WORKED_DATA.fileSeq,
      id: WORKED_DATA.fileId,
      detail: "",
      name: WORKED_DATA.fileName,
      size: content.length,
      sha256: sha,
    },
  });
  const id = utf8(WORKED_DATA.id);
  const data = utf8(WORKED_DATA.data);
  const kinds: FrameKind[] = [
    FRAME_MESSAGE,
    FRAME_FILE_BEGIN,
    FRAME_FILE_DATA,
    FRAME_FILE_END,
    FRAME_RECEIPT,
  ];
  const receiptHead = (r: Uint8Array, subject: string, seq: number, rid: string): Field[] => [
    ...headerFields(r, FRAME_RECEIPT),
    { name: "status", bytes: r.subarray(5, 6), note: "0 = stored" },
    { name: "subject", bytes: r.subarray(6, 7), note: subject },
    { name: "seq", bytes: u64(seq), note: `${seq}` },
    ...stringFields("id", rid),
    ...stringFields("detail", ""),
  ];
  return {
    "exchange-frame-caps": [
      "| kind | name | largest body (bytes) |",
      "|---:|---|---:|",
      ...kinds.map((k) => `| ${k} | ${frameKindName(k)} | ${frameCap(k)} |`),
    ].join("\n"),
    "worked-data-envelope": [
      `\`pilot send-message beta --data '${WORKED_DATA.data}' --type ${WORKED_DATA.type} ` +
      `--id ${WORKED_DATA.id}\` builds this envelope (${env.length} bytes):`,
      "",
      fieldTable(env, [
        { name: "version", bytes: env.subarray(0, 1), note: "1" },
        { name: "type", bytes: env.subarray(1, 2), note: `${env[1]} = ${WORKED_DATA.type}` },
        { name: "id_len", bytes: Uint8Array.of(id.length), note: `${id.length}` },
        { name: "id", bytes: id, note: `\`${WORKED_DATA.id}\`` },
        { name: "correlation_id_len", bytes: Uint8Array.of(0), note: "0 = none" },
        { name: "correlation_id", bytes: new Uint8Array(0), note: "" },
        { name: "in_reply_to_len", bytes: Uint8Array.of(0), note: "0 = none" },
        { name: "in_reply_to", bytes: new Uint8Array(0), note: "" },
        { name: "expires_at", bytes: new Uint8Array(8), note: "0 = none" },
        { name: "meta_count", bytes: Uint8Array.of(0), note: "0" },
        { name: "data_len", bytes: u32(data.length), note: `${data.length}` },
        { name: "data", bytes: data, note: `\`${WORKED_DATA.data}\`` },
      ]),
      "",
      hexDump(env),
    ].join("\n"),
    "worked-data-message": [
      `On the sender's port-${PORT_MESSAGES} stream it travels as one MESSAGE frame ` +
      `(${message.length} bytes):`,
      "",
      fieldTable(message, [
        ...headerFields(message, FRAME_MESSAGE),
        { name: "body", bytes: env, note: "the envelope above" },
      ]),
      "",
      hexDump(message),
      "",
      `The receiver appends the message to its inbox log, fsyncs, and only then writes the ` +
      `RECEIPT frame (${messageReceipt.length} bytes) on the same stream:`,
      "",
      fieldTable(
        messageReceipt,
        receiptHead(messageReceipt, "1 = message", WORKED_DATA.seq, WORKED_DATA.id).map((f) =>
          f.name === "seq" ? { ...f, note: `${WORKED_DATA.seq}: its inbox seq` } : f
        ),
      ),
      "",
      hexDump(messageReceipt),
    ].join("\n"),
    "worked-data-file": [
      `\`pilot send-file beta ${WORKED_DATA.fileName}\` with the ${content.length}-byte content ` +
      `\`${JSON.stringify(WORKED_DATA.fileContent).slice(1, -1)}\`, transfer id ` +
      `\`${WORKED_DATA.fileId}\`. FILE_BEGIN (${begin.length} bytes):`,
      "",
      fieldTable(begin, [
        ...headerFields(begin, FRAME_FILE_BEGIN),
        ...stringFields("id", WORKED_DATA.fileId),
        ...stringFields("name", WORKED_DATA.fileName, `\`${WORKED_DATA.fileName}\` (untrusted)`),
        { name: "size", bytes: u64(content.length), note: `${content.length}` },
        { name: "sha256", bytes: sha, note: "SHA-256 of the content" },
      ]),
      "",
      hexDump(begin),
      "",
      `The content in one FILE_DATA frame (${chunk.length} bytes; a larger file takes as many ` +
      `frames of up to ${frameCap(FRAME_FILE_DATA)} bytes as it needs), then FILE_END ` +
      `(${end.length} bytes):`,
      "",
      fieldTable(chunk, [
        ...headerFields(chunk, FRAME_FILE_DATA),
        { name: "data", bytes: content, note: "the content" },
      ]),
      "",
      hexDump(chunk),
      "",
      fieldTable(end, [
        ...headerFields(end, FRAME_FILE_END),
        { name: "outcome", bytes: end.subarray(5), note: "0 = complete" },
      ]),
      "",
      hexDump(end),
      "",
      `The receiver checks size and SHA-256, fsyncs the file under its stored name, appends ` +
      `the index record, and only then answers (${fileReceipt.length} bytes):`,
      "",
      fieldTable(fileReceipt, [
        ...receiptHead(fileReceipt, "2 = file", WORKED_DATA.fileSeq, WORKED_DATA.fileId).map((
          f,
        ) =>
          f.name === "seq" ? { ...f, note: `${WORKED_DATA.fileSeq}: its received-files seq` } : f
        ),
        ...stringFields("name", WORKED_DATA.fileName, `stored as \`${WORKED_DATA.fileName}\``),
        { name: "size", bytes: u64(content.length), note: `${content.length}` },
        { name: "sha256", bytes: sha, note: "SHA-256 of what it stored" },
      ]),
      "",
      hexDump(fileReceipt),
    ].join("\n"),
  };
}
