import assert from "node:assert/strict";
import { BodyBudget } from "../src/services/messages/_body_budget.ts";

Deno.test("a peer at its share waits alone while another peer's bytes are taken", async () => {
  const budget = new BodyBudget({ perPeer: 100, reserve: 60, total: 50 });
  budget.charge("hostile", 100);
  assert.equal(budget.open("hostile"), false);
  const wait = budget.wait("hostile");
  let woken = false;
  void wait.ready.then(() => woken = true);
  // Another peer reads on, from its reserve and then the shared bytes left.
  assert.equal(budget.open("honest"), true);
  budget.charge("honest", 60);
  assert.equal(budget.open("honest"), true);
  budget.release("honest", 60);
  await Promise.resolve();
  assert.equal(woken, false, "another peer's release does not free the hostile peer's share");
  budget.release("hostile", 1);
  await wait.ready;
  assert.equal(budget.used, 99);
});

Deno.test("bytes beyond the reserves come from the shared total, and a peer waits when it is spent", () => {
  const budget = new BodyBudget({ perPeer: 100, reserve: 10, total: 30 });
  budget.charge("a", 40); // 30 shared
  assert.equal(budget.open("a"), false);
  assert.equal(budget.open("b"), true, "a fresh peer still has its reserve");
  budget.charge("b", 10);
  assert.equal(budget.open("b"), false);
  budget.release("a", 40);
  assert.equal(budget.open("b"), true);
  assert.equal(budget.used, 10);
});

Deno.test("a cancelled wait is forgotten and never woken", async () => {
  const budget = new BodyBudget({ perPeer: 10, reserve: 10, total: 0 });
  budget.charge("a", 10);
  const wait = budget.wait("a");
  let woken = false;
  void wait.ready.then(() => woken = true);
  wait.cancel();
  budget.release("a", 10);
  await Promise.resolve();
  assert.equal(woken, false);
});
