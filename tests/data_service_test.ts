/**
 * The data-exchange service (port 1001) in process: fragments, receipts,
 * reassembly bounds and refusals, over the fake sessions of
 * tests/_service_helpers.ts.
 */
import assert from "node:assert/strict";
import {
  MAX_DATAGRAM,
  MAX_MESSAGE_DATA,
  MAX_REASSEMBLY_BYTES,
  MAX_TRANSFERS_PER_PEER,
  MESSAGE_CHUNK,
  PORT_DATA,
  REASSEMBLY_TIMEOUT_MS,
} from "../src/constants.ts";
import { randomBytes } from "../src/session/crypto.ts";
import {
  type DataPacket,
  decodeDataPacket,
  encodeDataPacket,
  encodeEnvelope,
  type Envelope,
  fragment,
} from "../src/wire/data_message.ts";
import { DATA_HEADER_SIZE, TAG_SIZE } from "../src/wire/frames.ts";
import { INNER_HEADER_SIZE } from "../src/wire/inner.ts";
import { fakePeer, network, prng, type ServiceNet, type ServiceNode } from "./_service_helpers.ts";

/** The largest port payload that still fits one MAX_DATAGRAM-byte UDP datagram. */
const MAX_PAYLOAD = MAX_DATAGRAM - DATA_HEADER_SIZE - TAG_SIZE - INNER_HEADER_SIZE;
/** Largest fragment count the codec accepts (data_message.ts). */
const MAX_FRAGMENTS = Math.ceil((MAX_MESSAGE_DATA + 4096) / MESSAGE_CHUNK);

function envelope(id: string, size: number, fields: Partial<Envelope> = {}): Envelope {
  return {
    id,
    type: "binary",
    correlationId: "",
    inReplyTo: "",
    expiresAt: 0,
    meta: {},
    data: randomBytes(size),
    ...fields,
  };
}

/** The encoded fragments of `e` under a transfer id. */
function fragments(e: Envelope, transfer = randomBytes(8)): Uint8Array[] {
  return fragment(transfer, encodeEnvelope(e)).map(encodeDataPacket);
}

/** Hands data packets from `peer` to `node` one by one; returns every reply, decoded. */
async function feed(
  net: ServiceNet,
  node: ServiceNode,
  from: ServiceNode | string,
  packets: Uint8Array[],
): Promise<DataPacket[]> {
  const peer = typeof from === "string" ? fakePeer(from) : from.peer;
  const replies: DataPacket[] = [];
  for (const payload of packets) {
    const r = await net.inject(node, { peer, binding: randomBytes(32), port: PORT_DATA, payload });
    replies.push(...r.map(decodeDataPacket));
  }
  return replies;
}

Deno.test("deliver() sends fragments of at most MESSAGE_CHUNK bytes in datagrams that fit, and the receipt carries the sink's seq", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  for (const size of [0, 5_000, MAX_MESSAGE_DATA]) {
    const e = envelope(`m${size}`, size, { meta: { k: "v" }, correlationId: "c1" });
    const first = net.log.length;
    const receipt = await a.dataService.deliver(b.keyHex, e, 3_000);
    const stored = b.sink.stored.at(-1)!;
    assert.deepEqual(stored.envelope, e);
    assert.equal(stored.sender, a.keyHex);
    assert.deepEqual(
      receipt && { status: receipt.status, seq: receipt.seq, detail: receipt.detail },
      {
        status: "stored",
        seq: stored.seq,
        detail: "",
      },
    );
    const out = net.sent(PORT_DATA).filter((w) => w.seq >= first && w.from === a);
    const expected = Math.max(1, Math.ceil(encodeEnvelope(e).length / MESSAGE_CHUNK));
    assert.equal(out.length, expected, `${size} bytes in ${expected} fragments`);
    for (const w of out) {
      assert.ok(w.payload.length <= MAX_PAYLOAD, `${w.payload.length} > ${MAX_PAYLOAD}`);
      const p = decodeDataPacket(w.payload);
      assert.ok(p.op === "fragment" && p.chunk.length <= MESSAGE_CHUNK && p.count === expected);
    }
  }
  assert.equal(b.sink.calls, 3);
  assert.deepEqual(net.errors, []);
});

