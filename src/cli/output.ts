/**
 * Output for people and for programs. With `--json`, stdout carries exactly
 * the API's JSON; without it, short human text in which every piece of
 * peer-supplied text is escaped.
 *
 * @module
 */
import { errorBody, type PilotError } from "../errors.ts";

// C0 and C1 controls, DEL, line/paragraph separators, and the bidirectional
// marks, overrides and isolates that can make a terminal show text other
// than what was sent. Matching control characters is the point here.
// deno-lint-ignore no-control-regex
const UNSAFE = new RegExp(
  "[\\u0000-\\u001f\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069]",
  "gu",
);

/** Escapes control and bidi characters so untrusted text prints as what it is. */
export function escapeText(text: string): string {
  return text.replace(UNSAFE, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

/** Writes a line to stdout. */
export function printLine(line: string): void {
  console.log(line);
}

/** Prints a success: the API envelope with `--json`, else the human text. */
export function printOk(json: boolean, data: unknown, human: string): void {
  if (json) printLine(JSON.stringify({ status: "ok", data }));
  else if (human !== "") printLine(human);
}

/** Prints an error: the API's error JSON on stdout with `--json`, else one line and a hint on stderr. */
export function printError(json: boolean, err: PilotError): void {
  if (json) {
    printLine(JSON.stringify(errorBody(err)));
    return;
  }
  console.error(`error: ${escapeText(err.message)}`);
  if (err.hint !== "") console.error(`hint: ${escapeText(err.hint)}`);
}

/** Formats aligned `key: value` lines. */
export function keyValues(rows: [string, unknown][]): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${(k + ":").padEnd(width + 1)} ${v}`).join("\n");
}

/** Formats rows as a left-aligned table with a header. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
