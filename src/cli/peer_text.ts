/**
 * Peer-supplied text (reasons, hostnames, message previews, file names,
 * topics) made safe for a terminal. A peer chooses these strings, so in human
 * output they must not be able to draw anything but themselves: no line
 * breaks or wrapping into a fake row, no bidi reordering, nothing invisible,
 * no mark stacks that smear over neighbouring columns. `--json` never passes
 * through here: it stays exact.
 *
 * Pure functions only; the width counts terminal columns (wide CJK and emoji
 * count two, combining marks zero).
 *
 * @module
 */

/** Columns of peer text in a table cell or a labelled line (the ellipsis included). */
export const PEER_TEXT_WIDTH = 64;

/** Columns of a message or event preview on its own indented line (fits 80 with the indent). */
export const PREVIEW_WIDTH = 76;

/** Combining marks kept in a row after one base character; the rest are escaped. */
export const MAX_COMBINING_RUN = 3;

/** What ends a shortened string: visible, one column. */
export const TRUNCATION_MARKER = "…";

// Controls (Cc), format characters (Cf: bidi marks, overrides and isolates,
// zero-width space/joiners, word joiner, BOM, soft hyphen, tag characters),
// line/paragraph separators, surrogates, private use and unassigned code
// points, and the invisible fillers that are letters by category.
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}\u115f\u1160\u3164\uffa0]/u;
// Spaces other than U+0020 look like a space but are not one.
const ODD_SPACE = /[\p{Zs}]/u;
const MARK = /\p{M}/u;
const WIDE =
  /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1f64f}\u{1f900}-\u{1f9ff}\u{20000}-\u{3fffd}]/u;

/** The escape shown for one unsafe code point, e.g. `\u{202e}`. */
function escapeOf(c: string): string {
  return `\\u{${c.codePointAt(0)!.toString(16)}}`;
}

/** Terminal columns one safe code point takes. */
function widthOf(c: string): number {
  if (MARK.test(c)) return 0;
  return WIDE.test(c) ? 2 : 1;
}

/**
 * Splits text into printable units, each with its width: an escape, or one
 * character followed by at most `MAX_COMBINING_RUN` combining marks.
 */
function units(text: string): { text: string; width: number }[] {
  const out: { text: string; width: number }[] = [];
  let marks = 0;
  for (const c of text) {
    if (c === " ") {
      marks = 0;
      out.push({ text: c, width: 1 });
    } else if (UNSAFE.test(c) || ODD_SPACE.test(c)) {
      marks = 0;
      const e = escapeOf(c);
      out.push({ text: e, width: e.length });
    } else if (MARK.test(c)) {
      // A mark with no base, or one too many, is shown as what it is.
      const last = out.at(-1);
      if (last === undefined || last.text.startsWith("\\u{") || ++marks > MAX_COMBINING_RUN) {
        const e = escapeOf(c);
        out.push({ text: e, width: e.length });
      } else {
        last.text += c;
      }
    } else {
      marks = 0;
      out.push({ text: c, width: widthOf(c) });
    }
  }
  return out;
}

/**
 * Escapes what could draw something other than the text itself, keeping all
 * of it (for error messages that quote a peer's words).
 *
 * @example
 * ```ts
 * import { escapeText } from "./peer_text.ts";
 * escapeText("ok\u202eevil"); // "ok\\u{202e}evil"
 * ```
 */
export function escapeText(text: string): string {
  return units(text).map((u) => u.text).join("");
}

/** Terminal columns `text` takes as printed (after `escapeText`, it is exact). */
export function textWidth(text: string): number {
  let n = 0;
  for (const c of text) n += widthOf(c);
  return n;
}

/**
 * One line of peer text for human output: escaped, runs of spaces collapsed
 * (padding cannot push text into another column or row), and cut to `width`
 * columns with a visible `…` when longer.
 *
 * @example
 * ```ts
 * import { peerText } from "./peer_text.ts";
 * peerText("approve   me\n3fa2.09c1.77e4", 20); // "approve me\\u{a}3fa2…"
 * ```
 */
export function peerText(text: string, width: number = PEER_TEXT_WIDTH): string {
  const all = units(text.replace(/ {2,}/g, " "));
  const total = all.reduce((n, u) => n + u.width, 0);
  if (total <= width) return all.map((u) => u.text).join("");
  let used = 0;
  let out = "";
  for (const u of all) {
    if (used + u.width > width - 1) break;
    used += u.width;
    out += u.text;
  }
  return out + TRUNCATION_MARKER;
}
