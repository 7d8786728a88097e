/**
 * Peer text in human output: one line, a fixed width with a visible marker,
 * and nothing that draws something other than the text itself.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  escapeText,
  MAX_COMBINING_RUN,
  PEER_TEXT_WIDTH,
  peerText,
  textWidth,
  TRUNCATION_MARKER,
} from "../src/cli/peer_text.ts";

// What must never reach a terminal from a peer.
const INVISIBLE_OR_CONTROL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cn}]/u;

Deno.test("peerText() leaves ordinary short text as it is", () => {
  assert.equal(
    peerText("approve me, I run the nightly jobs"),
    "approve me, I run the nightly jobs",
  );
  assert.equal(peerText("données für 東京"), "données für 東京");
});

Deno.test("peerText() escapes line breaks, tabs and terminal escapes onto one line", () => {
  assert.equal(peerText("a\nb\r\tc\u001b[2Jd"), "a\\u{a}b\\u{d}\\u{9}c\\u{1b}[2Jd");
  assert.equal(peerText("x\u2028y\u2029z\u0085"), "x\\u{2028}y\\u{2029}z\\u{85}");
});

Deno.test("peerText() escapes bidi overrides, isolates and marks", () => {
  for (
    const c of ["\u202e", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e", "\u061c"]
  ) {
    const out = peerText(`ab${c}cd`);
    assert.ok(!out.includes(c), `U+${c.codePointAt(0)!.toString(16)}`);
    assert.equal(out, `ab\\u{${c.codePointAt(0)!.toString(16)}}cd`);
  }
});

Deno.test("peerText() escapes zero-width characters, the BOM and the soft hyphen", () => {
  for (const c of ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u3164"]) {
    assert.equal(peerText(`a${c}b`), `a\\u{${c.codePointAt(0)!.toString(16)}}b`);
  }
});

Deno.test("peerText() escapes Unicode tag characters that smuggle hidden ASCII", () => {
  const hidden = [..."run"].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join(
    "",
  );
  const out = peerText(`hello${hidden}`);
  assert.equal(out, "hello\\u{e0072}\\u{e0075}\\u{e006e}");
});

Deno.test("peerText() escapes spaces that are not U+0020", () => {
  assert.equal(peerText("a\u00a0b\u3000c"), "a\\u{a0}b\\u{3000}c");
});

Deno.test("peerText() keeps a few combining marks and escapes a long run", () => {
  assert.equal(peerText("e\u0301"), "e\u0301", "an accent stays");
  const zalgo = "e" + "\u0301".repeat(10);
  const out = peerText(zalgo);
  assert.equal(out, "e" + "\u0301".repeat(MAX_COMBINING_RUN) + "\\u{301}".repeat(7));
  assert.equal(peerText("\u0301x"), "\\u{301}x", "a mark with no base");
});

Deno.test("peerText() cuts long text to the width with a visible marker", () => {
  const out = peerText("x".repeat(500));
  assert.equal(textWidth(out), PEER_TEXT_WIDTH);
  assert.ok(out.endsWith(TRUNCATION_MARKER));
  assert.equal(peerText("abcdef", 4), "abc…");
  assert.equal(peerText("abcd", 4), "abcd", "exactly the width needs no marker");
});

Deno.test("peerText() counts wide characters as two columns and never splits an escape", () => {
  const out = peerText("東".repeat(100), 11);
  assert.equal(out, "東".repeat(5) + TRUNCATION_MARKER);
  assert.equal(peerText("ab\u202ecdef", 9), "ab…", "the escape does not fit whole, so it goes");
});

Deno.test("peerText() collapses space padding so a reason cannot wrap into a fake row", () => {
  const fake = "please approve" + " ".repeat(300) +
    "3fa2.09c1.77e4  ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567  trusted-host";
  const out = peerText(fake);
  assert.ok(!out.includes("  "), out);
  assert.ok(!out.includes("\n"), out);
  assert.ok(textWidth(out) <= PEER_TEXT_WIDTH, out);
});

Deno.test("escapeText() keeps all the text and escapes the same characters", () => {
  const long = "y".repeat(500) + "\u202e";
  assert.equal(escapeText(long), "y".repeat(500) + "\\u{202e}");
});

Deno.test("peerText() output of any string is one line, within the width, and visible", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "binary", maxLength: 300 }),
      fc.integer({ min: 2, max: 80 }),
      (s, w) => {
        const out = peerText(s, w);
        assert.ok(!INVISIBLE_OR_CONTROL.test(out), JSON.stringify(out));
        assert.ok(textWidth(out) <= w, JSON.stringify(out));
      },
    ),
    { numRuns: 2000 },
  );
});
