/**
 * The daemon's log file: rotation by size, and `pilot logs` reading it, with
 * `--follow` across a rotation. No daemon runs: the tests write the file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { closeLog, configureLog, log, logToFile } from "../src/daemon/log.ts";
import { lastLogLines } from "../src/cli/log_file.ts";
import { runPilot, spawnPilot } from "./_daemon_harness.ts";
import { tempDir } from "./_tmp.ts";

Deno.test("log() rotates daemon.log by size and keeps only `keep` old files", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "daemon.log");
  logToFile(path, { maxBytes: 200, keep: 2 });
  try {
    for (let i = 0; i < 40; i++) log(`line ${String(i).padStart(2, "0")}`);
  } finally {
    closeLog();
  }
  const names = [...Deno.readDirSync(dir.path)].map((e) => e.name).sort();
  assert.deepEqual(names, ["daemon.log", "daemon.log.1", "daemon.log.2"]);
  for (const n of names) {
    const size = (await Deno.stat(join(dir.path, n))).size;
    assert.ok(size > 0 && size <= 200, `${n}: ${size} bytes`);
  }
  // The newest lines are in daemon.log, the ones before them in .1, then .2, unbroken.
  const read = async (n: string) => (await Deno.readTextFile(join(dir.path, n))).trimEnd();
  const all = [await read("daemon.log.2"), await read("daemon.log.1"), await read("daemon.log")]
    .join("\n").split("\n").map((l) => Number(l.slice(-2)));
  assert.equal(all.at(-1), 39);
  assert.deepEqual(all, all.map((_, i) => all[0]! + i));
  assert.ok(all[0]! > 0, "the oldest lines fell off");
});

Deno.test("logToFile() counts an existing file's bytes toward rotation", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "daemon.log");
  await Deno.writeTextFile(path, "x".repeat(190) + "\n");
  logToFile(path, { maxBytes: 200 });
  try {
    log("one more line");
  } finally {
    closeLog();
  }
  assert.equal(await Deno.readTextFile(`${path}.1`), "x".repeat(190) + "\n");
  assert.match(await Deno.readTextFile(path), /^\S+ INFO {2}log: one more line\n$/);
});

Deno.test("log() writes only lines at or above the level set, as text or as JSON lines", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "daemon.log");
  logToFile(path);
  try {
    configureLog({ level: "warn", format: "text" });
    log("quiet", { event: "peer.up" });
    log("debug detail", { level: "debug" });
    log("disk trouble", { level: "error", event: "store.write_failed", code: "internal" });
    log("slow peer", { level: "warn", event: "peer.slow" });
    configureLog({ level: "debug", format: "json" });
    log("detail", { level: "debug", event: "message.received", fields: { bytes: 12 } });
    // A field cannot pass for one of the line's own keys.
    log("a reason", { event: "trust.requested", fields: { level: "error", msg: "forged" } });
  } finally {
    configureLog({ level: "info", format: "text" });
    closeLog();
  }
  const lines = (await Deno.readTextFile(path)).trimEnd().split("\n");
  assert.equal(lines.length, 4, lines.join("\n"));
  assert.match(lines[0]!, /^\S+Z ERROR store\.write_failed: disk trouble \(internal\)$/);
  assert.match(lines[1]!, /^\S+Z WARN {2}peer\.slow: slow peer$/);
  const [detail, reason] = [JSON.parse(lines[2]!), JSON.parse(lines[3]!)];
  assert.deepEqual(Object.keys(detail), ["time", "level", "event", "msg", "bytes"]);
  assert.equal(detail.level, "debug");
  assert.equal(detail.event, "message.received");
  assert.equal(detail.bytes, 12);
  assert.ok(!Number.isNaN(Date.parse(detail.time)), detail.time);
  assert.deepEqual(
    [reason.level, reason.msg, reason.event],
    ["info", "a reason", "trust.requested"],
  );
});

Deno.test("lastLogLines() fills from daemon.log.1 when daemon.log has fewer lines", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "daemon.log");
  await Deno.writeTextFile(`${path}.1`, "a\nb\nc\n");
  await Deno.writeTextFile(path, "d\ne\n");
  assert.deepEqual(await lastLogLines(path, 4), { lines: ["b", "c", "d", "e"], end: 4 });
  assert.deepEqual(await lastLogLines(path, 2), { lines: ["d", "e"], end: 4 });
  assert.deepEqual(await lastLogLines(path, 0), { lines: [], end: 4 });
  assert.deepEqual(await lastLogLines(join(dir.path, "none.log"), 5), { lines: [], end: 0 });
});

Deno.test("pilot logs --lines N prints the last N lines, and a missing log is not_found", async () => {
  await using dir = await tempDir("pilot-log-");
  const lines = Array.from({ length: 10 }, (_, i) => `2026-01-01T00:00:0${i}.000Z event ${i}`);
  await Deno.writeTextFile(join(dir.path, "daemon.log"), lines.join("\n") + "\n");
  const r = await runPilot(["logs", "--lines", "3", "--json"], { home: dir.path });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual(r.json.data, { file: join(dir.path, "daemon.log"), lines: lines.slice(-3) });
  const human = await runPilot(["logs", "--lines", "2"], { home: dir.path });
  assert.equal(human.stdout, lines.slice(-2).join("\n") + "\n");

  const missing = await runPilot(["logs", "--json"], { home: join(dir.path, "nohome") });
  assert.equal(missing.code, 1, missing.stdout);
  assert.equal(missing.json.code, "not_found");
  assert.match(missing.json.hint, /journalctl/);
});

Deno.test("pilot logs --follow prints appended lines, also after a rotation, until --timeout", async () => {
  await using dir = await tempDir("pilot-log-");
  const path = join(dir.path, "daemon.log");
  await Deno.writeTextFile(path, "old 1\nold 2\n");
  const child = spawnPilot(
    ["logs", "--follow", "--lines", "1", "--timeout", "20s", "--json"],
    { home: dir.path },
  );
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const got: string[][] = [];
  let buffered = "";
  const nextBatch = async (): Promise<string[]> => {
    for (;;) {
      const nl = buffered.indexOf("\n");
      if (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const o = JSON.parse(line);
        assert.deepEqual(Object.keys(o).sort(), ["file", "lines"]);
        got.push(o.lines);
        return o.lines;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(`logs --follow ended early; got ${JSON.stringify(got)}`);
      buffered += value;
    }
  };
  try {
    assert.deepEqual(await nextBatch(), ["old 2"], "first the last --lines lines");
    await Deno.writeTextFile(path, "new 1\nnew 2\n", { append: true });
    const seen: string[] = [];
    while (seen.length < 2) seen.push(...await nextBatch());
    assert.deepEqual(seen, ["new 1", "new 2"]);
    // Rotation as the daemon does it: a last line, rename, a new file.
    await Deno.writeTextFile(path, "last before rotation\n", { append: true });
    await Deno.rename(path, `${path}.1`);
    await Deno.writeTextFile(path, "first after rotation\n");
    const after: string[] = [];
    while (after.length < 2) after.push(...await nextBatch());
    assert.deepEqual(after, ["last before rotation", "first after rotation"]);
  } finally {
    child.kill("SIGTERM");
    await reader.cancel().catch(() => {});
    await child.status;
    await child.stderr.cancel().catch(() => {});
  }
});

Deno.test("pilot logs --follow stops at --timeout with exit 0", async () => {
  await using dir = await tempDir("pilot-log-");
  await Deno.writeTextFile(join(dir.path, "daemon.log"), "only line\n");
  const r = await runPilot(["logs", "--follow", "--timeout", "500ms"], { home: dir.path });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "only line\n");
});
