/**
 * A home the daemon cannot write is refused at once, named, with a hint, and
 * nothing is left behind: as root (which ignores permission bits) on a
 * read-only tmpfs mount, as another user in a directory of mode 0500.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPilot } from "./_daemon_harness.ts";
import { tempDir } from "./_tmp.ts";

const isRoot = Deno.uid() === 0;

/** Runs `mount`/`umount` (root only); false when this machine will not. */
async function run(cmd: string, ...args: string[]): Promise<boolean> {
  try {
    return (await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

/** Whether root may mount a read-only tmpfs here (tried once, on a scratch directory). */
async function canMountReadOnly(): Promise<boolean> {
  const scratch = await Deno.makeTempDir({ prefix: "pilot-mountprobe-" });
  try {
    const ok = await run("mount", "-t", "tmpfs", "-o", "ro", "none", scratch);
    if (ok) await run("umount", scratch);
    return ok;
  } finally {
    await Deno.remove(scratch).catch(() => {});
  }
}

const unwritable = !isRoot || await canMountReadOnly();

Deno.test({
  name: "daemon start refuses a home it cannot create or write, with a hint" +
    (unwritable
      ? ""
      : " (skipped: as root, only a read-only mount is unwritable, and mount is refused here)"),
  ignore: !unwritable,
}, async () => {
  await using dir = await tempDir("pilot-rohome-");
  const ro = join(dir.path, "ro");
  await Deno.mkdir(ro, { mode: 0o700 });
  let mounted = false;
  if (isRoot) {
    // Root ignores mode bits: a read-only mount is what it cannot write.
    mounted = await run("mount", "-t", "tmpfs", "-o", "ro,mode=700", "none", ro);
    assert.ok(mounted, "mount worked a moment ago");
  } else {
    await Deno.chmod(ro, 0o500);
  }
  try {
    for (
      const [home, what] of [[join(ro, "home"), "Cannot create home"], [ro, "is not writable"]]
    ) {
      const r = await runPilot(["daemon", "start", "--listen", "127.0.0.1:0", "--json"], {
        home: home!,
      });
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.equal(r.json.code, "invalid_argument");
      assert.ok(r.json.message.includes(what!), r.json.message);
      assert.match(r.json.hint, /a directory this user can create and write/);
      const text = await runPilot(["daemon", "start", "--listen", "127.0.0.1:0"], { home: home! });
      assert.equal(text.stderr.trimEnd().split("\n").length, 2, `error and hint: ${text.stderr}`);
    }
    assert.deepEqual([...Deno.readDirSync(ro)], [], "nothing was left in the home");
  } finally {
    if (mounted) await run("umount", ro);
    else await Deno.chmod(ro, 0o700);
  }
});
