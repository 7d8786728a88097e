/**
 * The receiving half of a connection's byte stream: data in order waiting
 * for the reader, and data above a gap held as coalesced ranges that the
 * receiver reports in SACK blocks. Chunks are views of the received
 * segments (no copy) when the view is most of its buffer; a piece much
 * smaller than the datagram it came in is copied out (see
 * {@linkcode PIN_SLACK}), so the memory the buffer keeps alive is about the
 * bytes it counts. The caller bounds those through the window it advertises
 * (`right`) and `maxSegments`; data refused here is never SACKed, so the
 * receiver never reneges on what it reported.
 *
 * @module
 */

import { MAX_SACK_BLOCKS, type SackBlock } from "../wire/stream_segment.ts";

/** What {@linkcode ReceiveBuffer.insert} did with a segment's data. */
export const Insert = {
  /** Nothing new: every byte was already received. */
  Duplicate: 0,
  /** Appended in order. */
  InOrder: 1,
  /** Appended in order and closed a gap: held ranges moved to the reader. */
  Filled: 2,
  /** Held above a gap. */
  OutOfOrder: 3,
  /** Refused: beyond the window or too many held segments. */
  Dropped: 4,
} as const;

/** One of the {@linkcode Insert} outcomes. */
export type InsertResult = typeof Insert[keyof typeof Insert];

interface Range {
  start: number;
  end: number;
  chunks: Uint8Array[];
}

const EMPTY = new Uint8Array(0);
const RECENT = 8;

/**
 * Bytes of its buffer a kept view may leave unused (and still pin): room for
 * a datagram's inner and segment headers. A view that would waste more, or
 * more than its own length, is copied: windows count bytes, and a peer that
 * sends 60,000-byte datagrams carrying 117 new bytes each must not pin 500
 * times what its window admits. So retained buffers never exceed twice the
 * bytes held, and exceed them by at most this much per piece.
 */
export const PIN_SLACK = 256;

/** `view` itself when it is most of its buffer, else a copy that pins nothing else. */
function retain(view: Uint8Array): Uint8Array {
  const waste = view.buffer.byteLength - view.length;
  return waste <= PIN_SLACK && waste <= view.length ? view : view.slice();
}

/** Reassembly and reader queue of one connection. */
export class ReceiveBuffer {
  #queue: Uint8Array[] = [];
  #qHead = 0;
  #readable = 0;
  #next: number;
  #ranges: Range[] = [];
  #heldBytes = 0;
  #heldSegments = 0;
  #maxSegments: number;
  #recent: number[] = [];

  /** Expects sequence number `next` first; holds at most `maxSegments` out-of-order pieces. */
  constructor(next: number, maxSegments: number) {
    this.#next = next;
    this.#maxSegments = maxSegments;
  }

  /** Next sequence number expected in order (RCV.NXT). */
  get next(): number {
    return this.#next;
  }

  /** Bytes in order, not yet read. */
  get readable(): number {
    return this.#readable;
  }

  /** Bytes held above a gap. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** Pieces held above a gap. */
  get heldSegments(): number {
    return this.#heldSegments;
  }

  /** Sequence number of the next byte the reader will get. */
  get consumed(): number {
    return this.#next - this.#readable;
  }

