/**
 * Output for people and for programs. With `--json`, stdout carries exactly
 * the API's JSON; without it, short human text in which every piece of
 * peer-supplied text goes through `peer_text.ts`.
 *
 * @module
 */
import { errorBody, type PilotError } from "../errors.ts";
import { escapeText, textWidth } from "./peer_text.ts";

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

/**
 * Formats rows as a left-aligned table with a header. Cells holding peer text
 * must already be `peerText()`; they belong in the last columns, after the
 * address and fingerprint a person decides by.
 */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) =>
    Math.max(textWidth(h), ...rows.map((r) => textWidth(r[i] ?? "")))
  );
  const pad = (c: string, w: number) => c + " ".repeat(Math.max(0, w - textWidth(c)));
  const line = (cells: string[]) => cells.map((c, i) => pad(c, widths[i]!)).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
