/**
 * Unit tests of the daemon configuration (`src/daemon/config.ts`): flags
 * override the environment, which overrides `config.json`; unknown keys are
 * refused by name; every bad value is refused with a one-line
 * `invalid_argument` error that quotes it; timers may be shortened.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { REKEY_AFTER_TIME_MS, STREAM_KEEPALIVE_MS } from "../src/constants.ts";
import {
  type ConfigFlags,
  type DaemonConfig,
  DEFAULT_LISTEN,
  loadConfig,
  parseAutoApprove,
  parseListen,
} from "../src/daemon/config.ts";
import { HOME_FILES } from "../src/daemon/home.ts";
import { PilotError } from "../src/errors.ts";
import fixtures from "./fixtures/identities.json" with { type: "json" };
import { tempDir } from "./_tmp.ts";

/** The environment variables the configuration reads. */
const ENV_KEYS = ["PILOT_LISTEN", "PILOT_HOSTNAME"] as const;

/**
 * Sets exactly `env` among {@linkcode ENV_KEYS} (the others unset, so a
 * developer's own settings cannot leak in) until the scope ends.
 */
function scopedEnv(env: Partial<Record<(typeof ENV_KEYS)[number], string>>): Disposable {
  const saved = ENV_KEYS.map((k) => [k, Deno.env.get(k)] as const);
  for (const k of ENV_KEYS) {
    const v = env[k];
    if (v === undefined) Deno.env.delete(k);
    else Deno.env.set(k, v);
  }
  return {
    [Symbol.dispose]() {
      for (const [k, v] of saved) {
        if (v === undefined) Deno.env.delete(k);
        else Deno.env.set(k, v);
      }
    },
  };
}

/** What one {@linkcode load} call is given. */
interface Sources {
  /** `config.json` as a value (written as JSON) or as exact text; none: no file. */
  file?: unknown;
  /** Environment variables. */
  env?: Partial<Record<(typeof ENV_KEYS)[number], string>>;
  /** Flags. */
  flags?: ConfigFlags;
}

/** Runs `loadConfig` in a fresh home with the given file, environment and flags. */
async function load(sources: Sources = {}): Promise<DaemonConfig> {
  await using home = await tempDir("pilot-config-");
  if (sources.file !== undefined) {
    const text = typeof sources.file === "string" ? sources.file : JSON.stringify(sources.file);
    await Deno.writeTextFile(join(home.path, HOME_FILES.config), text, { mode: 0o600 });
  }
  using _env = scopedEnv(sources.env ?? {});
  return await loadConfig(home.path, sources.flags ?? {});
}

/**
 * Asserts that `loading` fails with a one-line `invalid_argument` PilotError
 * whose message contains every one of `quoted`; returns the error.
 */
async function assertRefused(loading: Promise<unknown>, ...quoted: string[]): Promise<PilotError> {
  let error: unknown;
  await assert.rejects(loading, (e: unknown) => {
    error = e;
    return true;
  });
  assert.ok(error instanceof PilotError, `expected a PilotError, got ${error}`);
  assert.equal(error.code, "invalid_argument", error.message);
  assert.ok(!error.message.includes("\n"), `one line: ${JSON.stringify(error.message)}`);
  for (const q of quoted) {
    assert.ok(error.message.includes(q), `${JSON.stringify(error.message)} should quote ${q}`);
  }
  return error;
}

const ALICE = fixtures[0]!;

// Precedence ------------------------------------------------------------------

Deno.test("with no file, environment or flags the daemon listens on the default endpoint and claims no hostname", async () => {
  const cfg = await load();
  assert.deepEqual(cfg.listen, parseListen(DEFAULT_LISTEN, "default"));
  assert.deepEqual(cfg.listen, { hostname: "0.0.0.0", port: 7440 });
  assert.equal(cfg.hostname, null);
  assert.deepEqual(cfg.peers, {});
  assert.equal(cfg.requireMac1, false);
  assert.equal(cfg.cookieThreshold, null);
  assert.deepEqual(cfg.timers, {});
  assert.deepEqual(cfg.streamTimers, {});
  assert.deepEqual(cfg.autoApprove, []);
  assert.deepEqual(cfg.disable, []);
});

