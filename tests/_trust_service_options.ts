/**
 * Rebuilds a harness node's trust service (tests/_service_helpers.ts) with
 * extra options: a monotonic clock the test moves, a fake `reconnect`, a
 * flow store wrapped to hold writes. Same wiring as `ServiceNode.start`.
 */
import { PORT_TRUST } from "../src/constants.ts";
import { TrustService, type TrustServiceOptions } from "../src/services/trust.ts";
import type { FlowBook } from "../src/services/trust_types.ts";
import type { ServiceNet, ServiceNode } from "./_service_helpers.ts";

/** A monotonic clock the test sets by hand (ms). */
export class Monotonic {
  /** Current reading. */
  ms = 1_000_000;
  /** The `monotonic` option of the service. */
  readonly now = (): number => this.ms;
  /** Moves time forward. */
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** Replaces `node.trustService` with one built from the harness wiring plus `extra`. */
export function rebuild(
  net: ServiceNet,
  node: ServiceNode,
  extra: Partial<TrustServiceOptions>,
): TrustService {
  node.trustService = new TrustService({
    seed: node.id.seed,
    publicKey: node.id.publicKey,
    stamp: node.id.stamp,
    hostname: null,
    trust: node.trust,
    flow: node.flow,
    send: (key, payload) => net.transmit(node, key, PORT_TRUST, payload, false),
    binding: (key) => net.binding(node, key),
    autoApprove: (peer) => node.autoApprove.has(peer.keyHex),
    publish: (type, data) => node.events.push({ type, data }),
    onUntrusted: (key) => {
      node.untrusted.push(key);
      net.log.push({ kind: "untrusted", node, key });
    },
    now: net.clock.now,
    ...extra,
  });
  return node.trustService;
}

/**
 * A flow store whose `putPending` for chosen keys waits until `open()`:
 * work on those keys stalls mid-way, deterministically, while the test
 * checks what still gets through.
 */
export class GatedFlow implements FlowBook {
  #inner: FlowBook;
  #held: Set<string>;
  #gate = Promise.withResolvers<void>();
  #reached = Promise.withResolvers<void>();
  #want = 1;
  /** Pending writes now waiting at the gate. */
  waiting = 0;

  /** Wraps `inner`, holding pending writes for `keys`. */
  constructor(inner: FlowBook, keys: Iterable<string>) {
    this.#inner = inner;
    this.#held = new Set(keys);
  }

  /** Resolves once `n` writes wait at the gate at the same time. */
  reached(n: number): Promise<void> {
    this.#want = n;
    if (this.waiting >= n) this.#reached.resolve();
    return this.#reached.promise;
  }

  /** Lets every held write (and all later ones) through. */
  open(): void {
    this.#gate.resolve();
  }

  /** Requests waiting for a decision. */
  get pending() {
    return this.#inner.pending;
  }
  /** Answers not yet delivered. */
  get outbox() {
    return this.#inner.outbox;
  }
  /** The pending request from a key. */
  pendingFrom(key: string) {
    return this.#inner.pendingFrom(key);
  }
  /** Adds or replaces a pending request, after the gate for held keys. */
  async putPending(p: Parameters<FlowBook["putPending"]>[0]) {
    if (this.#held.has(p.public_key)) {
      this.waiting++;
      if (this.waiting >= this.#want) this.#reached.resolve();
      await this.#gate.promise;
      this.waiting--;
    }
    return await this.#inner.putPending(p);
  }
  /** Removes a pending request. */
  removePending(key: string) {
    return this.#inner.removePending(key);
  }
  /** Our request to a key. */
  outgoingTo(key: string) {
    return this.#inner.outgoingTo(key);
  }
  /** Adds or replaces our request to a key. */
  putOutgoing(o: Parameters<FlowBook["putOutgoing"]>[0]) {
    return this.#inner.putOutgoing(o);
  }
  /** Forgets our request to a key. */
  removeOutgoing(key: string) {
    return this.#inner.removeOutgoing(key);
  }
  /** Queues an answer. */
  putOutbox(item: Parameters<FlowBook["putOutbox"]>[0]) {
    return this.#inner.putOutbox(item);
  }
  /** Removes an answer. */
  removeOutbox(item: Parameters<FlowBook["removeOutbox"]>[0]) {
    return this.#inner.removeOutbox(item);
  }
  /** Until when a key is suppressed. */
  suppressedUntil(key: string, now: number) {
    return this.#inner.suppressedUntil(key, now);
  }
  /** Suppresses a key. */
  suppress(key: string, until: number) {
    return this.#inner.suppress(key, until);
  }
  /** Records an offline message's replay key. */
  rememberOffline(replayKey: string, expiresAt: number, now: number) {
    return this.#inner.rememberOffline(replayKey, expiresAt, now);
  }
}
