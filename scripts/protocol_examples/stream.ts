/**
 * The stream examples (§8.9): an ACK with a SACK block, and the opening of a
 * real stream between two stream muxes on a fake clock.
 *
 * @module
 */

import assert from "node:assert/strict";
import { utf8 } from "../../src/bytes.ts";
import { MAX_DATAGRAM } from "../../src/constants.ts";
import { mssFor } from "../../src/stream/mss.ts";
import { StreamMux, type StreamPacket } from "../../src/stream/mux.ts";
import {
  decodeSegment,
  encodeSegment,
  SEG_ACK,
  SEG_FIN,
  SEG_PROBE,
  SEG_RST,
  SEG_SYN,
} from "../../src/wire/stream_segment.ts";
import { type Field, fieldTable, hexDump } from "./_tables.ts";
import { hexIndex } from "./_values.ts";

/** The fixed inputs of the stream examples (§8). */
export const WORKED_STREAM = {
  /** The opener's connection id (a real opener draws a random non-zero u32). */
  connId: 0x5e9a_0001,
  /** The opener's (ephemeral) port and the port it connects to. */
  srcPort: 49_152,
  dstPort: 9_000,
  /** Stream bytes the opener writes once the stream is open. */
  data: "hi",
  /** The ACK of `tests/stream_segment_test.ts`: conn 0x0a0b0c0d, ack 1001, window 65536, SACK [2329, 3657). */
  ack: { connId: 0x0a0b_0c0d, seq: 1, ack: 1001, window: 65_536, sack: [2_329, 3_657] },
} as const;

/** Segment flag bits and their names, in the order PROTOCOL.md lists them. */
const FLAG_NAMES: [number, string][] = [
  [SEG_SYN, "SYN"],
  [SEG_ACK, "ACK"],
  [SEG_FIN, "FIN"],
  [SEG_RST, "RST"],
  [SEG_PROBE, "PROBE"],
];

/** Flag names joined by `\|` (a bare `|` would end the table cell). */
function flagNames(flags: number): string {
  return FLAG_NAMES.filter(([bit]) => (flags & bit) !== 0).map(([, n]) => n).join("\\|");
}

/** The field table of a stream segment. */
function segmentTable(bytes: Uint8Array, data: string): string {
  const s = decodeSegment(bytes);
  assert.equal(encodeSegment(s).toHex(), bytes.toHex());
  const fields: Field[] = [
    { name: "flags", bytes: bytes.subarray(0, 1), note: flagNames(s.flags) },
    { name: "nsack", bytes: bytes.subarray(1, 2), note: `${s.sack.length}` },
    { name: "conn_id", bytes: bytes.subarray(2, 6), note: hexIndex(s.connId) },
    { name: "seq", bytes: bytes.subarray(6, 14), note: `${s.seq}` },
    { name: "ack", bytes: bytes.subarray(14, 22), note: `${s.ack}` },
    { name: "window", bytes: bytes.subarray(22, 26), note: `${s.window}` },
  ];
  s.sack.forEach((b, i) => {
    fields.push({
      name: `sack[${i}]`,
      bytes: bytes.subarray(26 + 8 * i, 34 + 8 * i),
      note: `[${b.start}, ${b.end}) = ack + ${b.start - s.ack} … ack + ${b.end - s.ack}`,
    });
  });
  if (s.data.length > 0) fields.push({ name: "data", bytes: s.data, note: data });
  return fieldTable(bytes, fields);
}

