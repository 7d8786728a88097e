/**
 * A tiny simulated network for in-process session tests: SessionManagers
 * whose `transmit` pushes datagrams into one queue, a `pump()` that delivers
 * them (optionally dropping, duplicating or rewriting the source), and a fake
 * monotonic clock that drives every timer without real sleeping.
 */

import fixtures from "./fixtures/identities.json" with { type: "json" };
import type { Endpoint } from "../src/discovery/endpoint.ts";
import { formatEndpoint } from "../src/discovery/endpoint.ts";
import { addressToBytes } from "../src/identity/address.ts";
import { decodeIdentityFile, type Identity } from "../src/identity/identity.ts";
import { signSelfDescription } from "../src/identity/self_description.ts";
import { randomBytes, type X25519KeyPair } from "../src/session/crypto.ts";
import { type Expected, InitiatorHandshake } from "../src/session/handshake.ts";
import {
  DEFAULT_TIMERS,
  type LocalNodeIdentity,
  SessionManager,
  type SessionManagerOptions,
} from "../src/session/manager.ts";
import type { PeerIdentity } from "../src/session/peer_identity.ts";
import { Session } from "../src/session/session.ts";
import { encodeHandshakePayload, type HandshakePayload } from "../src/wire/handshake_payload.ts";
import type { PortPacket } from "../src/wire/inner.ts";

/** The committed test identities, decoded and checked once. */
export const IDS: Identity[] = fixtures.map((f) => decodeIdentityFile(JSON.stringify(f)));

/** Frame type bytes, for asserting on what went over the wire. */
export const T = { INIT: 0x01, RESP: 0x02, FINAL: 0x03, COOKIE: 0x04, DATA: 0x05 } as const;

/** Options of {@linkcode localIdentity}. */
export interface LocalIdentityOptions {
  /** Hostname to claim in the self-description (none by default). */
  hostname?: string | null;
  /** Time of the self-description (ms since the epoch). */
  selfTime?: number;
  /** Noise static key to use instead of the identity's own. */
  staticKey?: X25519KeyPair;
  /** Payload fields to overwrite after signing (to forge bad payloads). */
  payload?: Partial<HandshakePayload>;
}

/** Builds what `src/daemon/node.ts` builds: the local identity and its handshake payload. */
export function localIdentity(id: Identity, options: LocalIdentityOptions = {}): LocalNodeIdentity {
  const self = signSelfDescription(id.seed, {
    stamp: id.stamp,
    hostname: options.hostname ?? null,
    ...(options.selfTime === undefined ? {} : { time: options.selfTime }),
  });
  const payload = encodeHandshakePayload({
    publicKey: id.publicKey,
    stamp: id.stamp,
    staticSerial: id.binding.serial,
    staticCreated: id.binding.created,
    bindingSignature: id.binding.signature,
    hostname: options.hostname ?? "",
    selfTime: self.time,
    selfSignature: self.signature,
    ...options.payload,
  });
  return {
    staticKey: options.staticKey ?? id.staticKey,
    payload,
    publicKey: id.publicKey,
    addressBytes: addressToBytes(id.address),
  };
}

/** One datagram on the simulated wire. */
export interface Datagram {
  /** A copy of the bytes sent. */
  bytes: Uint8Array;
  /** Source endpoint as the receiver sees it. */
  from: Endpoint;
  /** Destination endpoint the sender chose. */
  to: Endpoint;
  /** The node that sent it. */
  by?: TestNode;
  /** The send queue the sender asked for (`udp.ts`): "reply" for answers to a message 1. */
  queue?: "session" | "reply";
}

/** What the network does with one datagram: deliver, drop, deliver twice, or deliver from elsewhere. */
export type Verdict = "deliver" | "drop" | "duplicate" | { from: Endpoint };

