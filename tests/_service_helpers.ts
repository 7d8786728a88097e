/**
 * In-process harness for the trust service (port 444): nodes for the fixture
 * identities, each with the real TrustStore and TrustFlowStore in a
 * temporary home (so persistence is exercised), wired to each other through
 * fake `send` functions instead of Noise sessions. A "session" is a pair of
 * nodes with a fixed 32-byte binding, the same on both sides. Every datagram
 * passes a filter (drop, duplicate, hold, delay, alter), is recorded, and is
 * delivered asynchronously, as UDP would, to the peer service's
 * `onDatagram(packet, { peer, binding, reply })`; `reply` routes back over the
 * same pair. The wall clock is injectable.
 */

import { PORT_TRUST } from "../src/constants.ts";
import { addressToBytes } from "../src/identity/address.ts";
import type { Identity } from "../src/identity/identity.ts";
import { TrustFlowStore } from "../src/daemon/trust_flow_store.ts";
import { TrustStore } from "../src/daemon/trust_store.ts";
import { TrustService } from "../src/services/trust.ts";
import { randomBytes, sha256 } from "../src/session/crypto.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import type { PortPacket } from "../src/wire/inner.ts";
import {
  type SignedTrustMessage,
  signTrustMessage,
  type TrustMessage,
} from "../src/wire/trust_message.ts";
import {
  decodeTrustPacket,
  encodeTrustPacket,
  type TrustPacket,
} from "../src/wire/trust_packet.ts";
import { IDS } from "./_session_helpers.ts";

/** Where simulated sessions' packets come from (the services here never look). */
const SIMULATED_ENDPOINT = { hostname: "198.18.0.1", port: 4000 };

export { IDS };

/** The PeerIdentity a handshake with `id` would yield. */
export function peerOf(id: Identity, hostname = ""): PeerIdentity {
  return {
    publicKey: Uint8Array.from(id.publicKey),
    keyHex: id.publicKey.toHex(),
    address: id.address,
    addressBytes: addressToBytes(id.address),
    fingerprint: id.fingerprint,
    hostname,
    staticSerial: id.binding.serial,
    staticKey: Uint8Array.from(id.staticKey.publicKey),
  };
}

/** A wall clock the test sets by hand (ms since the epoch). */
export class WallClock {
  /** Current time; 2026-01-01T00:00:00Z. */
  ms = Date.UTC(2026, 0, 1);
  /** The `now` option of the services. */
  readonly now = (): number => this.ms;
  /** Moves time forward. */
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** One datagram between two nodes. */
export interface Wire {
  /** Order in which it went out (index into `ServiceNet.log`). */
  seq: number;
  /** Sender. */
  from: ServiceNode;
  /** Receiver. */
  to: ServiceNode;
  /** Virtual port (both ends). */
  port: number;
  /** The bytes as sent. */
  payload: Uint8Array;
  /** The binding of the pair when it went out. */
  binding: Uint8Array;
  /** Whether it was sent through `ctx.reply`. */
  reply: boolean;
}

/** What the network does with one datagram. */
export type Verdict =
  | "deliver"
  | "drop"
  | "duplicate"
  | "hold"
  | { delay: number }
  | { payload: Uint8Array };

/** An entry of the ordered log: a datagram that went out, or an onUntrusted call. */
export type LogEntry =
  | { kind: "sent"; wire: Wire }
  | { kind: "untrusted"; node: ServiceNode; key: string };

/** One node: its identity, state in a temp home, its trust service, and what it reported. */
export class ServiceNode {
  /** Its identity. */
  readonly id: Identity;
  /** How peers see it. */
  readonly peer: PeerIdentity;
  /** Its temporary home. */
  readonly home: string;
  /** The trust store (real, in `home`). */
  trust!: TrustStore;
  /** The trust-flow store (real, in `home`). */
  flow!: TrustFlowStore;
  /** Port 444. */
  trustService!: TrustService;
  /** Events published by the trust service. */
  readonly events: { type: string; data: Record<string, unknown> }[] = [];
  /** Keys passed to onUntrusted, in order. */
  readonly untrusted: string[] = [];
  /** Keys whose requests are approved at once. */
  readonly autoApprove = new Set<string>();
  #net: ServiceNet;

  constructor(net: ServiceNet, id: Identity, home: string) {
    this.#net = net;
    this.id = id;
    this.peer = peerOf(id);
    this.home = home;
  }

  /** Hex of its Ed25519 key. */
  get keyHex(): string {
    return this.id.publicKey.toHex();
  }

  /** Events of one type. */
  eventsOf(type: string): { type: string; data: Record<string, unknown> }[] {
    return this.events.filter((e) => e.type === type);
  }

