/**
 * The home's lock: a daemon holds it exclusively for its life, and every
 * CLI call probes it to tell "not running" from "not answering". A probe
 * must never make a starting daemon fail, nor make another probe believe a
 * daemon runs (CI once saw a foreground rendezvous exit "already running"
 * because `pilot daemon status` was polling it at the instant it started).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { HOME_FILES, HomeLock, isHomeLocked } from "../src/daemon/home.ts";
import { tempDir } from "./_tmp.ts";

/** Holds the lock file as a probe does (shared), on a descriptor of its own. */
async function holdAsProbe(home: string): Promise<Deno.FsFile> {
  const file = await Deno.open(join(home, HOME_FILES.lock), {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  assert.ok(await file.tryLock(false), "a probe's shared lock is granted on a free home");
  return file;
}

Deno.test("a probe in progress is not mistaken for a daemon by another probe", async () => {
  await using home = await tempDir("pilot-lock-");
  const probe = await holdAsProbe(home.path);
  try {
    assert.equal(await isHomeLocked(home.path), false);
  } finally {
    probe.close();
  }
});

Deno.test("a daemon starting while a probe holds the lock for an instant still starts", async () => {
  await using home = await tempDir("pilot-lock-");
  const probe = await holdAsProbe(home.path);
  const released = new Promise<void>((r) =>
    setTimeout(() => {
      probe.close();
      r();
    }, 50)
  );
  const lock = await HomeLock.acquire(home.path);
  await released;
  assert.notEqual(lock, null, "the start waited out the probe instead of failing");
  try {
    assert.equal(await isHomeLocked(home.path), true);
  } finally {
    lock!.release();
  }
  assert.equal(await isHomeLocked(home.path), false);
});

Deno.test("a second daemon on a held home is refused, within a bounded wait", async () => {
  await using home = await tempDir("pilot-lock-");
  const first = await HomeLock.acquire(home.path);
  assert.notEqual(first, null);
  try {
    const t0 = performance.now();
    assert.equal(await HomeLock.acquire(home.path), null);
    const waited = performance.now() - t0;
    // Generous bound: the grace is for a probe's instant, not a daemon's life.
    assert.ok(waited < 5_000, `refused after ${waited.toFixed(0)} ms`);
  } finally {
    first!.release();
  }
});
