/**
 * Taking items out of a mailbox (services/sealed_inbox.ts): each is checked
 * as if it had arrived directly — the seal, replays, the content, the trust
 * gate, expiry — and dropped (counted by reason) or handed on, a stored
 * message's receipt going back to its sender.
 */
import assert from "node:assert/strict";
import { SealedInbox, type SealedSinks } from "../src/services/sealed_inbox.ts";
import { Refusal } from "../src/services/refusal.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import { seal } from "../src/session/seal.ts";
import type { Envelope } from "../src/wire/data_message.ts";
import { encodeSealedContent, type SealedContent } from "../src/wire/sealed_item.ts";
import { IDS, localIdentity } from "./_session_helpers.ts";

const [A, B, C] = [IDS[0]!, IDS[1]!, IDS[2]!];
const NOW = 1_800_000_000_000;

function envelope(id: string, expiresAt = 0): Envelope {
  return {
    id,
    type: "json",
    correlationId: "",
    inReplyTo: "",
    expiresAt,
    meta: {},
    data: new TextEncoder().encode('{"command":"run"}'),
  };
}

/** `content` sealed by `from` for B. */
function sealFor(content: SealedContent, from = A): Promise<Uint8Array> {
  return seal(localIdentity(from), B.staticKey.publicKey, encodeSealedContent(content));
}

function setup(options: { trusted?: string[]; replyFails?: boolean; refuse?: boolean } = {}) {
  const trusted = new Set(options.trusted ?? [A.publicKey.toHex()]);
  const log: string[] = [];
  const stored = new Set<string>();
  const sinks: SealedSinks = {
    message: (sender, item) => {
      if (options.refuse) return Promise.reject(new Refusal("rate_limited"));
      const key = `${sender.keyHex}/${item.envelope.id}`;
      const duplicate = stored.has(key);
      stored.add(key);
      log.push(`message ${item.envelope.id}${duplicate ? " (dup)" : ""}`);
      return Promise.resolve({ seq: stored.size, duplicate });
    },
    receipt: (_sender, item) => {
      log.push(`receipt ${item.id} ${item.status}`);
      return Promise.resolve();
    },
    trust: (sender, signed) => {
      log.push(`trust from ${sender.address} (${signed.length} bytes)`);
      return Promise.resolve();
    },
  };
  const replies: { to: PeerIdentity; receipt: SealedContent }[] = [];
  const inbox = new SealedInbox({
    staticKey: B.staticKey,
    isTrusted: (key) => trusted.has(key),
    sinks,
    reply: (to, receipt) => {
      if (options.replyFails) return Promise.reject(new Error("no mailbox"));
      replies.push({ to, receipt });
      return Promise.resolve();
    },
    now: () => NOW,
  });
  return { inbox, log, replies };
}

Deno.test("a trusted sender's message is stored once and its receipt goes back to the sender", async () => {
  const { inbox, log, replies } = setup();
  assert.equal(
    await inbox.take(await sealFor({ kind: "message", envelope: envelope("job-1") })),
    true,
  );
  assert.deepEqual(log, ["message job-1"]);
  assert.equal(replies.length, 1);
  assert.equal(replies[0]!.to.keyHex, A.publicKey.toHex());
  assert.deepEqual(replies[0]!.receipt, {
    kind: "receipt",
    id: "job-1",
    status: "stored",
    seq: 1,
    code: "",
  });
  // The same message sealed again (a retry through the mailbox): a duplicate, a receipt again.
  assert.equal(
    await inbox.take(await sealFor({ kind: "message", envelope: envelope("job-1") })),
    true,
  );
  assert.equal((replies[1]!.receipt as { status: string }).status, "duplicate");
  assert.deepEqual(inbox.stats(), {
    taken: 2,
    dropped: { unopenable: 0, replayed: 0, malformed: 0, not_trusted: 0, expired: 0 },
  });
});

Deno.test("a refused message gets a refusal receipt; receipts and trust messages are handed on", async () => {
  const refused = setup({ refuse: true });
  await refused.inbox.take(await sealFor({ kind: "message", envelope: envelope("job-2") }));
  assert.deepEqual(refused.replies[0]!.receipt, {
    kind: "receipt",
    id: "job-2",
    status: "refused",
    seq: 0,
    code: "rate_limited",
  });
  const { inbox, log } = setup();
  await inbox.take(
    await sealFor({ kind: "receipt", id: "job-9", status: "stored", seq: 4, code: "" }),
  );
  await inbox.take(await sealFor({ kind: "trust", signed: new Uint8Array(180) }));
  assert.deepEqual(log, ["receipt job-9 stored", `trust from ${A.address} (180 bytes)`]);
});

Deno.test("a stranger's items are dropped unless they are trust messages", async () => {
  const { inbox, log } = setup({ trusted: [] });
  assert.equal(
    await inbox.take(await sealFor({ kind: "message", envelope: envelope("x") }, C)),
    true,
  );
  assert.equal(
    await inbox.take(
      await sealFor({ kind: "receipt", id: "x", status: "stored", seq: 1, code: "" }, C),
    ),
    true,
  );
  await inbox.take(await sealFor({ kind: "trust", signed: new Uint8Array(100) }, C));
  assert.deepEqual(log, [`trust from ${C.address} (100 bytes)`]);
  assert.equal(inbox.stats().dropped.not_trusted, 2);
});

Deno.test("unopenable, replayed, malformed and expired items are dropped and counted, and nothing is handed on", async () => {
  const { inbox, log, replies } = setup();
  const good = await sealFor({ kind: "message", envelope: envelope("once") });
  const bad = good.slice();
  bad[bad.length - 1]! ^= 1;
  assert.equal(await inbox.take(bad), true, "altered");
  assert.equal(await inbox.take(new Uint8Array(10)), true, "garbage");
  const forOther = await seal(
    localIdentity(A),
    C.staticKey.publicKey,
    encodeSealedContent({ kind: "message", envelope: envelope("c") }),
  );
  assert.equal(await inbox.take(forOther), true, "sealed to another key");
  assert.equal(await inbox.take(good), true);
  assert.equal(await inbox.take(good), true, "the same sealed item again");
  const junk = await seal(localIdentity(A), B.staticKey.publicKey, Uint8Array.of(9, 9));
  assert.equal(await inbox.take(junk), true);
  const stale = await sealFor({ kind: "message", envelope: envelope("old", NOW - 1) });
  assert.equal(await inbox.take(stale), true);
  assert.deepEqual(log, ["message once"]);
  assert.equal(replies.length, 1);
  assert.deepEqual(inbox.stats().dropped, {
    unopenable: 3,
    replayed: 1,
    malformed: 1,
    not_trusted: 0,
    expired: 1,
  });
});

Deno.test("a message whose receipt cannot be left stays in the mailbox, and its next take is a duplicate", async () => {
  const failing = setup({ replyFails: true });
  const sealed = await sealFor({ kind: "message", envelope: envelope("job-3") });
  assert.equal(await failing.inbox.take(sealed), false, "kept for the next fetch");
  assert.equal(await failing.inbox.take(sealed), false, "not taken as a replay either");
  assert.deepEqual(failing.log, ["message job-3", "message job-3 (dup)"]);
});