  /** (Re)loads the stores from disk and builds a fresh service: a daemon restart. */
  async start(): Promise<void> {
    const net = this.#net;
    this.trust = await TrustStore.load(this.home);
    this.flow = await TrustFlowStore.load(this.home);
    this.trustService = new TrustService({
      seed: this.id.seed,
      publicKey: this.id.publicKey,
      stamp: this.id.stamp,
      hostname: null,
      trust: this.trust,
      flow: this.flow,
      send: (key, payload) => net.transmit(this, key, PORT_TRUST, payload, false),
      binding: (key) => net.binding(this, key),
      autoApprove: (peer) => this.autoApprove.has(peer.keyHex),
      publish: (type, data) => this.events.push({ type, data }),
      onUntrusted: (key) => {
        this.untrusted.push(key);
        net.log.push({ kind: "untrusted", node: this, key });
      },
      now: net.clock.now,
    });
  }
}

function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

/** Builds a full inner packet around a payload. */
export function portPacket(from: PeerIdentity, port: number, payload: Uint8Array): PortPacket {
  return {
    kind: "datagram",
    srcAddress: from.addressBytes,
    dstAddress: new Uint8Array(6),
    srcPort: port,
    dstPort: port,
    payload,
  };
}

/** The simulated network of service nodes. */
export class ServiceNet {
  /** The wall clock every service uses. */
  readonly clock = new WallClock();
  /** Datagrams that went out, and onUntrusted calls, in order. */
  readonly log: LogEntry[] = [];
  /** Datagrams held by a "hold" verdict, in order. */
  readonly held: Wire[] = [];
  /** Errors thrown (rejections) by onDatagram; a test expects none. */
  readonly errors: unknown[] = [];
  /** Decides each datagram's fate as it goes out; delivers everything when unset. */
  filter: ((w: Wire) => Verdict) | undefined;
  /** How long (ms) sending a datagram takes before it has gone out; 0 when unset. */
  latency: ((w: Omit<Wire, "seq">) => number) | undefined;
  /** Nodes in the order made. */
  readonly nodes: ServiceNode[] = [];
  readonly #nodes = new Map<string, ServiceNode>();
  readonly #links = new Map<string, Uint8Array>();
  readonly #inflight = new Set<Promise<void>>();

  /** Starts a node for `id` in a fresh temp home. */
  async node(id: Identity): Promise<ServiceNode> {
    const home = await Deno.makeTempDir({ prefix: "pilot-svc-" });
    const n = new ServiceNode(this, id, home);
    await n.start();
    this.#nodes.set(n.keyHex, n);
    this.nodes.push(n);
    return n;
  }

  /** Opens (or replaces) the session of a pair with a new random binding; returns it. */
  connect(a: ServiceNode, b: ServiceNode): Uint8Array {
    const binding = randomBytes(32);
    this.#links.set(pairKey(a.keyHex, b.keyHex), binding);
    return binding;
  }

  /** Closes the session of a pair. */
  disconnect(a: ServiceNode, b: ServiceNode): void {
    this.#links.delete(pairKey(a.keyHex, b.keyHex));
  }

  /** The binding of the session between `a` and the node of `key`, if any. */
  binding(a: ServiceNode, key: string): Uint8Array | undefined {
    return this.#links.get(pairKey(a.keyHex, key));
  }

  /** Datagrams that went out, optionally only those on `port`. */
  sent(port?: number): Wire[] {
    return this.log.flatMap((e) =>
      e.kind === "sent" && (port === undefined || e.wire.port === port) ? [e.wire] : []
    );
  }

  /** Port-444 datagrams that went out, decoded. */
  trustPackets(): { wire: Wire; packet: TrustPacket }[] {
    return this.sent(PORT_TRUST).map((wire) => ({ wire, packet: decodeTrustPacket(wire.payload) }));
  }

  /** What a service's `send` (or `reply`) does: false when the pair has no session. */
  async transmit(
    from: ServiceNode,
    toKey: string,
    port: number,
    payload: Uint8Array,
    reply: boolean,
  ): Promise<boolean> {
    const to = this.#nodes.get(toKey);
    let binding = this.binding(from, toKey);
    if (to === undefined || binding === undefined) return false;
    const draft = { from, to, port, payload: Uint8Array.from(payload), binding, reply };
    const latency = this.latency?.(draft) ?? 0;
    if (latency > 0) {
      await new Promise((r) => setTimeout(r, latency));
      binding = this.binding(from, toKey);
      if (binding === undefined) return false;
    }
    const wire: Wire = { ...draft, binding, seq: this.log.length };
    this.log.push({ kind: "sent", wire });
    const verdict = this.filter?.(wire) ?? "deliver";
    if (verdict === "drop") return true;
    if (verdict === "hold") {
      this.held.push(wire);
      return true;
    }
    if (typeof verdict === "object" && "payload" in verdict) {
      this.#deliver(wire, verdict.payload, 0);
      return true;
    }
    this.#deliver(wire, wire.payload, typeof verdict === "object" ? verdict.delay : 0);
    if (verdict === "duplicate") this.#deliver(wire, wire.payload, 0);
    return true;
  }

  /** Delivers held datagrams (in the order given, default as held) and clears the hold. */
  release(order: (ws: Wire[]) => Wire[] = (ws) => ws): void {
    const ws = order(this.held.splice(0));
    for (const w of ws) this.#deliver(w, w.payload, 0);
  }

