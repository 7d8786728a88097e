/**
 * Reliable streams between real daemons: pipe mode, listen --exec, refusals.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  establishTrust,
  okOf,
  PAIR_B_NAME,
  runPilotInput,
  startPair,
  type TestNode,
} from "./_daemon_harness.ts";

async function connectWhenListening(a: TestNode, args: string[], input?: Uint8Array) {
  // The listener registers a moment after its command starts: retry refusals.
  for (let i = 0; i < 100; i++) {
    const r = input === undefined
      ? await a.pilot(...args)
      : await runPilotInput(args, { home: a.home, input });
    const refused = r.stdout.includes("not_found") || r.stderr.includes("nothing listens") ||
      // The listener's port registration can lag its first accept by a moment.
      r.stdout.includes("not listening") || r.stderr.includes("not listening");
    if (r.code === 0 || !refused) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error("the listener never came up");
}

Deno.test("a 4 MiB pipe through listen --exec cat comes back byte for byte", async () => {
  const { a, b } = await startPair();
  try {
    await establishTrust(a, b, PAIR_B_NAME);
    const listening = b.pilot(
      "listen",
      "9100",
      "--exec",
      "cat",
      "--count",
      "1",
      "--timeout",
      "60s",
      "--json",
    );
    // Text (base64 of random bytes), so the harness's text capture of stdout is exact.
    const random = new Uint8Array(3 * 1024 * 1024);
    for (let o = 0; o < random.length; o += 65_536) {
      crypto.getRandomValues(random.subarray(o, o + 65_536));
    }
    const text = random.toBase64();
    const r = await connectWhenListening(
      a,
      ["connect", PAIR_B_NAME, "9100"],
      new TextEncoder().encode(text),
    );
    assert.equal(r.code, 0, `stdout: ${r.stdout.slice(0, 300)}\nstderr: ${r.stderr}`);
    assert.equal(sha256(r.stdout), sha256(text));
    okOf(await listening, "listen");
    // The same through --message: exact bytes in the JSON reply.
    const again = b.pilot(
      "listen",
      "9101",
      "--exec",
      "cat",
      "--count",
      "1",
      "--timeout",
      "60s",
      "--json",
    );
    const message = "x".repeat(100_000) + "end";
    const args = ["connect", PAIR_B_NAME, "9101", "--message", message, "--json"];
    const m = okOf(await connectWhenListening(a, args), "connect");
    assert.equal(new TextDecoder().decode(Uint8Array.fromBase64(m.reply)), message);
    assert.equal(m.sent, message.length);
    assert.equal(m.received, message.length);
    okOf(await again, "listen");
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
    const listening = b.pilot(
      "listen",
      "9300",
      "--exec",
      "tr a-z A-Z",
      "--count",
      "10",
      "--timeout",
      "90s",
      "--json",
    );
    const replies = await Promise.all(
      Array.from(
        { length: 10 },
        (_, i) =>
          connectWhenListening(a, [
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
    assert.equal(okOf(await listening, "listen").accepted, 10);
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
