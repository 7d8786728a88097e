/**
 * `pilot config list|get|set|unset` (issue 12 item 9): edits of config.json
 * are checked exactly as the daemon reads the file and written atomically;
 * a value the daemon would refuse is never written, other keys are kept.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeHome, runPilot } from "./_daemon_harness.ts";

Deno.test("config set checks a value as the daemon would, keeps other keys, and refuses what the daemon would refuse", async () => {
  const home = await makeHome({ identity: 0, config: { lan: false } });
  try {
    const set = await runPilot(["config", "set", "hostname", "worker-2", "--json"], { home });
    assert.equal(set.code, 0, set.stdout + set.stderr);
    assert.deepEqual([set.json.data.value, set.json.data.changed], ["worker-2", true]);
    const again = await runPilot(["config", "set", "hostname", "worker-2", "--json"], { home });
    assert.equal(again.json.data.changed, false, "safe to repeat");
    const port = await runPilot(["config", "set", "dht_port", "6881", "--json"], { home });
    assert.equal(port.json.data.value, 6881, "JSON when it parses");
    const file = JSON.parse(await Deno.readTextFile(join(home, "config.json")));
    assert.deepEqual(file, { lan: false, hostname: "worker-2", dht_port: 6881 });
    assert.equal((await Deno.stat(join(home, "config.json"))).mode! & 0o777, 0o600);

    const bad = await runPilot(["config", "set", "dht_port", "99999", "--json"], { home });
    assert.equal(bad.code, 2, bad.stdout);
    assert.equal(bad.json.code, "invalid_argument");
    const unknown = await runPilot(["config", "set", "colour", "blue", "--json"], { home });
    assert.equal(unknown.json.code, "invalid_argument");
    assert.match(unknown.json.hint, /known keys: listen/);
    const badHost = await runPilot(["config", "set", "hostname", "Not A Name", "--json"], { home });
    assert.equal(badHost.json.code, "invalid_argument", badHost.stdout);
    assert.deepEqual(
      JSON.parse(await Deno.readTextFile(join(home, "config.json"))),
      file,
      "nothing refused was written",
    );

    assert.equal(
      (await runPilot(["config", "get", "hostname", "--json"], { home })).json.data.value,
      "worker-2",
    );
    assert.equal(
      (await runPilot(["config", "get", "punch", "--json"], { home })).json.code,
      "not_found",
    );
    assert.equal(
      (await runPilot(["config", "unset", "hostname", "--json"], { home })).json.data.changed,
      true,
    );
    assert.equal(
      (await runPilot(["config", "unset", "hostname", "--json"], { home })).json.data.changed,
      false,
    );
    const listed = await runPilot(["config", "list", "--json"], { home });
    assert.deepEqual(listed.json.data.config, { lan: false, dht_port: 6881 });
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
