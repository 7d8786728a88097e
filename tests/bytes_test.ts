import assert from "node:assert/strict";
import { packBytes } from "../src/bytes.ts";

Deno.test("packBytes() copies its parts into one buffer and returns a view of each, in order", () => {
  const a = new Uint8Array([1, 2, 3]);
  const b = new Uint8Array(0);
  const c = new Uint8Array([4, 5]);
  const [pa, pb, pc] = packBytes(a, b, c);
  assert.deepEqual([...pa], [1, 2, 3]);
  assert.equal(pb.length, 0);
  assert.deepEqual([...pc], [4, 5]);
  assert.equal(pa.buffer, pc.buffer);
  assert.equal(pa.buffer.byteLength, 5);
  // Copies: the caller may reuse or zero its arrays afterwards.
  a.fill(0);
  c.fill(0);
  assert.deepEqual([...pa, ...pc], [1, 2, 3, 4, 5]);
});
