/**
 * The drop reasons are one documented set: docs/PROTOCOL.md §5.11 lists
 * exactly `DROP_REASONS`, with the same meanings.
 */

import assert from "node:assert/strict";
import { DROP_REASONS } from "../src/session/drop_reason.ts";

Deno.test("PROTOCOL.md §5.11 lists exactly the session layer's drop reasons, with their meanings", async () => {
  const doc = await Deno.readTextFile(new URL("../docs/PROTOCOL.md", import.meta.url));
  const section = doc.split("<!-- drop-reasons -->")[1]?.split("<!-- /drop-reasons -->")[0];
  assert.ok(section !== undefined, "the drop-reasons table is marked in PROTOCOL.md");
  const rows = new Map<string, string>();
  for (const line of section.split("\n")) {
    const m = /^\| `([a-z0-9_]+)` \| (.+) \|$/.exec(line);
    if (m) rows.set(m[1]!, m[2]!);
  }
  assert.deepEqual(Object.fromEntries(rows), { ...DROP_REASONS });
});