/** Runs two real muxes on a fake clock and returns every segment between them. */
async function streamTrace(): Promise<{ from: "a" | "b"; packet: StreamPacket }[]> {
  let now = 0;
  const trace: { from: "a" | "b"; packet: StreamPacket }[] = [];
  const toA: StreamPacket[] = [];
  const toB: StreamPacket[] = [];
  const mss = mssFor(MAX_DATAGRAM);
  const a = new StreamMux({
    send: (packet) => trace.push({ from: "a", packet }) && toB.push(packet),
    now: () => now,
    mss,
    random: () => WORKED_STREAM.connId,
  });
  const b = new StreamMux({
    send: (packet) => trace.push({ from: "b", packet }) && toA.push(packet),
    now: () => now,
    mss,
  });
  b.listen(WORKED_STREAM.dstPort, () => {});
  const run = async () => {
    for (let ms = 0; ms < 50; ms++) {
      while (toA.length > 0 || toB.length > 0) {
        const x = toB.shift();
        if (x !== undefined) b.receive(x);
        const y = toA.shift();
        if (y !== undefined) a.receive(y);
      }
      now++;
      a.tick();
      b.tick();
      await Promise.resolve();
    }
  };
  const opening = a.connect(WORKED_STREAM.dstPort, { localPort: WORKED_STREAM.srcPort });
  await run();
  const conn = await opening;
  const wrote = conn.write(utf8(WORKED_STREAM.data));
  await run();
  await wrote;
  a.close("example done");
  b.close("example done");
  return trace;
}

/** The stream regions of §8.9, by id. */
export async function streamExamples(): Promise<Record<string, string>> {
  const w = WORKED_STREAM.ack;
  const ack = encodeSegment({
    flags: SEG_ACK,
    connId: w.connId,
    seq: w.seq,
    ack: w.ack,
    window: w.window,
    sack: [{ start: w.sack[0], end: w.sack[1] }],
    data: new Uint8Array(0),
  });
  const trace = await streamTrace();
  const [syn, synAck, ack3, data, dataAck] = trace;
  assert.ok(trace.length === 5 && syn && synAck && ack3 && data && dataAck, "five segments");
  const mss = mssFor(MAX_DATAGRAM);
  let n = 0;
  const step = (t: { from: "a" | "b"; packet: StreamPacket }, what: string, dataNote = "") =>
    [
      `**${++n}. ${t.from === "a" ? "Opener → listener" : "Listener → opener"}** ` +
      `(port ${t.packet.srcPort} → ${t.packet.dstPort}, ${t.packet.payload.length} bytes): ${what}.`,
      "",
      segmentTable(t.packet.payload, dataNote),
      "",
      hexDump(t.packet.payload),
    ].join("\n");
  const mssNote = `MSS ${mss}`;
  return {
    "worked-stream-ack": [
      `A pure ACK for connection ${
        hexIndex(w.connId)
      } that has every byte below offset ${w.ack}, ` +
      `accepts ${w.window} more, and has also received [${w.sack[0]}, ${w.sack[1]}) ` +
      `(the example of \`tests/stream_segment_test.ts\`):`,
      "",
      segmentTable(ack, ""),
      "",
      hexDump(ack),
    ].join("\n"),
    "worked-stream-open": [
      `Two real stream muxes (\`StreamMux\`, MSS ${mss} = \`mssFor(${MAX_DATAGRAM})\`) on a fake ` +
      `clock; the opener's connection id is fixed at ${
        hexIndex(WORKED_STREAM.connId)
      } instead of ` +
      `random. Each segment is the payload of an inner packet of kind \`0x02\` (§4).`,
      "",
      step(
        syn,
        "SYN at offset 0; its data is the largest segment data the opener accepts, its window " +
          "the opener's first receive window (the per-connection reserve, grown on demand)",
        mssNote,
      ),
      "",
      step(synAck, "SYN|ACK: acknowledges the SYN (ack 1) and carries the listener's MSS", mssNote),
      "",
      step(ack3, "ACK: the stream is open at both ends; `connect()` has resolved"),
      "",
      step(
        data,
        `the opener writes \`${WORKED_STREAM.data}\`: data starts at offset 1, after the SYN`,
        `\`${WORKED_STREAM.data}\``,
      ),
      "",
      step(
        dataAck,
        `the listener acknowledges both bytes (ack 3); its window shrank by the ${WORKED_STREAM.data.length} bytes not yet read`,
      ),
    ].join("\n"),
  };
}
