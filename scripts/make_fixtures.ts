/**
 * Writes `tests/fixtures/identities.json`: identity files made once with the
 * real stamp difficulty, so integration tests start nodes without a stamp
 * search each. The keys are for tests only.
 *
 * Usage: `deno run --allow-write scripts/make_fixtures.ts [COUNT]`
 *
 * @module
 */

import { createIdentity, encodeIdentityFile } from "../src/identity/mod.ts";

/** Number of identities written when no count is given. */
export const DEFAULT_COUNT = 8;

/** Makes `count` identities and returns them as parsed identity-file objects. */
export async function makeFixtures(count: number): Promise<unknown[]> {
  const files: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    const identity = await createIdentity({
      onProgress: (tried) => console.error(`identity ${i + 1}/${count}: ${tried} hashes tried`),
    });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.error(`identity ${i + 1}/${count}: ${identity.address} in ${seconds} s`);
    files.push(JSON.parse(encodeIdentityFile(identity)));
  }
  return files;
}

if (import.meta.main) {
  const count = Number(Deno.args[0] ?? DEFAULT_COUNT);
  if (!Number.isInteger(count) || count < 1) {
    console.error(
      `Cannot make ${JSON.stringify(Deno.args[0])} identities: expected a positive integer`,
    );
    Deno.exit(2);
  }
  const files = await makeFixtures(count);
  const out = new URL("../tests/fixtures/identities.json", import.meta.url);
  await Deno.writeTextFile(out, JSON.stringify(files, null, 2) + "\n");
  console.error(`wrote ${out.pathname}`);
}
