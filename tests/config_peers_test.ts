/**
 * `peer add/remove --save`: one static peer written to the home's
 * config.json atomically, every other key kept; a malformed file is refused
 * with one line and a hint, and left as it was.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parsePeerEntry, saveConfigPeer } from "../src/daemon/config.ts";
import { HOME_FILES } from "../src/daemon/home.ts";
import { PilotError } from "../src/errors.ts";
import fixtures from "./fixtures/identities.json" with { type: "json" };
import { tempDir } from "./_tmp.ts";

async function writeConfig(home: string, text: string): Promise<void> {
  await Deno.writeTextFile(join(home, HOME_FILES.config), text, { mode: 0o600 });
}

async function readConfig(home: string): Promise<string> {
  return await Deno.readTextFile(join(home, HOME_FILES.config));
}

async function refusal(p: Promise<unknown>): Promise<PilotError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof PilotError) return e;
    throw e;
  }
  throw new Error("not refused");
}

Deno.test("saveConfigPeer() adds a peer and keeps every other key and peer", async () => {
  await using home = await tempDir("pilot-config-");
  await writeConfig(
    home.path,
    JSON.stringify({ hostname: "me", peers: { old: "127.0.0.1:1" }, disable: ["echo"] }),
  );
  assert.equal(await saveConfigPeer(home.path, "worker", "worker.example.com:4000"), true);
  assert.deepEqual(JSON.parse(await readConfig(home.path)), {
    hostname: "me",
    peers: { old: "127.0.0.1:1", worker: "worker.example.com:4000" },
    disable: ["echo"],
  });
  const info = await Deno.stat(join(home.path, HOME_FILES.config));
  assert.equal(info.mode! & 0o077, 0, "config.json stays private");
});

Deno.test("saveConfigPeer() is safe to repeat: the same entry, or removing an absent one, changes nothing", async () => {
  await using home = await tempDir("pilot-config-");
  await writeConfig(home.path, JSON.stringify({ peers: { worker: "127.0.0.1:4000" } }));
  const before = await readConfig(home.path);
  assert.equal(await saveConfigPeer(home.path, "worker", "127.0.0.1:4000"), false);
  assert.equal(await saveConfigPeer(home.path, "nobody", null), false);
  assert.equal(await readConfig(home.path), before, "not rewritten");
});

Deno.test("saveConfigPeer() replaces an endpoint and removes a peer", async () => {
  await using home = await tempDir("pilot-config-");
  await writeConfig(home.path, JSON.stringify({ peers: { worker: "127.0.0.1:4000" } }));
  assert.equal(await saveConfigPeer(home.path, "worker", "127.0.0.1:5000"), true);
  assert.deepEqual(JSON.parse(await readConfig(home.path)).peers, { worker: "127.0.0.1:5000" });
  assert.equal(await saveConfigPeer(home.path, "worker", null), true);
  assert.deepEqual(JSON.parse(await readConfig(home.path)), { peers: {} });
});

Deno.test("saveConfigPeer() creates config.json when the home has none", async () => {
  await using home = await tempDir("pilot-config-");
  assert.equal(await saveConfigPeer(home.path, "worker", "127.0.0.1:4000"), true);
  assert.deepEqual(JSON.parse(await readConfig(home.path)), {
    peers: { worker: "127.0.0.1:4000" },
  });
});

Deno.test("saveConfigPeer() refuses a malformed config.json with one line and a hint, and leaves it as it was", async () => {
  await using home = await tempDir("pilot-config-");
  for (
    const [text, said] of [
      ["{ not json", "not valid JSON"],
      ["[1, 2]", "must be a JSON object"],
      [JSON.stringify({ colour: "red" }), 'unknown key "colour"'],
      [JSON.stringify({ peers: ["worker=127.0.0.1:1"] }), '"peers"'],
      [JSON.stringify({ peers: { worker: 7440 } }), '"peers"'],
    ]
  ) {
    await writeConfig(home.path, text!);
    const e = await refusal(saveConfigPeer(home.path, "worker", "127.0.0.1:4000"));
    assert.equal(e.code, "invalid_argument");
    assert.ok(!e.message.includes("\n"), e.message);
    assert.ok(e.message.includes(said!), `${e.message} should say ${said}`);
    assert.match(e.hint, /nothing was changed/);
    assert.equal(await readConfig(home.path), text, "left as it was");
  }
});

Deno.test("parsePeerEntry() takes a hostname or an address (made canonical) and any endpoint syntax", () => {
  const address = fixtures[0]!.address;
  assert.deepEqual(parsePeerEntry("worker", "worker.example.com:4000", "peer add"), [
    "worker",
    "worker.example.com:4000",
  ]);
  assert.deepEqual(
    parsePeerEntry(address.replaceAll(".", "").toUpperCase(), "[::1]:9", "peer add"),
    [address, "[::1]:9"],
  );
  for (
    const [name, endpoint] of [
      ["Bad Name", "127.0.0.1:1"],
      ["worker", "127.0.0.1:0"],
      ["worker", "3fa2.09c1.77e4:1001"],
      ["worker", "worker"],
    ]
  ) {
    assert.throws(() => parsePeerEntry(name!, endpoint!, "peer add"), PilotError);
  }
});
