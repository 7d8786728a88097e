/**
 * Names an impostor cannot take (issue 8, the README's own flow): a stranger
 * that connects to the orchestrator claiming the worker's hostname, and
 * pre-authorises the orchestrator, receives neither the handshake nor the
 * messages meant for the worker, and cannot make sends to the real worker
 * fail once it is trusted.
 */
import assert from "node:assert/strict";
import {
  okOf,
  PAIR_B_NAME,
  startNode,
  startPair,
  stopAll,
  type TestNode,
  waitFor,
} from "./_daemon_harness.ts";

Deno.test("a stranger claiming the worker's hostname never receives the orchestrator's handshake or messages", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let impostor: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    impostor = await startNode({
      identity: 2,
      hostname: PAIR_B_NAME,
      args: ["--auto-approve", a.identity!.publicKey],
    });
    // The impostor parks a session (and a request) at the orchestrator first.
    okOf(await impostor.pilot("handshake", a.listen, "--reason", "hi", "--json"), "handshake");

    const hs = okOf(
      await a.pilot("handshake", PAIR_B_NAME, "--reason", "jobs", "--json"),
      "handshake",
    );
    assert.equal(hs.peer.public_key, b.identity!.publicKey, "the handshake went to the worker");
    assert.equal(hs.status, "pending");
    const atWorker = okOf(await b.pilot("pending", "--json"), "pending").pending;
    assert.deepEqual(atWorker.map((p: { public_key: string }) => p.public_key), [
      a.identity!.publicKey,
    ]);
    const trustAtA = okOf(await a.pilot("trust", "--json"), "trust").trusted;
    assert.deepEqual(trustAtA, [], "nothing is trusted before the worker approves");

    // The stranger's claim is shown, flagged, at the orchestrator.
    const claim = (await a.peers()).find((p) => p.public_key === impostor!.identity!.publicKey);
    assert.equal(claim?.name_conflict, "configured", JSON.stringify(claim));
    const pendingAtA = okOf(await a.pilot("pending", "--json"), "pending").pending;
    assert.equal(pendingAtA[0]?.name_conflict, "configured");

    okOf(await b.pilot("approve", a.identity!.fingerprint, "--json"), "approve");
    await waitFor("trust to be mutual at the orchestrator", async () => {
      const t = okOf(await a!.pilot("trust", "--json"), "trust").trusted;
      return t.some((e: { public_key: string; mutual: boolean }) =>
        e.public_key === b!.identity!.publicKey && e.mutual
      );
    });

    // Takeover attempt: the impostor is still connected and still claims the
    // name; sends by name keep going to the trusted worker.
    okOf(await impostor.pilot("connect", a.listen, "--json"), "connect");
    const sent = okOf(
      await a.pilot("send", PAIR_B_NAME, "--data", '{"command":"run"}', "--type", "json", "--json"),
      "send",
    );
    assert.equal(sent.to.public_key, b.identity!.publicKey);
    const inbox = okOf(await b.pilot("inbox", "--json"), "inbox").messages;
    assert.equal(inbox.length, 1);
    assert.equal(okOf(await impostor.pilot("inbox", "--json"), "inbox").messages.length, 0);
    const claimNow = (await a.peers()).find((p) => p.public_key === impostor!.identity!.publicKey);
    assert.equal(claimNow?.name_conflict, "trusted", "now it claims a trusted peer's name");
    const flagged = okOf(await a.pilot("handshake", PAIR_B_NAME, "--json"), "handshake");
    assert.equal(flagged.peer.public_key, b.identity!.publicKey);
    assert.equal(flagged.status, "trusted");
  } finally {
    await stopAll(a, b, impostor);
  }
});

Deno.test("after a worker is replaced by a new identity on the same endpoint, handshake ENDPOINT names the new key and a send by name is key_changed with both fingerprints", async () => {
  let a: TestNode | undefined;
  let b: TestNode | undefined;
  let replacement: TestNode | undefined;
  try {
    ({ a, b } = await startPair());
    okOf(await a.pilot("handshake", b.listen, "--json"), "handshake");
    okOf(await b.pilot("approve", a.identity!.fingerprint, "--json"), "approve");
    await waitFor("trust to be mutual at the orchestrator", async () => {
      const t = okOf(await a!.pilot("trust", "--json"), "trust").trusted;
      return t.some((e: { mutual: boolean }) => e.mutual);
    });
    const endpoint = b.listen;
    await b.stop();
    replacement = await startNode({
      identity: 3,
      hostname: PAIR_B_NAME,
      args: ["--listen", endpoint],
    });
    assert.equal(replacement.listen, endpoint);

    const hs = okOf(await a.pilot("handshake", endpoint, "--json"), "handshake");
    assert.equal(hs.peer.public_key, replacement.identity!.publicKey, "the endpoint was asked");
    assert.equal(hs.status, "pending");

    const sent = await a.pilot("send", PAIR_B_NAME, "--data", "x", "--timeout", "40s", "--json");
    assert.equal(sent.json?.code, "key_changed", sent.stdout + sent.stderr);
    assert.ok(sent.json.message.includes(b.identity!.fingerprint), sent.json.message);
    assert.ok(sent.json.message.includes(replacement.identity!.fingerprint), sent.json.message);
    assert.doesNotMatch(sent.json.hint, /untrust/);
  } finally {
    await stopAll(a, b, replacement);
  }
});
