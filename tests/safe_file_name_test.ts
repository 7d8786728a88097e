import assert from "node:assert/strict";
import fc from "fast-check";
import { truncateUtf8 } from "../src/bytes.ts";
import {
  MAX_EXTENSION,
  MAX_STORED_NAME,
  numberedName,
  safeFileName,
  splitExtension,
} from "../src/daemon/safe_file_name.ts";

const encoder = new TextEncoder();

Deno.test("safeFileName() keeps one harmless name component out of hostile names", () => {
  const cases: [string, string][] = [
    ["../../etc/passwd", "passwd"],
    ["a/b", "b"],
    ["..", "file"],
    [".", "file"],
    ["", "file"],
    ["dir/", "file"],
    [".hidden", "hidden"],
    ["...x", "x"],
    ["-rf", "rf"],
    ["C:\\Users\\x\\report.pdf", "report.pdf"],
    ["a\u0000b.txt", "a_b.txt"],
    ["line\nbreak\r\t.txt", "line_break__.txt"],
    ["evil\u202etxt.exe", "evil_txt.exe"],
    ["zero\u200bwidth", "zero_width"],
    ["trailing dots. . .", "trailing dots"],
    ["caf\u0065\u0301.txt", "caf\u00e9.txt"],
  ];
  for (const [input, expected] of cases) {
    assert.equal(safeFileName(input), expected, JSON.stringify(input));
  }
});

Deno.test("safeFileName() cuts a long name to MAX_STORED_NAME bytes, keeping its extension and whole characters", () => {
  const long = "é".repeat(150) + ".tar.gz"; // 307 bytes
  const safe = safeFileName(long);
  assert.ok(encoder.encode(safe).length <= MAX_STORED_NAME);
  assert.ok(safe.endsWith(".gz"));
  assert.ok(safe.startsWith("éé"));
  assert.ok(!safe.includes("\ufffd"));
  const noExt = safeFileName("x".repeat(300));
  assert.equal(noExt, "x".repeat(MAX_STORED_NAME));
});

Deno.test("safeFileName() always yields one non-empty, non-hidden component within MAX_STORED_NAME bytes", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary", maxLength: 400 }), (name) => {
      const safe = safeFileName(name);
      assert.ok(safe.length > 0);
      assert.ok(!safe.includes("/") && !safe.includes("\\"), safe);
      assert.ok(!safe.startsWith(".") && !safe.startsWith("-"), safe);
      assert.ok(encoder.encode(safe).length <= MAX_STORED_NAME, safe);
      assert.equal(safeFileName(safe), safe, "sanitising twice changes nothing");
    }),
    { numRuns: 2000 },
  );
});

Deno.test("splitExtension() keeps a short extension apart and leaves dot-files and long tails whole", () => {
  assert.deepEqual(splitExtension("report.pdf"), { stem: "report", ext: ".pdf" });
  assert.deepEqual(splitExtension("a.tar.gz"), { stem: "a.tar", ext: ".gz" });
  assert.deepEqual(splitExtension(".profile"), { stem: ".profile", ext: "" });
  assert.deepEqual(splitExtension("noext"), { stem: "noext", ext: "" });
  const long = "x." + "y".repeat(MAX_EXTENSION);
  assert.deepEqual(splitExtension(long), { stem: long, ext: "" });
});

Deno.test("numberedName() numbers before the extension: name, name (1).ext, name (2).ext", () => {
  assert.equal(numberedName("a.txt", 0), "a.txt");
  assert.equal(numberedName("a.txt", 1), "a (1).txt");
  assert.equal(numberedName("a", 2), "a (2)");
  assert.equal(numberedName("a.txt", "tag"), "a (tag).txt");
});

Deno.test("truncateUtf8() cuts on a character boundary and never grows a short text", () => {
  assert.equal(truncateUtf8("aé", 2), "a");
  assert.equal(truncateUtf8("abc", 3), "abc");
  assert.equal(truncateUtf8("a😀", 4), "a");
  assert.equal(truncateUtf8("a😀", 5), "a😀");
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", maxLength: 50 }), fc.nat(120), (s, max) => {
      const cut = truncateUtf8(s, max);
      assert.ok(encoder.encode(cut).length <= max);
      assert.ok(s.startsWith(cut), JSON.stringify([s, cut]));
    }),
  );
});