/** A monotonic clock the test advances by hand. */
export class FakeClock {
  /** Current time (ms); starts well above 0 so "never" (0) is in the past. */
  ms = 1_000_000;
  /** The `now` option of a SessionManager. */
  readonly now = (): number => this.ms;
  /** Moves time forward. */
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** One delivered inner packet. */
export interface Delivery {
  /** The session it arrived on. */
  session: Session;
  /** The packet. */
  packet: PortPacket;
}

/** A SessionManager on the simulated network, with everything it reported. */
export class TestNode {
  /** Its identity. */
  readonly identity: Identity;
  /** The local identity the manager uses. */
  readonly local: LocalNodeIdentity;
  /** Where it sends from. */
  endpoint: Endpoint;
  /** The manager under test. */
  manager!: SessionManager;
  /** Every packet the manager delivered. */
  readonly delivered: Delivery[] = [];
  /** Peers reported up. */
  readonly up: PeerIdentity[] = [];
  /** Peers reported down. */
  readonly down: PeerIdentity[] = [];
  /** Answer of `isTrusted` (all peers). */
  trusted = true;

  constructor(identity: Identity, local: LocalNodeIdentity, endpoint: Endpoint) {
    this.identity = identity;
    this.local = local;
    this.endpoint = endpoint;
  }

  /** Hex of its Ed25519 key: the key of every per-peer map. */
  get keyHex(): string {
    return this.identity.publicKey.toHex();
  }

  /** Total of the manager's drop counters. */
  get dropTotal(): number {
    return Object.values(this.manager.drops).reduce((a, b) => a + b, 0);
  }

  /** Payloads delivered to `port`, as text. */
  texts(port?: number): string[] {
    return this.delivered
      .filter((d) => port === undefined || d.packet.dstPort === port)
      .map((d) => new TextDecoder().decode(d.packet.payload));
  }

  /** Sends a datagram to `peer`'s port (default 1001) over the current session. */
  send(peer: TestNode, text: string, dstPort = 1001): Promise<boolean> {
    return this.manager.send(peer.keyHex, {
      kind: "datagram",
      srcPort: 5000,
      dstPort,
      payload: new TextEncoder().encode(text),
    });
  }
}

/** Options of {@linkcode FakeNetwork.node}. */
export interface NodeOptions extends LocalIdentityOptions {
  /** Manager options besides the ones the network provides. */
  manager?: Partial<
    Pick<
      SessionManagerOptions,
      | "requireMac1"
      | "cookieThreshold"
      | "timers"
      | "serialFloor"
      | "untrustedPort"
      | "untrustedStream"
      | "relaysFor"
      | "onPathChanged"
      | "holdsMapping"
    >
  >;
  /** Use this local identity as is (ignores the payload options). */
  local?: LocalNodeIdentity;
  /** Endpoint (default 198.18.0.N:4000 for the N-th node). */
  endpoint?: Endpoint;
}

/** Options of {@linkcode FakeNetwork.pump}. */
export interface PumpOptions {
  /** Delivery order of queued datagrams (default first in, first out). */
  order?: "fifo" | "lifo";
  /** Most datagrams to deliver before giving up (guards against ping-pong loops). */
  max?: number;
}

/** The simulated network: a queue, a routing table and a clock. */
export class FakeNetwork {
  /** The one clock every node uses. */
  readonly clock = new FakeClock();
  /** Datagrams sent and not yet delivered. */
  readonly queue: Datagram[] = [];
  /** Every datagram ever transmitted (before the filter). */
  readonly sent: Datagram[] = [];
  /** Every datagram the filter dropped. */
  readonly dropped: Datagram[] = [];
  /** Decides the fate of each datagram at delivery time; delivers all when unset. */
  filter: ((d: Datagram) => Verdict) | undefined;
  #routes = new Map<string, TestNode>();
  #count = 0;

  /** Creates a node for `identity` and attaches it at its endpoint. */
  node(identity: Identity, options: NodeOptions = {}): TestNode {
    this.#count++;
    const endpoint = options.endpoint ?? { hostname: `198.18.0.${this.#count}`, port: 4000 };
    const local = options.local ?? localIdentity(identity, options);
    return this.attach(new TestNode(identity, local, endpoint), options.manager);
  }

