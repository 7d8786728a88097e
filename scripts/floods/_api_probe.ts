/**
 * The flood harness's local user, in a process of its own: calls the
 * victim's `GET /v1/info` and `POST /v1/untrust` (of a key nobody trusts)
 * once a second until the deadline, and prints the worst time of each as
 * one JSON line. Run apart from the harness, whose event loop is busy
 * sending the flood, so the times are the victim's and not the harness's.
 *
 * Usage: `deno run --allow-read --allow-net scripts/floods/_api_probe.ts HOME SECONDS KEY`
 *
 * @module
 */
import { sleep } from "./_attack.ts";
import { Api } from "./_measure.ts";

const EVERY_MS = 1000;

/** Worst `info` and `untrust` times (ms) over `seconds`, with failures. */
export async function probeLocalApi(home: string, seconds: number, unknownKey: string) {
  const api = await Api.of(home);
  const deadline = performance.now() + seconds * 1000;
  let info = 0;
  let untrust = 0;
  const failures: string[] = [];
  let samples = 0;
  try {
    while (performance.now() < deadline) {
      const t = performance.now();
      const [a, b] = await Promise.all([
        api.call("GET", "/v1/info", undefined, 30_000),
        api.call("POST", "/v1/untrust", { peer: unknownKey }, 30_000),
      ]);
      samples++;
      info = Math.max(info, a.status === 200 ? a.ms : Infinity);
      untrust = Math.max(untrust, b.status === 200 ? b.ms : Infinity);
      if (a.status !== 200) failures.push(`info: ${JSON.stringify(a.json).slice(0, 120)}`);
      if (b.status !== 200) failures.push(`untrust: ${JSON.stringify(b.json).slice(0, 120)}`);
      await sleep(Math.max(0, EVERY_MS - (performance.now() - t)));
    }
  } finally {
    api.close();
  }
  return {
    info: Number.isFinite(info) ? Math.round(info) : null,
    untrust: Number.isFinite(untrust) ? Math.round(untrust) : null,
    samples,
    ...(failures.length > 0 ? { failures: failures.slice(0, 3) } : {}),
  };
}

if (import.meta.main) {
  const [home, seconds, key] = Deno.args;
  if (home === undefined || !(Number(seconds) > 0) || key === undefined) {
    console.error("usage: _api_probe.ts HOME SECONDS KEY");
    Deno.exit(2);
  }
  console.log(JSON.stringify(await probeLocalApi(home, Number(seconds), key)));
}