  #deliver(wire: Wire, payload: Uint8Array, delay: number): void {
    const service = wire.to.trustService;
    const ctx = {
      peer: wire.from.peer,
      endpoint: SIMULATED_ENDPOINT,
      binding: wire.binding,
      reply: async (bytes: Uint8Array) => {
        await this.transmit(wire.to, wire.from.keyHex, wire.port, bytes, true);
      },
    };
    const run = (async () => {
      await new Promise((r) => setTimeout(r, delay));
      await service.onDatagram(
        portPacket(wire.from.peer, wire.port, Uint8Array.from(payload)),
        ctx,
      );
    })().catch((e) => {
      this.errors.push(e);
    });
    this.#inflight.add(run);
    run.finally(() => this.#inflight.delete(run));
  }

  /**
   * Hands `payload` straight to a node's trust service as if it came over a
   * session of `peer` with `binding`; resolves with what the service replied.
   */
  async inject(
    to: ServiceNode,
    options: { peer: PeerIdentity; binding: Uint8Array; payload: Uint8Array },
  ): Promise<Uint8Array[]> {
    const replies: Uint8Array[] = [];
    await to.trustService.onDatagram(portPacket(options.peer, PORT_TRUST, options.payload), {
      peer: options.peer,
      endpoint: SIMULATED_ENDPOINT,
      binding: options.binding,
      reply: (bytes) => {
        replies.push(Uint8Array.from(bytes));
        return Promise.resolve();
      },
    });
    return replies;
  }

  /** Waits (real time) until `cond` holds. */
  async waitFor(cond: () => boolean, what: string, ms = 3_000): Promise<void> {
    const deadline = performance.now() + ms;
    while (!cond()) {
      if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /** Waits until no delivery has been in flight for `quietMs`. */
  async idle(quietMs = 30): Promise<void> {
    let quietSince = performance.now();
    const deadline = quietSince + 5_000;
    for (;;) {
      if (this.#inflight.size > 0) {
        await Promise.allSettled([...this.#inflight]);
        quietSince = performance.now();
      }
      if (performance.now() - quietSince >= quietMs) return;
      if (performance.now() > deadline) throw new Error("Network never went idle");
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Waits for quiet, then removes every temp home. */
  async close(): Promise<void> {
    this.filter = undefined;
    this.latency = undefined;
    this.release();
    await this.idle();
    for (const n of this.#nodes.values()) await Deno.remove(n.home, { recursive: true });
  }

  /** `await using net = ...` closes it. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A network with nodes for the first `n` fixture identities, every pair connected. */
export async function network(n = 2): Promise<ServiceNet> {
  const net = new ServiceNet();
  for (let i = 0; i < n; i++) await net.node(IDS[i]!);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) net.connect(net.nodes[i]!, net.nodes[j]!);
  }
  return net;
}

/**
 * `a` asks `b` for trust and `b` approves; returns the hash (hex) of the
 * accept that made it.
 */
export async function establishTrust(net: ServiceNet, a: ServiceNode, b: ServiceNode) {
  const asked = await a.trustService.request(b.peer, "test", 2_000);
  if (asked.status !== "pending") throw new Error(`Request ended ${asked.status}`);
  const approved = await b.trustService.approve(a.keyHex, 2_000);
  if (!approved.delivered) throw new Error("The accept was not delivered");
  const accepts = net.trustPackets().filter((p) =>
    p.packet.op === "message" && p.wire.from === b && p.packet.message[1] === 2
  );
  const last = accepts.at(-1)?.packet;
  if (last?.op !== "message") throw new Error("No accept went out");
  return await sha256Hex(last.message);
}

/** Fields of a trust message to craft; defaults make a bound request. */
export type Craft = Partial<Omit<TrustMessage, "fromKey">> & {
  /** Recipient (its key becomes `toKey` unless given). */
  to?: ServiceNode;
};

/** Signs a trust message as `signer` (a bound request to `to` by default). */
export function craft(signer: Identity, fields: Craft): Promise<SignedTrustMessage> {
  const { to, ...rest } = fields;
  const kind = rest.kind ?? "request";
  return signTrustMessage(signer.seed, {
    kind,
    fromStamp: signer.stamp,
    toKey: to?.id.publicKey ?? new Uint8Array(32),
    nonce: randomBytes(16),
    created: Date.UTC(2026, 0, 1),
    expires: 0,
    binding: new Uint8Array(32),
    ...(kind === "request" ? { reason: "", hostname: "" } : {}),
    ...rest,
  } as Omit<TrustMessage, "fromKey">);
}

/** Wraps trust message bytes in a port-444 datagram (new request id unless given). */
export function messagePacket(message: Uint8Array, requestId = randomBytes(8)): Uint8Array {
  return encodeTrustPacket({ op: "message", requestId, message });
}

/** Decodes the single acknowledgement among `replies`. */
export function ackOf(replies: Uint8Array[]): { status: string; detail: string } {
  if (replies.length !== 1) throw new Error(`Expected one reply, got ${replies.length}`);
  const p = decodeTrustPacket(replies[0]!);
  if (p.op !== "ack") throw new Error(`Expected an ack, got ${p.op}`);
  return { status: p.status, detail: p.detail };
}

/** SHA-256 of bytes, hex. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return (await sha256(bytes)).toHex();
}