Deno.test("flags override the environment, which overrides config.json, for listen and hostname", async () => {
  const file = { listen: "127.0.0.1:7001", hostname: "from-file" };
  const env = { PILOT_LISTEN: "127.0.0.1:7002", PILOT_HOSTNAME: "from-env" };
  const flags = { listen: "127.0.0.1:7003", hostname: "from-flag" };

  const fromFile = await load({ file });
  assert.deepEqual(fromFile.listen, { hostname: "127.0.0.1", port: 7001 });
  assert.equal(fromFile.hostname, "from-file");

  const fromEnv = await load({ file, env });
  assert.deepEqual(fromEnv.listen, { hostname: "127.0.0.1", port: 7002 });
  assert.equal(fromEnv.hostname, "from-env");

  const fromFlags = await load({ file, env, flags });
  assert.deepEqual(fromFlags.listen, { hostname: "127.0.0.1", port: 7003 });
  assert.equal(fromFlags.hostname, "from-flag");

  // Each level on its own, too: the environment over defaults, a flag over the file.
  assert.equal((await load({ env: { PILOT_HOSTNAME: "only-env" } })).hostname, "only-env");
  assert.deepEqual((await load({ file, flags: { listen: "[::1]:0" } })).listen, {
    hostname: "::1",
    port: 0,
  });
});

Deno.test("a --peer flag replaces config.json's endpoint for the same name and keeps the other names", async () => {
  const cfg = await load({
    file: { peers: { worker: "127.0.0.1:7001", other: "127.0.0.1:7002" } },
    flags: { peer: ["worker=127.0.0.1:7009", "third=[::1]:7003"] },
  });
  assert.deepEqual(cfg.peers, {
    worker: "127.0.0.1:7009",
    other: "127.0.0.1:7002",
    third: "[::1]:7003",
  });
});

Deno.test("list settings add up: --auto-approve and --disable extend config.json's lists, --stealth turns mac1 on", async () => {
  const cfg = await load({
    file: { auto_approve: [ALICE.public_key], disable: ["echo"], require_mac1: false },
    flags: { autoApprove: [ALICE.fingerprint], disable: ["events"], stealth: true },
  });
  assert.deepEqual(cfg.autoApprove, [ALICE.public_key, ALICE.fingerprint]);
  assert.deepEqual(cfg.disable, ["echo", "pubsub"], "the earlier name events means pubsub");
  assert.equal(cfg.requireMac1, true);
  assert.equal((await load({ file: { require_mac1: true } })).requireMac1, true);
});

Deno.test("an empty environment variable counts as unset", async () => {
  const cfg = await load({
    file: { hostname: "from-file" },
    env: { PILOT_HOSTNAME: "", PILOT_LISTEN: "" },
  });
  assert.equal(cfg.hostname, "from-file");
  assert.deepEqual(cfg.listen, { hostname: "0.0.0.0", port: 7440 });
});

// The file itself and unknown keys ----------------------------------------------

Deno.test("an unknown key in config.json is refused with a message naming it and a hint listing the known keys", async () => {
  const e = await assertRefused(
    load({ file: { listen: "127.0.0.1:0", timout_ms: 5 } }),
    '"timout_ms"',
  );
  assert.match(e.hint, /known keys: .*listen.*timers.*auto_approve/);
});

Deno.test("an unknown timer is refused with a message naming it and a hint listing the known timers", async () => {
  const e = await assertRefused(load({ file: { timers: { rekey_ms: 1 } } }), '"rekey_ms"');
  assert.match(e.hint, /rekey_after_ms/);
  assert.match(e.hint, /stream_min_rto_ms/);
});

Deno.test("a config.json that is not a JSON object is refused with its path", async () => {
  for (const text of ["{not json", "[]", "null", '"listen"']) {
    await using home = await tempDir("pilot-config-");
    const path = join(home.path, HOME_FILES.config);
    await Deno.writeTextFile(path, text, { mode: 0o600 });
    using _env = scopedEnv({});
    await assertRefused(loadConfig(home.path, {}), path);
  }
});

// Timers ----------------------------------------------------------------------

