/**
 * A node's link to its rendezvous nodes (issue 9; design:
 * `docs/design/rendezvous.md`): a session with each (pinned by key when the
 * configuration gives one), the sans-IO client of
 * `discovery/rendezvous_client.ts` over port 445 in those sessions —
 * publishing this node's signed record and keeping it fresh — and lookups
 * for names no trusted binding or configured peer knows.
 *
 * @module
 */
import { PORT_RENDEZVOUS } from "../../constants.ts";
import { DecodeError } from "../../bytes.ts";
import { RateLimiter } from "../../session/rate_limit.ts";
import {
  type Endpoint,
  RELAY_PORT,
  relayEndpoint,
  relayPathOf,
  resolveEndpoint,
} from "../../discovery/endpoint.ts";
import {
  type LookupOptions,
  type LookupResult,
  RendezvousClient,
  type SelfPresence,
} from "../../discovery/rendezvous_client.ts";
import type { PeerQuery } from "../../discovery/resolver.ts";
import { PilotError } from "../../errors.ts";
import type { Address } from "../../identity/address.ts";
import type { Identity } from "../../identity/identity.ts";
import type { PortService } from "../../services/port_service.ts";
import type { IpEndpoint } from "../../wire/ip_endpoint.ts";
import type { RecordEndpoint } from "../../wire/presence_record.ts";
import {
  decodeRendezvousMessage,
  encodeRendezvousMessage,
  MAX_RELAY_FRAME,
  RENDEZVOUS_MESSAGE_TYPES,
  type RendezvousMessage,
} from "../../wire/rendezvous_message.ts";
import type { RendezvousAddress } from "../config.ts";
import type { NodeContext } from "../context.ts";
import type { Discovered } from "../reach.ts";

/** How often a rendezvous hears from this node at least, holding the session and NAT mapping (ms). */
export const RENDEZVOUS_KEEPALIVE_MS = 25_000;
/** Punch notices taken from one rendezvous (an honest one sends one per peer punching). */
const PUNCH_NOTICE_RATE = { burst: 16, perSecond: 8 } as const;
/** How long the list of local endpoints is reused (ms). */
const LOCALS_TTL_MS = 5_000;
/** How long a session with a rendezvous may take to come up (ms). */
const CONNECT_TIMEOUT_MS = 10_000;
/** Relayed frames and punch notices are the path layer's, not the client's. */
const RELAYED_TYPE = RENDEZVOUS_MESSAGE_TYPES.relayed;
const PUNCH_FROM_TYPE = RENDEZVOUS_MESSAGE_TYPES.punch_from;
const MAIL_TYPE = RENDEZVOUS_MESSAGE_TYPES.mail;

/** How this node is mapped on its way out, as its rendezvous see it. */
export type NatType = "none" | "endpoint-independent" | "endpoint-dependent" | "unknown";

/** What the rendezvous see of this node (`pilot info`). */
export interface Reachability {
  /** The endpoint the first rendezvous that answered observes, or null. */
  observed: IpEndpoint | null;
  /** The NAT type that follows from what they observe. */
  nat: NatType;
  /** Each configured rendezvous: its address once connected, whether our record is there, what it observes, its last refusal ("" when none). */
  rendezvous: {
    address: Address | null;
    published: boolean;
    observed: IpEndpoint | null;
    error: string;
  }[];
  /** Relayed frames and notices from its rendezvous not taken, by reason (every reason from 0). */
  dropped: Record<string, number>;
}

