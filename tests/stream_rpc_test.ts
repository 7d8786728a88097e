import assert from "node:assert/strict";
import { type Settled, StreamRpc } from "../src/services/stream_rpc.ts";

/** Answers the test hands out one by one; null ends the stream. */
class Answers {
  #queue: (number | null)[] = [];
  #wake: (() => void) | null = null;
  reads = 0;

  give(a: number | null): void {
    this.#queue.push(a);
    this.#wake?.();
  }

  async read(): Promise<number | null> {
    this.reads++;
    while (this.#queue.length === 0) await new Promise<void>((r) => this.#wake = r);
    this.#wake = null;
    return this.#queue.shift()!;
  }
}

function rpc(answers: Answers): StreamRpc<number> {
  return new StreamRpc<number>({
    read: () => answers.read(),
    ended: () => new Error("ended"),
  });
}

const exactly = (want: number) => (a: number): Settled<number> => {
  if (a < 0) return { error: new Error(`refused ${want}`) };
  if (a !== want) throw new Error(`answer ${a} for request ${want}`);
  return { value: a };
};

Deno.test("answers settle the requests in the order they were written", async () => {
  const answers = new Answers();
  const ch = rpc(answers);
  const one = ch.expect(exactly(1));
  const two = ch.expect(exactly(2));
  answers.give(1);
  answers.give(2);
  assert.deepEqual(await Promise.all([one.answer, two.answer]), [1, 2]);
  assert.ok(one.settled() && two.settled());
});

Deno.test("a refusal rejects only its own request and the channel goes on", async () => {
  const answers = new Answers();
  const ch = rpc(answers);
  const refused = ch.expect(exactly(1));
  const next = ch.expect(exactly(2));
  answers.give(-1);
  answers.give(2);
  await assert.rejects(refused.answer, /refused 1/);
  assert.equal(await next.answer, 2);
  assert.equal(ch.failure, null);
});

Deno.test("an answer that does not fit breaks the channel: every owed and later request rejects", async () => {
  const answers = new Answers();
  const ch = rpc(answers);
  const one = ch.expect(exactly(1));
  const two = ch.expect(exactly(2));
  answers.give(7);
  await assert.rejects(one.answer, /answer 7 for request 1/);
  await assert.rejects(two.answer, /answer 7 for request 1/);
  await assert.rejects(ch.expect(exactly(3)).answer, /answer 7/);
});

Deno.test("the stream is read only while answers are owed", async () => {
  const answers = new Answers();
  const ch = rpc(answers);
  assert.equal(answers.reads, 0);
  const one = ch.expect(exactly(1));
  answers.give(1);
  await one.answer;
  await Promise.resolve();
  assert.equal(answers.reads, 1);
  const end = ch.expect(exactly(2));
  answers.give(null);
  await assert.rejects(end.answer, /ended/);
});

Deno.test("exclusive() runs each request's writes after the earlier ones, even when one fails", async () => {
  const ch = rpc(new Answers());
  const order: string[] = [];
  const { promise: gate, resolve: release } = Promise.withResolvers<void>();
  const first = ch.exclusive(async () => {
    await gate;
    order.push("first");
    throw new Error("write failed");
  });
  const second = ch.exclusive(() => {
    order.push("second");
    return Promise.resolve();
  });
  await Promise.resolve();
  assert.deepEqual(order, [], "the second waits for the first");
  release();
  await assert.rejects(first, /write failed/);
  await second;
  assert.deepEqual(order, ["first", "second"]);
});