Deno.test("timers may be shortened: session and stream timers land in their own tables", async () => {
  const cfg = await load({
    file: {
      timers: {
        rekey_after_ms: 1_000,
        keepalive_ms: 200,
        stream_min_rto_ms: 20,
        stream_initial_rto_ms: 200,
      },
    },
  });
  assert.deepEqual(cfg.timers, { rekeyAfterMs: 1_000, keepaliveMs: 200 });
  assert.deepEqual(cfg.streamTimers, { minRtoMs: 20, initialRtoMs: 200 });
  const atLimit = await load({ file: { timers: { rekey_after_ms: REKEY_AFTER_TIME_MS } } });
  assert.deepEqual(atLimit.timers, { rekeyAfterMs: REKEY_AFTER_TIME_MS });
});

Deno.test("a timer that is not a number of ms >= 0 is refused naming the timer; a stream timer must be above 0", async () => {
  for (const bad of [-1, -0.5, "100", null, true]) {
    await assertRefused(load({ file: { timers: { keepalive_ms: bad } } }), '"keepalive_ms"');
  }
  await assertRefused(
    load({ file: { timers: { stream_min_rto_ms: 0 } } }),
    '"stream_min_rto_ms"',
    "above 0",
  );
  assert.deepEqual((await load({ file: { timers: { keepalive_ms: 0 } } })).timers, {
    keepaliveMs: 0,
  });
  await assertRefused(load({ file: { timers: [1] } }), '"timers"');
});

// Endpoints, ports and hostnames ----------------------------------------------

Deno.test("a listen endpoint with a bad port or a host that is not an IP is refused quoting it", async () => {
  for (const bad of ["127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1", "localhost:7440", "[::1]:x"]) {
    await assertRefused(load({ flags: { listen: bad } }), bad);
    await assertRefused(load({ file: { listen: bad } }), bad);
    await assertRefused(load({ env: { PILOT_LISTEN: bad } }), bad);
  }
  await assertRefused(load({ file: { listen: "host.example:7440" } }), '"host.example:7440"');
  await assertRefused(load({ flags: { listen: "udp://node.example:7440" } }), "node.example");
  await assertRefused(load({ file: { listen: 7440 } }), '"listen"');
  assert.deepEqual((await load({ flags: { listen: "127.0.0.1:65535" } })).listen, {
    hostname: "127.0.0.1",
    port: 65535,
  });
});

Deno.test("a hostname that is not 1-63 of a-z, 0-9 and - or that reads as an address is refused quoting it", async () => {
  for (const bad of ["Upper", "under_score", "-lead", "trail-", "a".repeat(64), "3fa209c177e4"]) {
    await assertRefused(load({ flags: { hostname: bad } }), JSON.stringify(bad));
    await assertRefused(load({ file: { hostname: bad } }), JSON.stringify(bad), "config.json");
    await assertRefused(
      load({ env: { PILOT_HOSTNAME: bad } }),
      JSON.stringify(bad),
      "PILOT_HOSTNAME",
    );
  }
  await assertRefused(load({ file: { hostname: 7 } }), '"hostname"');
  assert.equal((await load({ flags: { hostname: "a".repeat(63) } })).hostname, "a".repeat(63));
});

Deno.test("a peer without NAME=ENDPOINT or with a bad endpoint is refused quoting it", async () => {
  for (const bad of ["worker", "=127.0.0.1:7440", "worker:127.0.0.1:7440"]) {
    await assertRefused(load({ flags: { peer: [bad] } }), `"${bad}"`, "NAME=ENDPOINT");
  }
  for (const endpoint of ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "no_where:7440"]) {
    await assertRefused(load({ flags: { peer: [`worker=${endpoint}`] } }), `"${endpoint}"`);
    await assertRefused(load({ file: { peers: { worker: endpoint } } }), `"${endpoint}"`);
  }
  await assertRefused(load({ file: { peers: { worker: 7440 } } }), '"worker"');
  await assertRefused(load({ file: { peers: ["worker=127.0.0.1:7440"] } }), '"peers"');
  // Names may also be addresses, and endpoints DNS names, with or without udp://.
  const cfg = await load({
    flags: { peer: [`${ALICE.address}=udp://node.example:7440`, "worker=node.example:7440"] },
  });
  assert.deepEqual(cfg.peers, {
    [ALICE.address]: "udp://node.example:7440",
    worker: "node.example:7440",
  });
});

// Pre-authorised peers, services and the rest --------------------------------

