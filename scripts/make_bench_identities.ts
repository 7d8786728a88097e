/**
 * Writes `tests/fixtures/bench_identities.json`: identities for the benchmark
 * (`deno task bench` needs at least 1,000 distinct ones for its handshake and
 * per-session memory figures), made with the real stamp difficulty. The keys
 * are for benchmarks only.
 *
 * Resumable: identities already in the file are kept, and the file is
 * rewritten (temp file, then rename) after each new one, so an interrupted
 * run loses at most the identities being searched.
 *
 * Usage: `deno run --allow-read --allow-write scripts/make_bench_identities.ts [COUNT] [--jobs N]`
 *
 * @module
 */

import { createIdentity, encodeIdentityFile } from "../src/identity/mod.ts";

/** Number of identities the file holds when no count is given. */
export const DEFAULT_COUNT = 1024;

/** Where the identities are written. */
export const BENCH_IDENTITIES_URL = new URL(
  "../tests/fixtures/bench_identities.json",
  import.meta.url,
);

async function readExisting(): Promise<unknown[]> {
  try {
    const v = JSON.parse(await Deno.readTextFile(BENCH_IDENTITIES_URL));
    return Array.isArray(v) ? v : [];
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

async function write(files: unknown[]): Promise<void> {
  const tmp = new URL(`${BENCH_IDENTITIES_URL.pathname}.tmp`, "file://");
  await Deno.writeTextFile(tmp, JSON.stringify(files, null, 1) + "\n");
  await Deno.rename(tmp, BENCH_IDENTITIES_URL);
}

// Inside a worker: make identities until told to stop, posting each one.
const WORKER_NAME = "pilot-bench-identity";
const inWorker = (globalThis as { name?: unknown }).name === WORKER_NAME;
if (inWorker) {
  const scope = globalThis as unknown as {
    onmessage: ((e: MessageEvent<number>) => void) | null;
    postMessage(v: unknown): void;
  };
  scope.onmessage = async (e) => {
    for (let i = 0; i < e.data; i++) {
      scope.postMessage(JSON.parse(encodeIdentityFile(await createIdentity())));
    }
    scope.postMessage(null);
  };
}

/** Makes identities with `jobs` workers until the file holds `count`; returns how many it holds. */
export async function makeBenchIdentities(count: number, jobs: number): Promise<number> {
  const files = await readExisting();
  const missing = count - files.length;
  if (missing <= 0) return files.length;
  const started = performance.now();
  let writing = Promise.resolve();
  const workers = Array.from({ length: Math.min(jobs, missing) }, (_, j) => {
    const share = Math.floor(missing / jobs) + (j < missing % jobs ? 1 : 0);
    const w = new Worker(import.meta.url, { type: "module", name: WORKER_NAME });
    const done = new Promise<void>((resolve, reject) => {
      w.onerror = (e) => reject(new Error(`identity worker failed: ${e.message}`));
      w.onmessage = (e: MessageEvent<unknown>) => {
        if (e.data === null) return resolve();
        files.push(e.data);
        const s = ((performance.now() - started) / 1000).toFixed(0);
        console.error(`bench identity ${files.length}/${count} (${s} s)`);
        const snapshot = files.slice();
        writing = writing.then(() => write(snapshot));
      };
    });
    w.postMessage(share);
    return { w, done };
  });
  try {
    await Promise.all(workers.map((x) => x.done));
  } finally {
    for (const x of workers) x.w.terminate();
    await writing;
  }
  return files.length;
}

if (import.meta.main && !inWorker) {
  const args = [...Deno.args];
  let jobs = 1;
  const j = args.indexOf("--jobs");
  if (j >= 0) {
    jobs = Number(args[j + 1]);
    args.splice(j, 2);
  }
  const count = Number(args[0] ?? DEFAULT_COUNT);
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(jobs) || jobs < 1) {
    console.error(`Cannot make ${JSON.stringify(Deno.args)}: expected [COUNT] [--jobs N]`);
    Deno.exit(2);
  }
  const n = await makeBenchIdentities(count, jobs);
  console.error(`${BENCH_IDENTITIES_URL.pathname} holds ${n} identities`);
}
