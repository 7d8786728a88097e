/**
 * Mailboxes at a rendezvous (services/rendezvous/mailbox.ts), sans-IO:
 * deposits, fetch and acknowledgement, expiry, and every bound refusing
 * (counted) rather than evicting.
 */
import assert from "node:assert/strict";
import {
  MAILBOX_LIMITS,
  type MailboxLimits,
  MailboxStore,
  MAX_MAILBOX_ITEM,
} from "../src/services/rendezvous/mailbox.ts";

const R1 = "11".repeat(32);
const R2 = "22".repeat(32);
const S1 = "aa".repeat(32);
const S2 = "bb".repeat(32);

function store(limits: Partial<MailboxLimits> = {}) {
  const clock = { now: 1_000_000 };
  const mb = new MailboxStore({ now: () => clock.now, limits: { ...MAILBOX_LIMITS, ...limits } });
  const deposit = (
    recipient: string,
    sender: string,
    size = 100,
    source = "198.18.0.1",
    ttlMs = 60_000,
  ) => mb.deposit({ recipient, sender, source, sealed: new Uint8Array(size).fill(7), ttlMs });
  return { mb, clock, deposit };
}

Deno.test("a deposit is fetched by its recipient only, in order, and gone once acknowledged", () => {
  const { mb, deposit } = store();
  const a = deposit(R1, S1);
  const b = deposit(R1, S2, 200);
  deposit(R2, S1);
  assert.ok(a.ok && b.ok);
  const items = mb.fetch(R1);
  assert.deepEqual(items.map((i) => i.sealed.length), [100, 200]);
  assert.deepEqual(mb.fetch(R1, items[0]!.id).map((i) => i.id), [items[1]!.id], "after an id");
  assert.equal(mb.ack(R2, items.map((i) => i.id)), 0, "another recipient cannot remove them");
  assert.equal(mb.ack(R1, items.map((i) => i.id)), 2);
  assert.deepEqual(mb.fetch(R1), []);
  assert.deepEqual([mb.stats().items, mb.stats().mailboxes], [1, 1]);
});

Deno.test("a full mailbox refuses with mailbox_full and keeps what it holds; an ack makes room", () => {
  const { mb, deposit } = store({ perRecipient: { items: 2, bytes: 1000 } });
  deposit(R1, S1);
  deposit(R1, S2);
  assert.deepEqual(deposit(R1, S1), { ok: false, reason: "mailbox_full" });
  assert.equal(mb.fetch(R1).length, 2, "nothing evicted");
  assert.equal(deposit(R2, S1).ok, true, "other mailboxes still take items");
  mb.ack(R1, [mb.fetch(R1)[0]!.id]);
  assert.equal(deposit(R1, S1).ok, true);
  const bytes = store({ perRecipient: { items: 100, bytes: 250 } });
  bytes.deposit(R1, S1, 200);
  assert.deepEqual(bytes.deposit(R1, S1, 100), { ok: false, reason: "mailbox_full" });
  assert.equal(mb.stats().refused.mailbox_full, 1);
});

Deno.test("one depositing key holds at most its share of a recipient's mailbox: others still reach it", () => {
  const { mb, deposit } = store({
    perRecipient: { items: 10, bytes: 1e9 },
    perPair: { items: 3, bytes: 1e9 },
  });
  for (let i = 0; i < 3; i++) assert.equal(deposit(R1, S1).ok, true);
  assert.deepEqual(deposit(R1, S1), { ok: false, reason: "pair_quota" });
  assert.equal(deposit(R1, S2).ok, true, "another sender still reaches the recipient");
  assert.equal(deposit(R2, S1).ok, true, "the sender still reaches other recipients");
  mb.ack(R1, [mb.fetch(R1)[0]!.id]);
  assert.equal(deposit(R1, S1).ok, true, "an ack gives the share back");
  const bytes = store({ perPair: { items: 100, bytes: 250 } });
  bytes.deposit(R1, S1, 200);
  assert.deepEqual(bytes.deposit(R1, S1, 100), { ok: false, reason: "pair_quota" });
  assert.equal(mb.stats().refused.pair_quota, 1);
});

Deno.test("one depositing key, one source address and the whole store each have a bound", () => {
  const sender = store({ perSender: { items: 3, bytes: 1e9 } });
  for (const r of ["01", "02", "03"]) assert.equal(sender.deposit(r.repeat(32), S1).ok, true);
  assert.deepEqual(sender.deposit("04".repeat(32), S1), { ok: false, reason: "sender_quota" });
  assert.equal(sender.deposit("04".repeat(32), S2).ok, true, "another key still deposits");

  const source = store({ perSource: 2 });
  source.deposit(R1, S1, 10, "198.18.0.9");
  source.deposit(R2, S2, 10, "198.18.0.9");
  assert.deepEqual(source.deposit(R1, "cc".repeat(32), 10, "198.18.0.9"), {
    ok: false,
    reason: "source_quota",
  });
  assert.equal(source.deposit(R1, "cc".repeat(32), 10, "198.18.0.10").ok, true);

  const total = store({ total: { items: 2, bytes: 1e9 } });
  total.deposit(R1, S1);
  total.deposit(R2, S2);
  assert.deepEqual(total.deposit("33".repeat(32), "dd".repeat(32)), { ok: false, reason: "full" });
  assert.deepEqual(total.deposit(R1, S1, MAX_MAILBOX_ITEM + 1), { ok: false, reason: "too_large" });
});