Deno.test("an auto-approve entry is a full key, a fingerprint or an address; anything else is refused quoting it", async () => {
  const cfg = await load({
    flags: {
      autoApprove: [ALICE.public_key.toUpperCase(), ALICE.fingerprint, ALICE.address],
    },
  });
  assert.deepEqual(cfg.autoApprove, [ALICE.public_key, ALICE.fingerprint, ALICE.address]);
  assert.equal(parseAutoApprove(` ${ALICE.public_key} `, "test"), ALICE.public_key);
  for (const bad of ["not-a-peer", ALICE.public_key.slice(2), "0000.0000.0000"]) {
    await assertRefused(load({ flags: { autoApprove: [bad] } }), `"${bad}"`, "--auto-approve");
    await assertRefused(load({ file: { auto_approve: [bad] } }), `"${bad}"`, "config.json");
  }
  await assertRefused(load({ file: { auto_approve: ALICE.public_key } }), '"auto_approve"');
});

Deno.test("only optional services may be disabled; trust and unknown names are refused quoting them", async () => {
  assert.deepEqual((await load({ flags: { disable: ["echo", "messages", "pubsub"] } })).disable, [
    "echo",
    "messages",
    "pubsub",
  ]);
  // The earlier names still work and mean the same services.
  assert.deepEqual((await load({ flags: { disable: ["data", "events"] } })).disable, [
    "messages",
    "pubsub",
  ]);
  for (const bad of ["trust", "ECHO", "stdio"]) {
    await assertRefused(load({ flags: { disable: [bad] } }), `"${bad}"`, "--disable");
    await assertRefused(load({ file: { disable: [bad] } }), `"${bad}"`, "config.json");
  }
  await assertRefused(load({ file: { disable: "echo" } }), '"disable"');
});

Deno.test("cookie_threshold is a whole number >= 0 and require_mac1 a boolean", async () => {
  assert.equal((await load({ file: { cookie_threshold: 0 } })).cookieThreshold, 0);
  assert.equal((await load({ file: { cookie_threshold: 64 } })).cookieThreshold, 64);
  for (const bad of [-1, 1.5, "8", null]) {
    await assertRefused(load({ file: { cookie_threshold: bad } }), '"cookie_threshold"');
  }
  for (const bad of ["yes", 1, null]) {
    await assertRefused(load({ file: { require_mac1: bad } }), '"require_mac1"');
  }
});

// Defects found by these tests, fixed in config.ts ----------------------------

Deno.test("a timer longer than the protocol's limit is refused quoting it, not silently capped", async () => {
  const over = REKEY_AFTER_TIME_MS + 1;
  await assertRefused(
    load({ file: { timers: { rekey_after_ms: over } } }),
    '"rekey_after_ms"',
    String(over),
  );
  const stream = STREAM_KEEPALIVE_MS + 1;
  await assertRefused(
    load({ file: { timers: { stream_keepalive_ms: stream } } }),
    '"stream_keepalive_ms"',
    String(stream),
  );
});

Deno.test("a listen endpoint on port 0 with a bad host is refused quoting what was given", async () => {
  await assertRefused(load({ flags: { listen: "localhost:0" } }), '"localhost:0"');
});

Deno.test("a bad number or type in config.json is refused quoting the value", async () => {
  await assertRefused(load({ file: { timers: { keepalive_ms: -5 } } }), "-5");
  await assertRefused(load({ file: { cookie_threshold: -1 } }), "-1");
  await assertRefused(load({ file: { listen: 7440 } }), "7440");
});

Deno.test("a peer name that is neither a hostname nor an address is refused quoting it", async () => {
  await assertRefused(load({ flags: { peer: ["Bad Name=127.0.0.1:7440"] } }), '"Bad Name"');
  const ok = await load({ flags: { peer: ["3fa2.09c1.77e4=127.0.0.1:7440"] } });
  assert.deepEqual(Object.keys(ok.peers), ["3fa2.09c1.77e4"]);
});

// Rendezvous (issue 9) ---------------------------------------------------------