Deno.test("fragments out of order and repeated are reassembled into one stored message", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const e = envelope("shuffled", 6_000);
  const packets = fragments(e);
  assert.equal(packets.length, 6);
  const order = [3, 5, 3, 0, 4, 4, 1, 2, 0, 5];
  const replies = await feed(net, b, a, order.map((i) => packets[i]!));
  assert.equal(b.sink.calls, 1);
  assert.deepEqual(b.sink.stored.map((s) => s.envelope), [e]);
  // One receipt on completion, then the cached receipt for each late copy.
  assert.equal(replies.length, 3);
  for (const r of replies) assert.deepEqual(r, replies[0]);
  const receipt = replies[0]!;
  assert.ok(receipt.op === "receipt" && receipt.status === "stored");
  assert.equal(receipt.seq, b.sink.stored[0]!.seq);
});

Deno.test("with 20% of datagrams dropped and others duplicated or reordered, deliver() still stores the message exactly once", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const random = prng(20_24);
  let drops = 0;
  net.filter = () => {
    const r = random();
    if (r < 0.2) {
      drops++;
      return "drop";
    }
    if (r < 0.3) return "duplicate";
    return { delay: Math.floor(random() * 4) };
  };
  for (let i = 0; i < 3; i++) {
    const e = envelope(`lossy-${i}`, 7_000);
    const receipt = await a.dataService.deliver(b.keyHex, e, 8_000);
    assert.equal(receipt?.status, "stored", `message ${i}`);
    assert.equal(receipt.seq, b.sink.stored[i]!.seq);
  }
  assert.ok(drops > 0);
  assert.equal(b.sink.calls, 3);
  assert.deepEqual(b.sink.stored.map((s) => s.envelope.id), ["lossy-0", "lossy-1", "lossy-2"]);
  assert.deepEqual(net.errors, []);
});

Deno.test("a repeated transfer is answered from the receipt cache; a new transfer of the same id reaches the sink, which reports a duplicate", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const e = envelope("once", 2_000);
  const receipt = await a.dataService.deliver(b.keyHex, e, 2_000);
  assert.equal(receipt?.status, "stored");
  const transfer = net.sent(PORT_DATA).filter((w) => w.from === a).map((w) => w.payload);
  const receiptBytes = net.sent(PORT_DATA).find((w) => w.from === b)!.payload;

  const again = await net.inject(b, {
    peer: a.peer,
    binding: net.binding(a, b.keyHex)!,
    port: PORT_DATA,
    payload: transfer[1]!,
  });
  assert.deepEqual(again, [receiptBytes]);
  assert.equal(b.sink.calls, 1);

  const retry = await a.dataService.deliver(b.keyHex, e, 2_000);
  assert.deepEqual(retry && [retry.status, retry.seq], ["duplicate", receipt.seq]);
  assert.equal(b.sink.calls, 2);
  assert.equal(b.sink.stored.length, 1);
});

Deno.test("two peers using the same transfer id do not mix their fragments", async () => {
  await using net = await network(3);
  const [a, b, c] = net.nodes as [ServiceNode, ServiceNode, ServiceNode];
  const transfer = randomBytes(8);
  const fromA = fragments(envelope("a", 3_000), transfer);
  const fromC = fragments(envelope("c", 3_000), transfer);
  for (let i = 0; i < fromA.length; i++) {
    await feed(net, b, a, [fromA[i]!]);
    await feed(net, b, c, [fromC[i]!]);
  }
  assert.deepEqual(b.sink.stored.map((s) => [s.sender, s.envelope.id]), [
    [a.keyHex, "a"],
    [c.keyHex, "c"],
  ]);
});