Deno.test("items expire after their TTL, capped; expiry frees the quotas it held", () => {
  const { mb, clock, deposit } = store({
    perRecipient: { items: 1, bytes: 1e9 },
    maxTtlMs: 10_000,
  });
  deposit(R1, S1, 100, "198.18.0.1", 3_600_000); // asks for an hour, gets 10 s
  clock.now += 9_999;
  assert.equal(mb.fetch(R1).length, 1);
  clock.now += 1;
  assert.deepEqual(mb.fetch(R1), []);
  assert.equal(mb.stats().expired, 1);
  assert.equal(deposit(R1, S1).ok, true, "the mailbox has room again");
});

Deno.test("bounds hold under many deposits: counts and bytes return to zero when all are acknowledged", () => {
  const { mb, deposit } = store();
  const recipients = Array.from(
    { length: 50 },
    (_, i) => i.toString(16).padStart(2, "0").repeat(32),
  );
  for (let i = 0; i < 2000; i++) {
    deposit(
      recipients[i % 50]!,
      S1.slice(0, 62) + (i % 7).toString(16).padStart(2, "0"),
      1 + (i % 300),
    );
  }
  const held = mb.stats();
  assert.ok(held.items > 0 && held.items <= 2000);
  for (const r of recipients) mb.ack(r, mb.fetch(r, 0, 1000).map((i) => i.id));
  assert.deepEqual([mb.stats().items, mb.stats().bytes, mb.stats().mailboxes], [0, 0, 0]);
});

Deno.test("page() caps items and sealed bytes, says when more follow, and stops below an id", () => {
  const { mb, deposit } = store();
  for (let i = 0; i < 5; i++) deposit(R1, S1, 100);
  const ids = mb.fetch(R1).map((i) => i.id);
  assert.deepEqual(mb.page(R1, { max: 2 }).items.map((i) => i.id), ids.slice(0, 2));
  assert.equal(mb.page(R1, { max: 2 }).more, true);
  assert.equal(mb.page(R1, { max: 5 }).more, false);
  const bytes = mb.page(R1, { maxBytes: 250 });
  assert.deepEqual(
    [bytes.items.length, bytes.more],
    [2, true],
    "a third item would pass 250 bytes",
  );
  assert.deepEqual(
    [mb.page(R1, { maxBytes: 99 }).items.length, mb.page(R1, { maxBytes: 99 }).more],
    [
      0,
      true,
    ],
  );
  const below = mb.page(R1, { after: ids[0]!, below: ids[3]! });
  assert.deepEqual([below.items.map((i) => i.id), below.more], [ids.slice(1, 3), false]);
  assert.deepEqual(mb.page(R2), { items: [], more: false });
});

Deno.test("restore() puts items back with their ids and times, counted against the quotas", () => {
  const { mb, clock, deposit } = store({ perRecipient: { items: 2, bytes: 1e9 } });
  const at = clock.now - 5_000;
  mb.restore({
    id: 7,
    recipient: R1,
    sender: S1,
    source: "198.18.0.1",
    sealed: Uint8Array.of(1, 2),
    depositedAt: at,
    expiresAt: at + 60_000,
  });
  assert.deepEqual(mb.fetch(R1), [{ id: 7, sealed: Uint8Array.of(1, 2), depositedAt: at }]);
  assert.equal(mb.nextId, 8);
  assert.throws(
    () => mb.restore({ ...mb.held(R1, 7)!, id: 7 }),
    RangeError,
    "an id at or below one given",
  );
  const next = deposit(R1, S1);
  assert.ok(next.ok && next.id === 8 && next.depositedAt === clock.now);
  assert.deepEqual(deposit(R1, S1), { ok: false, reason: "mailbox_full" }, "restored items count");
  mb.skipTo(100);
  mb.skipTo(50);
  assert.equal(mb.nextId, 100);
  clock.now = at + 60_000;
  assert.deepEqual(mb.expire().map((h) => h.id), [7]);
});

Deno.test("withdraw() takes a deposit back without counting it as expired", () => {
  const { mb, deposit } = store();
  const d = deposit(R1, S1);
  assert.ok(d.ok);
  assert.equal(mb.withdraw(R2, d.id), false, "another recipient's id");
  assert.equal(mb.withdraw(R1, d.id), true);
  assert.equal(mb.withdraw(R1, d.id), false);
  assert.deepEqual([mb.stats().items, mb.stats().bytes, mb.stats().expired], [0, 0, 0]);
});
