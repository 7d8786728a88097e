/**
 * The bytes a connection has accepted from its writer and not yet seen
 * acknowledged, addressed by sequence number. Chunks are kept by reference
 * (no copy): a segment is encoded straight from views of them, so each
 * payload byte is copied once on its way out.
 *
 * @module
 */

/** Written, unacknowledged bytes `[start, end)` as a queue of chunks. */
export class SendBuffer {
  #chunks: Uint8Array[] = [];
  #starts: number[] = [];
  #head = 0;
  #start: number;
  #end: number;
  #hint = 0;

  /** An empty buffer whose first byte will have sequence number `seq`. */
  constructor(seq: number) {
    this.#start = seq;
    this.#end = seq;
  }

  /** Sequence number of the oldest byte still held. */
  get start(): number {
    return this.#start;
  }

  /** Sequence number after the newest byte. */
  get end(): number {
    return this.#end;
  }

  /** Bytes held. */
  get size(): number {
    return this.#end - this.#start;
  }

  /** Appends `bytes` by reference; the caller must not modify them afterwards. */
  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#chunks.push(bytes);
    this.#starts.push(this.#end);
    this.#end += bytes.length;
  }

  #find(seq: number): number {
    const h = this.#hint;
    if (h >= this.#head && h < this.#chunks.length) {
      const s = this.#starts[h]!;
      if (seq >= s && seq < s + this.#chunks[h]!.length) return h;
      const n = h + 1;
      if (
        n < this.#chunks.length && seq >= this.#starts[n]! &&
        seq < this.#starts[n]! + this.#chunks[n]!.length
      ) {
        return n;
      }
    }
    let lo = this.#head;
    let hi = this.#chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.#starts[mid]! <= seq) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Views (no copies) of the bytes `[seq, seq + length)`, which must be held. */
  views(seq: number, length: number): Uint8Array[] {
    if (seq < this.#start || seq + length > this.#end) {
      throw new RangeError(
        `Cannot read [${seq}, ${
          seq + length
        }) from a send buffer holding [${this.#start}, ${this.#end})`,
      );
    }
    const out: Uint8Array[] = [];
    if (length === 0) return out;
    let i = this.#find(seq);
    let at = seq;
    let left = length;
    while (left > 0) {
      const chunk = this.#chunks[i]!;
      const off = at - this.#starts[i]!;
      const take = Math.min(left, chunk.length - off);
      out.push(off === 0 && take === chunk.length ? chunk : chunk.subarray(off, off + take));
      at += take;
      left -= take;
      if (left > 0) i++;
    }
    this.#hint = i;
    return out;
  }

  /** Forgets every byte before `seq` (acknowledged). */
  release(seq: number): void {
    if (seq <= this.#start) return;
    if (seq > this.#end) seq = this.#end;
    this.#start = seq;
    while (this.#head < this.#chunks.length) {
      const end = this.#starts[this.#head]! + this.#chunks[this.#head]!.length;
      if (end > seq) break;
      this.#chunks[this.#head] = EMPTY;
      this.#head++;
    }
    if (this.#head === this.#chunks.length) {
      this.#chunks.length = 0;
      this.#starts.length = 0;
      this.#head = 0;
      this.#hint = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#chunks.length) {
      this.#chunks.splice(0, this.#head);
      this.#starts.splice(0, this.#head);
      this.#hint = Math.max(0, this.#hint - this.#head);
      this.#head = 0;
    }
  }

  /** Drops everything (reset). */
  clear(): void {
    this.#chunks.length = 0;
    this.#starts.length = 0;
    this.#head = 0;
    this.#hint = 0;
    this.#start = this.#end;
  }
}

const EMPTY = new Uint8Array(0);