Deno.test("a peer that never finishes its messages holds at most MAX_TRANSFERS_PER_PEER transfers; others are unaffected; partial transfers expire", async () => {
  await using net = await network(3);
  const [a, b, c] = net.nodes as [ServiceNode, ServiceNode, ServiceNode];
  const stalled = Array.from(
    { length: MAX_TRANSFERS_PER_PEER + 1 },
    (_, i) => fragments(envelope(`stalled-${i}`, 3_000)),
  );
  for (const f of stalled) assert.deepEqual(await feed(net, b, a, [f[0]!]), []);
  assert.equal(b.dataService.refused.too_many_transfers, 1);
  // The refused transfer holds nothing: its other fragments are refused too.
  await feed(net, b, a, stalled.at(-1)!.slice(1));
  assert.equal(b.dataService.refused.too_many_transfers, 3);
  // Another peer's message goes through.
  const fromC = await feed(net, b, c, fragments(envelope("other", 3_000)));
  assert.deepEqual(fromC.map((r) => r.op === "receipt" && r.status), ["stored"]);
  // Finishing an admitted transfer works, and frees its slot.
  const done = await feed(net, b, a, stalled[0]!.slice(1));
  assert.equal(done.length, 1);
  assert.equal(b.sink.stored.at(-1)!.envelope.id, "stalled-0");
  assert.deepEqual(await feed(net, b, a, [fragments(envelope("slot", 3_000))[0]!]), []);
  assert.equal(b.dataService.refused.too_many_transfers, 3);

  // Just before the timeout the stalled transfers still hold their slots ...
  net.clock.advance(REASSEMBLY_TIMEOUT_MS - 1);
  await feed(net, b, a, [fragments(envelope("late", 3_000))[0]!]);
  assert.equal(b.dataService.refused.too_many_transfers, 4);
  // ... and once it passes they are gone: their last fragments complete nothing.
  net.clock.advance(1);
  const late = await feed(net, b, a, stalled[1]!.slice(1));
  assert.deepEqual(late, []);
  assert.equal(b.sink.stored.length, 2);
  const fresh = await feed(net, b, a, fragments(envelope("fresh", 3_000)));
  assert.deepEqual(fresh.map((r) => r.op === "receipt" && r.status), ["stored"]);
  assert.equal(b.dataService.refused.too_many_transfers, 4);
  assert.deepEqual(net.errors, []);
});

Deno.test("reassembly buffers never hold more than MAX_REASSEMBLY_BYTES across peers, and expire to make room again", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const chunk = new Uint8Array(MESSAGE_CHUNK).fill(7);
  const service = b.dataService;
  const BINDING = randomBytes(32);
  let accepted = 0;
  let peer = 0;
  // Every transfer claims the largest count and never sends its last fragment.
  outer: for (;;) {
    const key = `peer-${peer++}`;
    for (let t = 0; t < MAX_TRANSFERS_PER_PEER; t++) {
      const transfer = randomBytes(8);
      for (let index = 0; index < MAX_FRAGMENTS - 1; index++) {
        const before = service.refused.reassembly_full ?? 0;
        const payload = encodeDataPacket({
          op: "fragment",
          transfer,
          index,
          count: MAX_FRAGMENTS,
          chunk,
        });
        await net.inject(b, { peer: fakePeer(key), binding: BINDING, port: PORT_DATA, payload });
        if ((service.refused.reassembly_full ?? 0) > before) break outer;
        accepted += chunk.length;
      }
    }
  }
  assert.ok(accepted <= MAX_REASSEMBLY_BYTES, `${accepted} bytes held`);
  assert.ok(accepted + MESSAGE_CHUNK > MAX_REASSEMBLY_BYTES, `full at ${accepted} bytes`);
  assert.equal(b.sink.calls, 0);
  // Full: even a small complete message from a fresh peer waits.
  const small = fragments(envelope("small", 10));
  assert.deepEqual(await feed(net, b, a, small), []);
  net.clock.advance(REASSEMBLY_TIMEOUT_MS);
  const later = await feed(net, b, a, fragments(envelope("small", 10)));
  assert.deepEqual(later.map((r) => r.op === "receipt" && r.status), ["stored"]);
});

