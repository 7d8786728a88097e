/**
 * The receipts one served port-1001 stream owes, written in request order as
 * their stores finish: stores run concurrently (so the inbox's grouped fsync
 * batches them) while the stream's answers stay in order.
 *
 * @module
 */
import { type Connection, StreamError } from "../../stream/mod.ts";
import { encodeFrame, type ReceiptFrame } from "../../wire/message_frame.ts";

/** Receipts a serving stream owes, written in request order as their results arrive. */
export class ReceiptQueue {
  #conn: Connection;
  #max: number;
  #queue: Promise<ReceiptFrame>[] = [];
  #pumping = false;
  #failure: unknown = null;
  #wakers: (() => void)[] = [];
  #count: (delta: number) => void;

  /** `count` hears of every receipt queued (+1) and written or forgotten (−n). */
  constructor(conn: Connection, max: number, count: (delta: number) => void) {
    this.#conn = conn;
    this.#max = max;
    this.#count = count;
  }

  /** Queues a receipt; `p` must never reject. */
  push(p: Promise<ReceiptFrame>): void {
    this.#queue.push(p);
    this.#count(1);
    if (!this.#pumping) void this.#pump();
  }

  /** Resolves once another receipt may be queued; rejects when writing failed. */
  async room(): Promise<void> {
    while (this.#failure === null && this.#queue.length >= this.#max) await this.#wait();
    if (this.#failure !== null) throw this.#failure;
  }

  /** Resolves once every queued receipt is written; rejects when writing failed. */
  async drain(): Promise<void> {
    while (this.#failure === null && this.#queue.length > 0) await this.#wait();
    if (this.#failure !== null) throw this.#failure;
  }

  /** Forgets the receipts not yet written (the stream is gone). */
  abandon(): void {
    this.#failure ??= new StreamError("closed", "stream ended");
    // Stores still in flight finish on their own; only the count goes.
    const forgotten = this.#queue.length;
    this.#queue = [];
    this.#count(-forgotten);
    this.#signal();
  }

  #wait(): Promise<void> {
    return new Promise((resolve) => this.#wakers.push(resolve));
  }

  #signal(): void {
    const w = this.#wakers;
    this.#wakers = [];
    for (const wake of w) wake();
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#queue.length > 0 && this.#failure === null) {
        const head = this.#queue[0]!;
        const receipt = await head;
        if (this.#queue[0] !== head) break; // abandoned meanwhile
        await this.#conn.write(encodeFrame({ kind: "receipt", receipt }));
        if (this.#queue[0] !== head) break;
        this.#queue.shift();
        this.#count(-1);
        this.#signal();
      }
    } catch (e) {
      this.#failure ??= e;
      this.#signal();
    } finally {
      this.#pumping = false;
    }
  }
}
