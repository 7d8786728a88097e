/**
 * The layer diagram in DESIGN.md, enforced: every import in `src/` points
 * down the layer order (or stays in its folder), no file imports another
 * folder's private `_helper.ts`, and the import graph has no cycle.
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";

/** Top to bottom, as in DESIGN.md; `.` is src/'s own files (bytes, errors, constants). */
const LAYERS = [
  "cli",
  "mcp",
  "client",
  "control",
  "daemon",
  "services",
  "stream",
  "session",
  "discovery",
  "wire",
  "identity",
  ".",
] as const;

/**
 * The one door from the CLI into the daemon layer: what `pilot daemon start`
 * needs before any daemon runs (home, lock, config errors in the terminal,
 * identity creation with progress).
 */
const BOOT_SURFACE = "daemon/boot.ts";

const SRC = resolve(new URL("../src", import.meta.url).pathname);
/** deno.json: the package manifest, which src/constants.ts reads the version from. */
const MANIFEST = resolve(SRC, "../deno.json");

async function sources(dir = SRC): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory) out.push(...await sources(path));
    else if (e.name.endsWith(".ts")) out.push(path);
  }
  return out.sort();
}

const IMPORT = /^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|^\s*import\s+"([^"]+)"/gm;

async function importsOf(file: string): Promise<string[]> {
  const text = await Deno.readTextFile(file);
  return [...text.matchAll(IMPORT)]
    .map((m) => m[1] ?? m[2]!)
    .filter((s) => s.startsWith("."))
    .map((s) => resolve(dirname(file), s));
}

function layerOf(file: string): string {
  const rel = relative(SRC, file);
  const top = rel.includes("/") ? rel.slice(0, rel.indexOf("/")) : ".";
  return top;
}

const graph = new Map<string, string[]>();
for (const f of await sources()) graph.set(f, await importsOf(f));

/** Imports that break the layering: upward ones, and the CLI past its boot surface. */
function violations(g: ReadonlyMap<string, readonly string[]>): string[] {
  const bad: string[] = [];
  for (const [file, deps] of g) {
    const from = LAYERS.indexOf(layerOf(file) as typeof LAYERS[number]);
    if (from < 0) bad.push(`${relative(SRC, file)} is in no documented layer`);
    for (const dep of deps) {
      // The package manifest is data every layer may read (the version), not a layer.
      if (dep === MANIFEST) continue;
      const to = LAYERS.indexOf(layerOf(dep) as typeof LAYERS[number]);
      const edge = `${relative(SRC, file)} -> ${relative(SRC, dep)}`;
      if (to < from) bad.push(`${edge} (up)`);
      // The CLI reaches the daemon only through the control API, except the boot surface.
      const cliToDaemon = layerOf(file) === "cli" && layerOf(dep) === "daemon";
      if (cliToDaemon && relative(SRC, dep) !== BOOT_SURFACE) bad.push(`${edge} (past boot.ts)`);
    }
  }
  return bad;
}

Deno.test("every import in src/ points down the documented layer order", () => {
  assert.deepEqual(violations(graph), []);
});

Deno.test("the layer check flags an upward import and a CLI import past the boot surface", () => {
  const at = (p: string) => join(SRC, p);
  const g = new Map([
    [at("wire/frames.ts"), [at("session/manager.ts")]],
    [at("cli/run.ts"), [at("daemon/home.ts"), at("daemon/boot.ts"), at("control/client.ts")]],
  ]);
  assert.deepEqual(violations(g), [
    "wire/frames.ts -> session/manager.ts (up)",
    "cli/run.ts -> daemon/home.ts (past boot.ts)",
  ]);
});

Deno.test("no file imports another folder's private _helper module", () => {
  const bad: string[] = [];
  for (const [file, deps] of graph) {
    for (const dep of deps) {
      const isPrivate = dep.split("/").at(-1)!.startsWith("_");
      if (isPrivate && dirname(dep) !== dirname(file)) {
        bad.push(`${relative(SRC, file)} -> ${relative(SRC, dep)}`);
      }
    }
  }
  assert.deepEqual(bad, []);
});

/** Every cycle found by a depth-first walk, as "a -> b -> a". */
function cycles(g: ReadonlyMap<string, readonly string[]>): string[] {
  const state = new Map<string, "visiting" | "done">();
  const found: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === "done") return;
    if (state.get(f) === "visiting") {
      found.push([...path.slice(path.indexOf(f)), f].map((p) => relative(SRC, p)).join(" -> "));
      return;
    }
    state.set(f, "visiting");
    for (const d of g.get(f) ?? []) visit(d, [...path, f]);
    state.set(f, "done");
  };
  for (const f of g.keys()) visit(f, []);
  return found;
}

Deno.test("the import graph of src/ has no cycle", () => {
  assert.deepEqual(cycles(graph), []);
});

Deno.test("the cycle check finds a cycle inside one folder", () => {
  const at = (p: string) => join(SRC, p);
  const g = new Map([
    [at("wire/a.ts"), [at("wire/b.ts")]],
    [at("wire/b.ts"), [at("wire/a.ts")]],
  ]);
  assert.deepEqual(cycles(g), ["wire/a.ts -> wire/b.ts -> wire/a.ts"]);
});

Deno.test("the layer scan reads real imports (it would see a violation)", () => {
  // Guards the test itself: the scan finds the imports it must judge.
  const routes = graph.get(join(SRC, "control/routes.ts")) ?? [];
  assert.ok(routes.some((d) => relative(SRC, d) === "daemon/node.ts"));
  assert.ok(graph.size > 100, `scanned ${graph.size} files`);
});