Deno.test("inconsistent fragment counts, malformed packets and malformed envelopes are refused and counted, never thrown", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  const transfer = randomBytes(8);
  const chunk = new Uint8Array(MESSAGE_CHUNK);
  const frag = (index: number, count: number, c = chunk) =>
    encodeDataPacket({ op: "fragment", transfer, index, count, chunk: c });
  assert.deepEqual(await feed(net, b, a, [frag(0, 3), frag(1, 4)]), []);
  assert.equal(b.dataService.refused.inconsistent_fragment, 1);

  const junk = [
    new Uint8Array(0),
    Uint8Array.of(1),
    Uint8Array.of(9, ...new Uint8Array(12)),
    frag(0, 3).subarray(0, 100), // a non-last fragment shorter than MESSAGE_CHUNK
    Uint8Array.of(1, ...transfer, 0, 3, 0, 3), // index 3 of 3
    Uint8Array.of(1, ...transfer, 0, 0, 0, 0), // count 0
    Uint8Array.of(2, ...transfer, 7, ...new Uint8Array(9)), // unknown receipt status
  ];
  assert.deepEqual(await feed(net, b, a, junk), []);
  assert.equal(b.dataService.refused.malformed, junk.length);

  const garbage = encodeDataPacket({
    op: "fragment",
    transfer: randomBytes(8),
    index: 0,
    count: 1,
    chunk: Uint8Array.of(1, 1, 0),
  });
  const [receipt] = await feed(net, b, a, [garbage]);
  assert.deepEqual(receipt && receipt.op === "receipt" && [receipt.status, receipt.detail], [
    "refused",
    "invalid_argument",
  ]);
  assert.equal(b.dataService.refused.malformed_envelope, 1);
  assert.equal(b.sink.calls, 0);
  assert.deepEqual(net.errors, []);
});

Deno.test("a sink that refuses with an error code yields a refused receipt naming it", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  b.sink.fail = () => new Error("rate_limited");
  const receipt = await a.dataService.deliver(b.keyHex, envelope("full", 10), 2_000);
  assert.deepEqual(receipt && [receipt.status, receipt.seq, receipt.detail], [
    "refused",
    0,
    "rate_limited",
  ]);
  assert.equal(b.dataService.refused.rate_limited, 1);
});

Deno.test({
  name: "a sink error with a long message still yields a refused receipt",
  fn: async () => {
    await using net = await network(2);
    const [a, b] = net.nodes as [ServiceNode, ServiceNode];
    b.sink.fail = () => new Error(`No space left on device (os error 28): ${"x".repeat(80)}`);
    const [receipt] = await feed(net, b, a, fragments(envelope("disk", 10)));
    assert.ok(receipt?.op === "receipt" && receipt.status === "refused");
  },
});

Deno.test("deliver() resolves undefined at its timeout when nobody answers", async () => {
  await using net = await network(2);
  const [a, b] = net.nodes as [ServiceNode, ServiceNode];
  net.filter = () => "drop";
  const started = performance.now();
  assert.equal(await a.dataService.deliver(b.keyHex, envelope("lost", 10), 400), undefined);
  const took = performance.now() - started;
  assert.ok(took >= 350 && took < 1_500, `took ${took} ms`);
  // It kept repeating until then.
  assert.ok(net.sent(PORT_DATA).length >= 2);
  assert.equal(b.sink.calls, 0);
  // Without a session at all it ends the same way.
  net.filter = undefined;
  net.disconnect(a, b);
  assert.equal(await a.dataService.deliver(b.keyHex, envelope("lost", 10), 300), undefined);
});
