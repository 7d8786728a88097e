/**
 * Names for received files: a peer's file name is untrusted text, so it is
 * turned into one harmless name component before it touches the disk
 * (docs/PROTOCOL.md §9.4). Pure functions, no I/O.
 *
 * @module
 */
import { truncateUtf8 } from "../bytes.ts";

/** Longest stored file name in bytes of UTF-8 (leaves room for ` (n)` within NAME_MAX). */
export const MAX_STORED_NAME = 200;
/** Longest extension (dot included, bytes of UTF-8) kept apart when a name is cut or numbered. */
export const MAX_EXTENSION = 16;

// C0, DEL, C1 controls; zero-width and bidi formatting; line/paragraph separators; BOM;
// interlinear annotations. Control characters are exactly what this pattern is for.
const UNSAFE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/gu;
const encoder = new TextEncoder();

/**
 * Splits a name into stem and extension (dot included); no extension when
 * the dot leads the name or the extension is over MAX_EXTENSION bytes.
 *
 * @example
 * ```ts
 * import { splitExtension } from "./safe_file_name.ts";
 * splitExtension("report.pdf"); // { stem: "report", ext: ".pdf" }
 * ```
 */
export function splitExtension(name: string): { stem: string; ext: string } {
  const dot = name.lastIndexOf(".");
  if (dot <= 0 || encoder.encode(name.slice(dot)).length > MAX_EXTENSION) {
    return { stem: name, ext: "" };
  }
  return { stem: name.slice(0, dot), ext: name.slice(dot) };
}

/**
 * Turns an untrusted file name into one that is safe as a single name in
 * one folder: never empty, never `.`/`..`, no path separator, no control
 * or invisible formatting characters, no leading dot or dash, at most
 * MAX_STORED_NAME bytes.
 *
 * @example
 * ```ts
 * import { safeFileName } from "./safe_file_name.ts";
 * safeFileName("../../etc/passwd"); // "passwd"
 * safeFileName(".hidden"); // "hidden"
 * ```
 */
export function safeFileName(name: string): string {
  let s = name.normalize("NFC");
  const slash = Math.max(s.lastIndexOf("/"), s.lastIndexOf("\\"));
  s = s.slice(slash + 1);
  s = s.replace(UNSAFE, "_");
  s = s.replace(/^[\s.\-]+/u, "").replace(/[\s.]+$/u, "");
  if (s === "") s = "file";
  if (encoder.encode(s).length <= MAX_STORED_NAME) return s;
  const { stem, ext } = splitExtension(s);
  const kept = truncateUtf8(stem, MAX_STORED_NAME - encoder.encode(ext).length).replace(
    /[\s.]+$/u,
    "",
  );
  return (kept === "" ? "file" : kept) + ext;
}

/**
 * The n-th candidate for storing `name` where it may be taken already:
 * `name`, then `name (1).ext`, `name (2).ext`, … (`n` may also be a random
 * tag, the last resort).
 */
export function numberedName(name: string, n: number | string): string {
  if (n === 0) return name;
  const { stem, ext } = splitExtension(name);
  return `${stem} (${n})${ext}`;
}