  /** (Re)creates `node`'s manager, wired to this network. */
  attach(node: TestNode, options: NodeOptions["manager"] = {}): TestNode {
    node.manager = new SessionManager({
      local: node.local,
      transmit: (bytes, to, queue) => {
        const d: Datagram = {
          bytes: Uint8Array.from(bytes),
          from: node.endpoint,
          to,
          by: node,
          queue: queue ?? "session",
        };
        this.sent.push(d);
        this.queue.push(d);
      },
      isTrusted: () => node.trusted,
      deliver: (session, packet) => {
        node.delivered.push({
          session,
          packet: { ...packet, payload: Uint8Array.from(packet.payload) },
        });
      },
      onPeerUp: (p) => node.up.push(p),
      onPeerDown: (p) => node.down.push(p),
      now: this.clock.now,
      ...options,
    });
    this.route(node.endpoint, node);
    return node;
  }

  /** Routes datagrams addressed to `endpoint` to `node` (or nowhere). */
  route(endpoint: Endpoint, node: TestNode | undefined): void {
    if (node === undefined) this.#routes.delete(formatEndpoint(endpoint));
    else this.#routes.set(formatEndpoint(endpoint), node);
  }

  /** The node datagrams to `endpoint` reach, if any. */
  at(endpoint: Endpoint): TestNode | undefined {
    return this.#routes.get(formatEndpoint(endpoint));
  }

  /** Datagrams sent by `node` (optionally of one frame type), in order. */
  sentBy(node: TestNode, type?: number): Datagram[] {
    return this.sent.filter((d) => d.by === node && (type === undefined || d.bytes[0] === type));
  }

  /** Datagrams of one frame type, in order. */
  ofType(type: number): Datagram[] {
    return this.sent.filter((d) => d.bytes[0] === type);
  }

  /** Hands one datagram to the node at its destination, as if it arrived from `from`. */
  async inject(bytes: Uint8Array, from: Endpoint, to: TestNode): Promise<void> {
    await to.manager.handle(Uint8Array.from(bytes), from);
  }

  /**
   * Delivers queued datagrams (through the filter) until the network is
   * quiet, letting pending asynchronous work (WebCrypto) finish in between.
   * Returns how many were delivered.
   */
  async pump(options: PumpOptions = {}): Promise<number> {
    const max = options.max ?? 1000;
    let delivered = 0;
    for (;;) {
      if (this.queue.length === 0) {
        await settle();
        if (this.queue.length === 0) return delivered;
      }
      const d = options.order === "lifo" ? this.queue.pop()! : this.queue.shift()!;
      const verdict = this.filter?.(d) ?? "deliver";
      if (verdict === "drop") {
        this.dropped.push(d);
        continue;
      }
      const target = this.at(d.to);
      if (target === undefined) continue;
      const from = typeof verdict === "object" ? verdict.from : d.from;
      await target.manager.handle(Uint8Array.from(d.bytes), from);
      if (verdict === "duplicate") await target.manager.handle(Uint8Array.from(d.bytes), from);
      if (++delivered >= max) throw new Error(`pump() delivered ${max} datagrams without settling`);
    }
  }

  /** Removes and returns every queued datagram without delivering it. */
  take(): Datagram[] {
    return this.queue.splice(0);
  }

  /** Waits (real time, briefly) until `cond` holds; for work a manager starts without awaiting. */
  async waitFor(cond: () => boolean, what: string): Promise<void> {
    const deadline = performance.now() + 2000;
    while (!cond()) {
      if (performance.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 0));
    }
  }

  /** Advances the clock, then runs every node's timers. */
  async advance(ms: number, ...nodes: TestNode[]): Promise<void> {
    this.clock.advance(ms);
    for (const n of nodes) await n.manager.tick();
  }