  #push(data: Uint8Array): void {
    this.#queue.push(data);
    this.#readable += data.length;
  }

  /**
   * Takes the bytes `data` at `seq`, keeping only what lies in
   * `[next, right)`.
   */
  insert(seq: number, data: Uint8Array, right: number): InsertResult {
    const end = seq + data.length;
    if (end <= this.#next) return Insert.Duplicate;
    const s = seq < this.#next ? this.#next : seq;
    const e = end > right ? right : end;
    if (e <= s) return Insert.Dropped;
    const piece = s === seq && e === end ? data : data.subarray(s - seq, e - seq);
    if (s === this.#next) {
      this.#push(retain(piece));
      this.#next = e;
      if (this.#ranges.length === 0) return Insert.InOrder;
      this.#pull();
      return Insert.Filled;
    }
    return this.#hold(s, e, piece);
  }

  /** Moves held ranges that now start at or below `next` to the reader. */
  #pull(): void {
    while (this.#ranges.length > 0) {
      const r = this.#ranges[0]!;
      if (r.start > this.#next) break;
      this.#ranges.shift();
      this.#heldBytes -= r.end - r.start;
      this.#heldSegments -= r.chunks.length;
      if (r.end <= this.#next) continue;
      let at = r.start;
      for (const c of r.chunks) {
        const cEnd = at + c.length;
        if (cEnd > this.#next) {
          this.#push(at < this.#next ? retain(c.subarray(this.#next - at)) : c);
        }
        at = cEnd;
      }
      this.#next = r.end;
    }
  }

  /** Index of the first range whose end is above `seq`. */
  #firstEndingAfter(seq: number): number {
    let lo = 0;
    let hi = this.#ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#ranges[mid]!.end > seq) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  #hold(s: number, e: number, data: Uint8Array): InsertResult {
    // The parts of [s, e) no range covers yet, each with the index of the
    // range that follows it.
    const pieces: number[] = [];
    let cur = s;
    let j = this.#firstEndingAfter(s);
    while (cur < e) {
      const r = this.#ranges[j];
      if (r === undefined || r.start >= e) {
        pieces.push(cur, e, j);
        break;
      }
      if (r.start > cur) pieces.push(cur, r.start, j);
      cur = Math.max(cur, r.end);
      j++;
    }
    if (pieces.length === 0) return Insert.Duplicate;
    const count = pieces.length / 3;
    if (this.#heldSegments + count > this.#maxSegments) return Insert.Dropped;
    // Highest first, so that splicing never moves a lower insertion point.
    for (let p = pieces.length - 3; p >= 0; p -= 3) {
      const ps = pieces[p]!;
      const pe = pieces[p + 1]!;
      const k = pieces[p + 2]!;
      const view = retain(ps === s && pe === e ? data : data.subarray(ps - s, pe - s));
      this.#place(ps, pe, view, k);
    }
    this.#heldSegments += count;
    this.#recent.unshift(s);
    if (this.#recent.length > RECENT) this.#recent.length = RECENT;
    return Insert.OutOfOrder;
  }

  #place(ps: number, pe: number, view: Uint8Array, k: number): void {
    this.#heldBytes += pe - ps;
    const prev = k > 0 ? this.#ranges[k - 1] : undefined;
    const next = this.#ranges[k];
    const joinPrev = prev !== undefined && prev.end === ps;
    const joinNext = next !== undefined && next.start === pe;
    if (joinPrev && joinNext) {
      prev.chunks.push(view);
      for (const c of next.chunks) prev.chunks.push(c);
      prev.end = next.end;
      this.#ranges.splice(k, 1);
    } else if (joinPrev) {
      prev.chunks.push(view);
      prev.end = pe;
    } else if (joinNext) {
      next.chunks.unshift(view);
      next.start = ps;
    } else {
      this.#ranges.splice(k, 0, { start: ps, end: pe, chunks: [view] });
    }
  }

  /** The next chunk in order for the reader, or undefined when none is ready. */
  read(): Uint8Array | undefined {
    if (this.#qHead === this.#queue.length) return undefined;
    const c = this.#queue[this.#qHead]!;
    this.#queue[this.#qHead++] = EMPTY;
    this.#readable -= c.length;
    if (this.#qHead === this.#queue.length) {
      this.#queue.length = 0;
      this.#qHead = 0;
    } else if (this.#qHead > 1024 && this.#qHead * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#qHead);
      this.#qHead = 0;
    }
    return c;
  }

  /** Counts the FIN's sequence number once everything before it arrived. */
  consumeFin(): void {
    this.#next++;
  }

  /**
   * Held ranges as SACK blocks (RFC 2018): the range of the most recent
   * arrival first, then other recently reported ones, then the highest.
   */
  sackBlocks(): SackBlock[] {
    const out: SackBlock[] = [];
    if (this.#ranges.length === 0) {
      this.#recent.length = 0;
      return out;
    }
    const seen = new Set<Range>();
    for (const seq of this.#recent) {
      if (seq < this.#next) continue;
      const r = this.#ranges[this.#firstEndingAfter(seq)];
      if (r === undefined || r.start > seq || seen.has(r)) continue;
      seen.add(r);
      out.push({ start: r.start, end: r.end });
      if (out.length === MAX_SACK_BLOCKS) return out;
    }
    for (let i = this.#ranges.length - 1; i >= 0 && out.length < MAX_SACK_BLOCKS; i--) {
      const r = this.#ranges[i]!;
      if (seen.has(r)) continue;
      out.push({ start: r.start, end: r.end });
    }
    return out;
  }

  /** Drops everything (reset). */
  clear(): void {
    this.#queue.length = 0;
    this.#qHead = 0;
    this.#readable = 0;
    this.#ranges.length = 0;
    this.#heldBytes = 0;
    this.#heldSegments = 0;
    this.#recent.length = 0;
  }
}