/** The node's side of its configured rendezvous nodes. */
export class RendezvousLink {
  #ctx: NodeContext;
  #addresses: RendezvousAddress[];
  #keys: (string | null)[];
  /** Each rendezvous's address, once a session proved it: relay paths name it. */
  #vias: (Address | null)[];
  #connecting = new Set<number>();
  #client: RendezvousClient;
  #self: () => SelfPresence;
  #lastObserve: number[];
  /** The endpoints and mailboxes the last published record carries, as text: a change republishes. */
  #published = "";
  #onRelayed: (frame: Uint8Array, from: Endpoint) => void;
  #onPunchFrom: (from: Address, endpoint: IpEndpoint) => void = () => {};
  #onMail: () => void = () => {};
  #listen: () => Endpoint;
  #localsCache: { at: number; value: RecordEndpoint[] } | null = null;
  /** Relayed frames not sent or not taken, by reason. */
  readonly relayDropped = { no_rendezvous: 0, too_large: 0, malformed: 0, punch_rate: 0 };
  /** Punch notices taken per rendezvous, before the path layer looks their peer up. */
  #punchNotices = new RateLimiter({
    ...PUNCH_NOTICE_RATE,
    maxKeys: 64,
    now: () => performance.now(),
  });

  /** A link to `addresses`, publishing what `self()` says (its endpoints once public). */
  constructor(
    ctx: NodeContext,
    addresses: RendezvousAddress[],
    identity: Identity,
    options: {
      hostname: string | null;
      visibility: "private" | "public";
      listen: () => Endpoint;
      /** Takes a session frame a rendezvous relayed, from the peer at the relay path `from`. */
      onRelayed(frame: Uint8Array, from: Endpoint): void;
    },
  ) {
    this.#ctx = ctx;
    this.#addresses = addresses;
    this.#keys = addresses.map((a) => a.key?.toHex() ?? null);
    this.#vias = addresses.map(() => null);
    this.#onRelayed = options.onRelayed;
    this.#listen = options.listen;
    this.#lastObserve = addresses.map(() => -Infinity);
    this.#client = new RendezvousClient({
      count: addresses.length,
      now: () => Date.now(),
      send: (index, payload) => {
        const key = this.#keys[index];
        if (key === null || key === undefined) return;
        void ctx.sessions.send(key, {
          kind: "datagram",
          srcPort: PORT_RENDEZVOUS,
          dstPort: PORT_RENDEZVOUS,
          payload,
        });
      },
    });
    this.#self = () => ({
      identity,
      hostname: options.hostname ?? "",
      visibility: options.visibility,
      endpoints: options.visibility === "public" ? this.candidates() : [],
      // The rendezvous whose key a session proved: our mailboxes.
      mailboxes: this.#vias.filter((a) => a !== null),
    });
  }

  /** Whether `keyHex` is one of this node's rendezvous (their datagrams may reach port 445). */
  isRendezvous(keyHex: string): boolean {
    return this.#keys.includes(keyHex);
  }

  /** The key of this node's rendezvous at `address`, once a session proved it; null otherwise. */
  rendezvousAt(address: Address): string | null {
    const i = this.#vias.indexOf(address);
    return i < 0 ? null : this.#keys[i] ?? null;
  }

  /** The keys of this node's rendezvous whose sessions proved their address. */
  connectedRendezvous(): string[] {
    return this.#keys.filter((k, i): k is string => k !== null && this.#vias[i] !== null);
  }

  /** Whether `e` is where one of this node's rendezvous sends from (its live session's endpoint). */
  isRendezvousEndpoint(e: Endpoint): boolean {
    return this.#keys.some((key) => {
      if (key === null) return false;
      const at = this.#ctx.reach.endpointOf(key);
      return at !== null && at.port === e.port && at.hostname === e.hostname;
    });
  }

  /** Port 445 on this node: answers and notices from its rendezvous, nothing from anyone else. */
  portService(): PortService {
    return {
      port: PORT_RENDEZVOUS,
      name: "rendezvous-client",
      onDatagram: (packet, dctx) => {
        const index = this.#keys.indexOf(dctx.peer.keyHex);
        if (index < 0) return Promise.resolve();
        const type = packet.payload[0];
        if (type === MAIL_TYPE) {
          // Its content does not matter: the mailbox itself is asked, over the session.
          this.#onMail();
          return Promise.resolve();
        }
        if (type !== RELAYED_TYPE && type !== PUNCH_FROM_TYPE) {
          this.#client.receive(index, packet.payload);
          return Promise.resolve();
        }
        let m: RendezvousMessage;
        try {
          m = decodeRendezvousMessage(packet.payload);
        } catch (e) {
          if (!(e instanceof DecodeError)) throw e;
          this.relayDropped.malformed++;
          return Promise.resolve();
        }
        if (m.type === "relayed") {
          this.#onRelayed(m.frame, relayEndpoint({ via: dctx.peer.address, peer: m.from }));
        } else if (m.type === "punch_from") {
          // Each notice costs a look through the session table: a rendezvous
          // sending a flood of them is shed here first.
          if (this.#punchNotices.allow(dctx.peer.keyHex)) this.#onPunchFrom(m.from, m.endpoint);
          else this.relayDropped.punch_rate++;
        }
        return Promise.resolve();
      },
    };
  }

  /**
   * Where punch notices go: a rendezvous says the node at `from` wants a
   * direct path and is seen at `endpoint` (the path layer probes it only for
   * a trusted peer).
   */
  onPunchFrom(handler: (from: Address, endpoint: IpEndpoint) => void): void {
    this.#onPunchFrom = handler;
  }

  /**
   * Where mail notices go: one of this node's rendezvous holds a new item
   * for it, or may (a session with it came up).
   */
  onMail(handler: () => void): void {
    this.#onMail = handler;
  }

  /**
   * Asks the rendezvous of the relay path `via` to tell `to` where it sees
   * us now, so that it probes our freshest endpoint (ignored for a
   * rendezvous we have no session with).
   */
  requestPunch(via: Address, to: Address): void {
    const index = this.#vias.indexOf(via);
    if (index >= 0) this.#client.punch(index, to, 5_000);
  }

  /**
   * Sends one session frame along a relay path: inside our session with the
   * rendezvous it names, which forwards it to the peer. Frames for a
   * rendezvous we have no session with are dropped (and counted): the
   * session layer retransmits what matters.
   */
  relay(to: Endpoint, frame: Uint8Array): void {
    const path = relayPathOf(to);
    const index = path === null ? -1 : this.#vias.indexOf(path.via);
    const key = index < 0 ? null : this.#keys[index];
    if (path === null || key === null || key === undefined) {
      this.relayDropped.no_rendezvous++;
      return;
    }
    if (frame.length > MAX_RELAY_FRAME) {
      this.relayDropped.too_large++;
      return;
    }
    const payload = encodeRendezvousMessage({ type: "relay", to: path.peer, frame });
    void this.#ctx.sessions.send(key, {
      kind: "datagram",
      srcPort: PORT_RENDEZVOUS,
      dstPort: PORT_RENDEZVOUS,
      payload,
    }).then((sent) => {
      if (!sent) this.relayDropped.no_rendezvous++;
    });
  }

  /** Publishes this node's record now (again when what it says changed). */
  publish(): void {
    const self = this.#self();
    this.#published = publishedText(self);
    this.#client.publish(self);
  }

  /** Keeps a session with each rendezvous, sends what is due, and keeps quiet paths alive. */
  tick(): void {
    const now = Date.now();
    this.#addresses.forEach((_, index) => {
      const key = this.#keys[index];
      const live = key !== null && key !== undefined && this.#ctx.reach.endpointOf(key) !== null;
      if (!live) this.#connect(index);
      else if (now - this.#lastObserve[index]! >= RENDEZVOUS_KEEPALIVE_MS) {
        this.#lastObserve[index] = now;
        // A request keeps the session (and any NAT mapping) alive; looking
        // ourselves up also shows whether our record is still there.
        this.#client.checkPublished(index, 5_000);
        // And where it sees us now: a NAT that moved us shows here, and the
        // endpoints we publish or hand to trusted peers follow.
        this.#client.observe(index, 5_000);
      }
    });
    // A public record follows the endpoints the rendezvous observe, and
    // every record the rendezvous whose key is known (its mailboxes).
    if (publishedText(this.#self()) !== this.#published) this.publish();
    this.#client.tick();
  }

  /**
   * Asks every rendezvous about a name, address or key (at most 5 s): the
   * verified records, one per key, and any conflicting claimants. With
   * `{ stale: true }` (a mailbox lookup), also records expired less than
   * `MAILBOX_RETENTION_MS` ago.
   */
  lookup(query: PeerQuery, timeoutMs: number, options: LookupOptions = {}): Promise<LookupResult> {
    if (query.kind === "endpoint") throw new TypeError("an endpoint needs no lookup");
    const key = query.kind === "hostname"
      ? { by: "hostname" as const, hostname: query.hostname }
      : query.kind === "address"
      ? { by: "address" as const, address: query.address }
      : { by: "key" as const, key: Uint8Array.fromHex(query.keyHex) };
    return this.#client.lookup(key, Math.min(timeoutMs, 5_000), options);
  }

  /**
   * Looks a name up at every rendezvous: the one key that answers for it,
   * with a public endpoint. `not_found`, `conflict` (every candidate named)
   * or `unreachable` (a private node: relay is not built yet) otherwise.
   */
  async discover(query: PeerQuery, timeoutMs: number): Promise<Discovered> {
    if (query.kind === "endpoint") throw new TypeError("an endpoint needs no lookup");
    const text = query.kind === "hostname"
      ? query.hostname
      : query.kind === "address"
      ? query.address
      : query.keyHex;
    const result = await this.lookup(query, timeoutMs);
    if (result.records.length === 0) {
      throw new PilotError(
        "not_found",
        `No known peer "${text}"${
          result.answered === 0 ? " (no rendezvous answered)" : " (no rendezvous knows it)"
        }`,
        "check the name, or give its endpoint (IP:PORT or HOST:PORT)",
      );
    }
    if (result.records.length > 1 || result.conflicts.length > 0) {
      const names = [
        ...result.records.map((r) => `${r.address} (${r.record.publicKey.toHex().slice(0, 16)}…)`),
        ...result.conflicts,
      ];
      throw new PilotError(
        "conflict",
        `"${text}" is claimed by more than one key: ${names.join(", ")}`,
        "name the peer by its address or full key instead",
      );
    }
    const found = result.records[0]!;
    const where = found.record.endpoints.find((e) => e.kind === "observed") ??
      found.record.endpoints[0];
    if (where !== undefined) {
      return {
        publicKey: found.record.publicKey,
        endpoint: { host: where.hostname, port: where.port },
      };
    }
    // A private node: reached through a rendezvous that holds its record
    // (and so has a session with it), never at an IP it did not give us.
    const via = found.at.map((i) => this.#vias[i]).find((a) => a !== null && a !== undefined);
    if (via === undefined) {
      throw new PilotError(
        "unreachable",
        `"${text}" (${found.address}) is a private node, and no rendezvous holding its record ` +
          "is connected now",
        "try again in a few seconds",
      );
    }
    const relay = relayEndpoint({ via, peer: found.address });
    return {
      publicKey: found.record.publicKey,
      endpoint: { host: relay.hostname, port: RELAY_PORT },
    };
  }

  #connect(index: number): void {
    if (this.#connecting.has(index)) return;
    this.#connecting.add(index);
    const a = this.#addresses[index]!;
    void (async () => {
      try {
        const endpoint = await resolveEndpoint(a.endpoint);
        // A rendezvous given as HOST:PORT is pinned to the key that first
        // answered there (trust on first use, for as long as the daemon runs).
        const known = this.#keys[index];
        const peer = await this.#ctx.sessions.connect(
          endpoint,
          known === null || known === undefined ? {} : { publicKey: Uint8Array.fromHex(known) },
          CONNECT_TIMEOUT_MS,
        );
        this.#keys[index] = peer.keyHex;
        this.#vias[index] = peer.address;
        this.#lastObserve[index] = Date.now();
        this.publish();
        // A new session there: what waits in this node's mailbox is fetched now.
        this.#onMail();
      } catch {
        // Unreachable for now: the next tick tries again.
      } finally {
        this.#connecting.delete(index);
      }
    })();
  }

  /**
   * Where this node may be reached directly, at most 8: the endpoints its
   * rendezvous observe first, then its local ones (the listen address, or
   * for a wildcard listen each interface's address with the listen port).
   */
  candidates(): RecordEndpoint[] {
    const out: RecordEndpoint[] = [];
    const add = (e: RecordEndpoint) => {
      if (!out.some((o) => o.hostname === e.hostname && o.port === e.port)) out.push(e);
    };
    for (const s of this.#client.states) {
      if (s.observed !== null) add({ kind: "observed", ...s.observed });
    }
    for (const e of this.#locals()) add(e);
    return out.slice(0, 8);
  }

  /**
   * The endpoints this node listens on: the listen address, or for a
   * wildcard each interface's (read at most every few seconds: the session
   * table asks on every tick whether a path needs keepalives).
   */
  #locals(): RecordEndpoint[] {
    const now = performance.now();
    if (this.#localsCache !== null && now - this.#localsCache.at < LOCALS_TTL_MS) {
      return this.#localsCache.value;
    }
    const value = localEndpoints(this.#listen());
    this.#localsCache = { at: now, value };
    return value;
  }

  /**
   * What the rendezvous see of this node: each one's publish state and the
   * endpoint it observes, and the NAT type that follows. `none` when one
   * sees an endpoint we listen on; with two or more that see others, the
   * same mapping for all is `endpoint-independent` and different ones
   * `endpoint-dependent`; `unknown` until then (one rendezvous cannot tell).
   */
  reachability(): Reachability {
    const local = this.#locals();
    const observed = this.#client.states.flatMap((s) => s.observed === null ? [] : [s.observed]);
    const text = (e: { hostname: string; port: number }) => `${e.hostname}|${e.port}`;
    const mapped = new Set(observed.map(text));
    const nat: NatType = observed.some((o) => local.some((l) => text(l) === text(o)))
      ? "none"
      : observed.length < 2
      ? "unknown"
      : mapped.size === 1
      ? "endpoint-independent"
      : "endpoint-dependent";
    return {
      observed: observed[0] ?? null,
      nat,
      rendezvous: this.#client.states.map((s, i) => ({
        address: this.#vias[i] ?? null,
        published: s.published,
        observed: s.observed,
        error: s.error,
      })),
      dropped: { ...this.relayDropped },
    };
  }

  /**
   * Whether a rendezvous sees this node at an endpoint it does not listen
   * on (behind a NAT): its direct paths then need keepalives.
   */
  natted(): boolean {
    const local = this.#locals();
    return this.#client.states.some((s) =>
      s.observed !== null &&
      !local.some((l) => l.hostname === s.observed!.hostname && l.port === s.observed!.port)
    );
  }
}

/**
 * The endpoints a node listening on `listen` can be reached at locally: the
 * listen address itself, or for a wildcard each interface's address with
 * the listen port.
 */
export function localEndpoints(listen: Endpoint): RecordEndpoint[] {
  const wildcard = listen.hostname === "0.0.0.0" || listen.hostname === "::";
  if (!wildcard) return [{ kind: "local", ...listen }];
  return localInterfaces()
    .filter((i) => i.family === "IPv4" || listen.hostname === "::")
    .map((i) => ({ kind: "local" as const, hostname: i.address, port: listen.port }))
    .slice(0, 8);
}

/** This machine's interface addresses, but loopback and link-local (never throws). */
function localInterfaces(): Deno.NetworkInterfaceInfo[] {
  try {
    return Deno.networkInterfaces().filter((i) =>
      !i.address.startsWith("127.") && i.address !== "::1" && !i.address.startsWith("fe80:")
    );
  } catch {
    return [];
  }
}

/** What of a record the link republishes on: its endpoints and mailboxes, as text. */
function publishedText(self: SelfPresence): string {
  return JSON.stringify([self.endpoints, self.mailboxes]);
}
