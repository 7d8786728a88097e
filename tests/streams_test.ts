/**
 * Reliable streams between real daemons: pipe mode, listen --exec, refusals.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  establishTrust,
  listenReady,
  okOf,
  PAIR_B_NAME,
  runPilotInput,
  startPair,
  type TestNode,
} from "./_daemon_harness.ts";

async function connect(a: TestNode, args: string[], input?: Uint8Array) {
  return input === undefined
    ? await a.pilot(...args)
    : await runPilotInput(args, { home: a.home, input });
}

Deno.test("a 4 MiB pipe through listen --exec cat comes back byte for byte", async () => {
  const { a, b } = await startPair();
  try {
    await establishTrust(a, b, PAIR_B_NAME);
    const listening = await listenReady(b, [
      "9100",
      "--exec",
      "cat",
      "--count",
      "1",
      "--timeout",
      "60s",
      "--json",
    ]);
    // Text (base64 of random bytes), so the harness's text capture of stdout is exact.
    const random = new Uint8Array(3 * 1024 * 1024);
    for (let o = 0; o < random.length; o += 65_536) {
      crypto.getRandomValues(random.subarray(o, o + 65_536));
    }
    const text = random.toBase64();
    const r = await connect(
      a,
      ["connect", PAIR_B_NAME, "9100"],
      new TextEncoder().encode(text),
    );
    assert.equal(r.code, 0, `stdout: ${r.stdout.slice(0, 300)}\nstderr: ${r.stderr}`);
    assert.equal(sha256(r.stdout), sha256(text));
    okOf(await listening.done, "listen");
    // The same through --message: exact bytes in the JSON reply.
    const again = await listenReady(b, [
      "9101",
      "--exec",
      "cat",
      "--count",
      "1",
      "--timeout",
      "60s",
      "--json",
    ]);
    const message = "x".repeat(100_000) + "end";
    const args = ["connect", PAIR_B_NAME, "9101", "--message", message, "--json"];
    const m = okOf(await connect(a, args), "connect");
    assert.equal(new TextDecoder().decode(Uint8Array.fromBase64(m.reply)), message);
    assert.equal(m.sent, message.length);
    assert.equal(m.received, message.length);
    okOf(await again.done, "listen");
  } finally {
    await a.stop();
    await b.stop();
  }
});

Deno.test("streams are refused to untrusted peers and to ports nobody listens on", async () => {
  const { a, b } = await startPair();
  try {
    const untrusted = await a.pilot("connect", PAIR_B_NAME, "9200", "--message", "hi", "--json");
    assert.equal(untrusted.code, 4, untrusted.stdout);
    assert.equal(okError(untrusted), "not_trusted");
    await establishTrust(a, b, PAIR_B_NAME);
    const nobody = await a.pilot("connect", PAIR_B_NAME, "9200", "--message", "hi", "--json");
    assert.equal(okError(nobody), "not_found");
    const builtin = await b.pilot("listen", "444", "--timeout", "1s", "--exec", "cat", "--json");
    assert.equal(okError(builtin), "conflict");
  } finally {
    await a.stop();
    await b.stop();
  }
});

Deno.test("ten concurrent streams to one listener all get their own answers", async () => {
  const { a, b } = await startPair();
  try {
    await establishTrust(a, b, PAIR_B_NAME);
    const listening = await listenReady(b, [
      "9300",
      "--exec",
      "tr a-z A-Z",
      "--count",
      "10",
      "--timeout",
      "90s",
      "--json",
    ]);
    const replies = await Promise.all(
      Array.from(
        { length: 10 },
        (_, i) =>
          connect(a, [
            "connect",
            PAIR_B_NAME,
            "9300",
            "--message",
            `stream ${i} payload`,
            "--json",
          ]),
      ),
    );
    for (const [i, r] of replies.entries()) {
      const reply = new TextDecoder().decode(Uint8Array.fromBase64(okOf(r, "connect").reply));
      assert.equal(reply, `STREAM ${i} PAYLOAD`);
    }
    assert.equal(okOf(await listening.done, "listen").accepted, 10);
  } finally {
    await a.stop();
    await b.stop();
  }
});

function okError(r: { stdout: string }): string {
  return JSON.parse(r.stdout).code;
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
