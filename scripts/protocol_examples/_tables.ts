/**
 * Markdown for the worked examples: hex dumps, field tables that prove their
 * fields make up the whole value, and value tables.
 *
 * @module
 */

import assert from "node:assert/strict";

/** Hex dump in 16-byte lines, two groups of 8, with a byte count header. */
export function hexDump(bytes: Uint8Array): string {
  const lines = [`# ${bytes.length} bytes`];
  for (let off = 0; off < bytes.length; off += 16) {
    const row = [...bytes.subarray(off, off + 16)].map((b) => b.toString(16).padStart(2, "0"));
    const left = row.slice(0, 8).join(" ");
    const right = row.slice(8).join(" ");
    lines.push(`${off.toString(16).padStart(4, "0")}  ${right ? `${left}  ${right}` : left}`);
  }
  return "```text\n" + lines.join("\n") + "\n```";
}

/** Short hex for a table cell: in full up to 32 bytes, else its ends. */
function cell(bytes: Uint8Array): string {
  if (bytes.length === 0) return "(none)";
  if (bytes.length <= 32) return `\`${bytes.toHex()}\``;
  return `\`${bytes.subarray(0, 8).toHex()}…${bytes.subarray(bytes.length - 8).toHex()}\``;
}

/** One row of a field table: a named run of bytes and what it means. */
export interface Field {
  /** The field's name, as PROTOCOL.md's layout tables spell it. */
  name: string;
  /** The field's bytes. */
  bytes: Uint8Array;
  /** What the value means (Markdown). */
  note?: string;
}

/** A table of consecutive fields with offsets; asserts they make up `whole`. */
export function fieldTable(whole: Uint8Array, fields: Field[]): string {
  const rows = ["| offset | size | field | bytes | meaning |", "|---:|---:|---|---|---|"];
  let off = 0;
  for (const f of fields) {
    assert.equal(
      whole.subarray(off, off + f.bytes.length).toHex(),
      f.bytes.toHex(),
      `field ${f.name} at offset ${off}`,
    );
    rows.push(`| ${off} | ${f.bytes.length} | ${f.name} | ${cell(f.bytes)} | ${f.note ?? ""} |`);
    off += f.bytes.length;
  }
  assert.equal(off, whole.length, "fields cover the whole value");
  return rows.join("\n");
}

/** A two-column table of named values. */
export function valueTable(rows: [string, string][]): string {
  return ["| value | |", "|---|---|", ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join("\n");
}