  /**
   * Starts `a.manager.connect()` to `b` and waits until message 1 is on the
   * wire (or connect() already settled); nothing is delivered yet.
   */
  async begin(
    a: TestNode,
    b: TestNode | Endpoint,
    expected: Expected = {},
    options: { fresh?: boolean } = {},
  ): Promise<Pending> {
    const to = b instanceof TestNode ? b.endpoint : b;
    const before = this.sent.length;
    const pending: Pending = {
      result: a.manager.connect(to, expected, 5000, options),
      state: "pending",
    };
    pending.result.then(() => pending.state = "resolved", () => pending.state = "rejected");
    await this.waitFor(() => pending.state !== "pending" || this.sent.length > before, "message 1");
    return pending;
  }

  /**
   * Lets a connect() that can no longer succeed give up (rekeyAttemptMs on
   * the fake clock) and returns how it ended: the identity or the error.
   */
  async giveUp(pending: Pending, ...nodes: TestNode[]): Promise<PeerIdentity | unknown> {
    await this.advance(DEFAULT_TIMERS.rekeyAttemptMs, ...nodes);
    return await pending.result.catch((e: unknown) => e);
  }

  /** `a.manager.connect()` to `b`, pumping until quiet; returns the connect() result. */
  async connect(
    a: TestNode,
    b: TestNode | Endpoint,
    expected: Expected = {},
  ): Promise<PeerIdentity> {
    const pending = await this.begin(a, b, expected);
    await this.pump();
    return await pending.result;
  }
}

/** A connect() under way. */
export interface Pending {
  /** What connect() returned. */
  result: Promise<PeerIdentity>;
  /** Whether it settled yet. */
  state: "pending" | "resolved" | "rejected";
}

/** Lets promise chains and WebCrypto callbacks that are already under way finish. */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setTimeout(r, 0));
}

/** Decodes the u32 at `offset` of a frame. */
export function u32(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(offset);
}

/** Two nodes with a session (a initiated), both trusting each other. */
export async function pair(
  options: { a?: NodeOptions; b?: NodeOptions; ids?: [number, number] } = {},
): Promise<{ net: FakeNetwork; a: TestNode; b: TestNode }> {
  const net = new FakeNetwork();
  const [ia, ib] = options.ids ?? [0, 1];
  const a = net.node(IDS[ia]!, options.a);
  const b = net.node(IDS[ib]!, options.b);
  await net.connect(a, b);
  await net.pump();
  return { net, a, b };
}

/** A fresh handshake message 1 from `local`'s identity (new ephemeral key), as bytes. */
export async function freshMessage1(
  local: LocalNodeIdentity,
  index: number,
  mac1Key?: Uint8Array,
): Promise<Uint8Array> {
  const h = await InitiatorHandshake.start({
    local,
    localIndex: index,
    endpoint: { hostname: "198.18.0.250", port: 1 },
    expected: {},
    mac1Key,
    now: 0,
  });
  return await h.frame();
}

/** The identity a session would prove for `id` (for services driven without a session). */
export function peerIdentityOf(id: Identity): PeerIdentity {
  return {
    publicKey: id.publicKey,
    keyHex: id.publicKey.toHex(),
    address: id.address,
    addressBytes: addressToBytes(id.address),
    fingerprint: id.fingerprint,
    hostname: "",
    staticSerial: 1,
    staticKey: new Uint8Array(32),
  };
}

/**
 * Two ends of one established session (no handshake): `a` initiated it, and
 * each end's send key is the other's receive key.
 */
export function sessionPair(): [Session, Session] {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  const common = {
    peer: {} as PeerIdentity,
    endpoint: { hostname: "127.0.0.1", port: 1 },
    handshakeHash: randomBytes(32),
    now: 0,
  };
  return [
    Session.create({
      ...common,
      localIndex: 1,
      remoteIndex: 2,
      initiator: true,
      sendKey: k1,
      receiveKey: k2,
    }),
    Session.create({
      ...common,
      localIndex: 2,
      remoteIndex: 1,
      initiator: false,
      sendKey: k2,
      receiveKey: k1,
    }),
  ];
}