Deno.test("rendezvous come from config.json and --rendezvous (KEY@HOST:PORT or HOST:PORT), --public from either", async () => {
  const key = ALICE.public_key;
  const cfg = await load({
    file: { rendezvous: [`${key}@198.18.0.9:7440`], public: false },
    flags: { rendezvous: ["rv.example.com:7440"], public: true },
  });
  assert.deepEqual(cfg.rendezvous.map((r) => [r.key?.toHex() ?? null, r.endpoint, r.text]), [
    [key, { host: "198.18.0.9", port: 7440 }, `${key}@198.18.0.9:7440`],
    [null, { host: "rv.example.com", port: 7440 }, "rv.example.com:7440"],
  ]);
  assert.equal(cfg.visibility, "public");
  assert.equal((await load()).visibility, "private", "private unless asked");
});

Deno.test("a rendezvous with a bad key or endpoint, or a non-boolean public, is refused quoting it", async () => {
  await assertRefused(load({ flags: { rendezvous: ["abcd@198.18.0.9:7440"] } }), "abcd@", "64 hex");
  await assertRefused(load({ flags: { rendezvous: ["198.18.0.9"] } }), "198.18.0.9");
  await assertRefused(load({ file: { rendezvous: "198.18.0.9:7440" } }), "rendezvous");
  await assertRefused(load({ file: { public: "yes" } }), "public");
});

Deno.test("punch is a boolean (default on); relay_quota sets a rendezvous's per-node and total bytes per second", async () => {
  const plain = await load({});
  assert.equal(plain.punch, true);
  assert.deepEqual(plain.relayQuota, { perPeer: 1_000_000, total: 50_000_000 });
  assert.equal((await load({ file: { punch: false } })).punch, false);
  await assertRefused(load({ file: { punch: "no" } }), '"punch"');
  const quota = await load({ file: { relay_quota: { per_peer: 200_000_000 } } });
  assert.deepEqual(quota.relayQuota, { perPeer: 200_000_000, total: 50_000_000 });
  for (const bad of [[1], { per_peer: 10 }, { total: 1.5e4 + 0.5 }, { both: 1 }, "1000"]) {
    await assertRefused(load({ file: { relay_quota: bad } }), "relay_quota");
  }
});

Deno.test("a node with a rendezvous requires mac1: strangers reach it by key only", async () => {
  assert.equal((await load({})).requireMac1, false);
  const key = "ab".repeat(32);
  assert.equal(
    (await load({ flags: { rendezvous: [`${key}@198.18.0.2:7445`] } })).requireMac1,
    true,
  );
});

Deno.test("LAN discovery is on by default on port 27440; lan: false or --no-lan turn it off, lan_port moves it, bad values are refused", async () => {
  const plain = await load({});
  assert.deepEqual([plain.lan, plain.lanPort], [true, 27440]);
  assert.equal((await load({ file: { lan: false } })).lan, false);
  assert.equal((await load({ flags: { noLan: true } })).lan, false);
  assert.equal((await load({ file: { lan: true }, flags: { noLan: true } })).lan, false);
  assert.equal((await load({ file: { lan_port: 17440 } })).lanPort, 17440);
  await assertRefused(load({ file: { lan: "off" } }), '"lan"', '"off"');
  for (const bad of [0, 65536, 1.5, "27440"]) {
    await assertRefused(load({ file: { lan_port: bad } }), '"lan_port"', JSON.stringify(bad));
  }
});

Deno.test('dht is off by default; --dht or "dht": true turn it on; dht_port and dht_bootstrap are checked', async () => {
  const plain = await load({});
  assert.equal(plain.dht, false);
  assert.equal(plain.dhtPort, 0);
  assert.ok(plain.dhtBootstrap.length > 0, "public bootstrap nodes by default");
  assert.equal((await load({ flags: { dht: true } })).dht, true);
  const cfg = await load({
    file: { dht: true, dht_port: 6881, dht_bootstrap: ["127.0.0.1:7000", "dht.example.com:6881"] },
  });
  assert.deepEqual([cfg.dht, cfg.dhtPort], [true, 6881]);
  assert.deepEqual(cfg.dhtBootstrap, [
    { host: "127.0.0.1", port: 7000 },
    { host: "dht.example.com", port: 6881 },
  ]);
  await assertRefused(load({ file: { dht: "yes" } }), '"dht"');
  await assertRefused(load({ file: { dht_port: 70000 } }), '"dht_port"');
  await assertRefused(load({ file: { dht_bootstrap: "127.0.0.1:1" } }), '"dht_bootstrap"');
  await assertRefused(load({ file: { dht_bootstrap: ["nope"] } }), "nope");
});
