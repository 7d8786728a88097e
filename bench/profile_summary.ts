/**
 * Summarises a V8 `.cpuprofile` (as `deno run --cpu-prof` writes it): the
 * functions with the most self time and the most total (inclusive) time,
 * by `function file:line`, plus the share of idle and GC time.
 *
 * Usage: `deno run --allow-read bench/profile_summary.ts FILE.cpuprofile [TOP]`
 *
 * @module
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One row of the summary. */
export interface Row {
  /** `function file:line`. */
  name: string;
  /** Milliseconds. */
  ms: number;
  /** Share of all sampled time, in percent. */
  percent: number;
}

function label(n: ProfileNode): string {
  const f = n.callFrame;
  const file = f.url.replace(/^file:\/\/.*?\/(src|bench|tests|main\.ts)/, "$1")
    .replace(/^.*\/node_modules\//, "npm:");
  return `${f.functionName || "(anonymous)"} ${file}:${f.lineNumber + 1}`;
}

/** Self and inclusive time per function of a parsed profile. */
export function summarise(p: Profile): { total: number; self: Row[]; inclusive: Row[] } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfMs = new Map<number, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const ms = (p.timeDeltas[i] ?? 0) / 1000;
    total += ms;
    selfMs.set(id, (selfMs.get(id) ?? 0) + ms);
  });
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, ms] of selfMs) {
    const node = byId.get(id)!;
    self.set(label(node), (self.get(label(node)) ?? 0) + ms);
    // Each function counted once per sample, however deep it recurses.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const l = label(byId.get(cur)!);
      if (seen.has(l)) continue;
      seen.add(l);
      inclusive.set(l, (inclusive.get(l) ?? 0) + ms);
    }
  }
  const rows = (m: Map<string, number>) =>
    [...m].map(([name, ms]) => ({
      name,
      ms: Math.round(ms),
      percent: Math.round((ms / total) * 1000) / 10,
    })).sort((a, b) => b.ms - a.ms);
  return { total, self: rows(self), inclusive: rows(inclusive) };
}

if (import.meta.main) {
  const [file, topText] = Deno.args;
  if (file === undefined) {
    console.error("Usage: profile_summary.ts FILE.cpuprofile [TOP]");
    Deno.exit(2);
  }
  const top = Number(topText ?? 25);
  const { total, self, inclusive } = summarise(JSON.parse(await Deno.readTextFile(file)));
  console.log(`${file}: ${Math.round(total)} ms sampled`);
  console.log(`\nself time (top ${top}):`);
  for (const r of self.slice(0, top)) {
    console.log(
      `${r.percent.toFixed(1).padStart(6)}%  ${r.ms.toString().padStart(7)} ms  ${r.name}`,
    );
  }
  console.log(`\ninclusive time (top ${top}):`);
  for (const r of inclusive.slice(0, top)) {
    console.log(
      `${r.percent.toFixed(1).padStart(6)}%  ${r.ms.toString().padStart(7)} ms  ${r.name}`,
    );
  }
}
