/**
 * A node's side of the Mainline DHT (`--dht`; issue 10 item 4): its own DHT
 * node (`discovery/dht.ts`) on its own UDP port, this node's signed
 * presence record published there and refreshed before it expires, a public
 * node also announced under its address and its hostname, and lookups for names nothing
 * closer knows (after trust, `--peer`, the LAN and the rendezvous).
 *
 * What the DHT learns: the record (key, address stamp, hostname, and for a
 * public node its endpoints) and, from its packets, this DHT node's IP and
 * port. A private node's record names no endpoint, so strangers find it
 * there but cannot reach it without a rendezvous's relay.
 *
 * @module
 */
import { type Endpoint, type EndpointSpec, formatEndpoint } from "../discovery/endpoint.ts";
import type { PresenceDht } from "../discovery/dht.ts";
import { signOwnPresence, type VerifiedPresence } from "../discovery/presence.ts";
import { RECORD_LIFETIME_MS, RECORD_REFRESH_BEFORE_MS } from "../discovery/rendezvous_client.ts";
import type { PeerQuery } from "../discovery/resolver.ts";
import { PilotError } from "../errors.ts";
import type { Identity } from "../identity/identity.ts";
import { localEndpoints } from "./features/rendezvous_link.ts";
import type { Discovered } from "./reach.ts";

/** The DHT node as `pilot info` shows it. */
export interface DhtStats {
  /** Its UDP port. */
  port: number;
  /** Nodes in its routing table. */
  nodes: number;
  /** Answers dropped, by reason. */
  dropped: Record<string, number>;
}

/** What the DHT link needs from the node. */
export interface DhtLinkOptions {
  /** This node's identity (its key signs the record and the DHT item). */
  identity: Identity;
  /** The hostname it claims, or null. */
  hostname: string | null;
  /** Whether its record carries endpoints (and it announces its address). */
  visibility: "private" | "public";
  /** The node's session UDP endpoint. */
  listen: () => Endpoint;
  /** The DHT node's own port (0: any free one). */
  port: number;
  /** DHT nodes to join through. */
  bootstrap: EndpointSpec[];
}

/** Wait after a publish no DHT node took before the next (ms); it doubles. */
const PUBLISH_RETRY_MS = 5_000;
/** Longest wait between two failed publishes (ms). */
const PUBLISH_RETRY_MAX_MS = 5 * 60_000;

/** The node's DHT node and its published record. */
export class DhtLink {
  #o: DhtLinkOptions;
  #dht: PresenceDht;
  #serial = 0;
  #expiresAt = 0;
  #publishing = false;
  /** No publish before this (after a failed one: no DHT node known, none answered). */
  #notBefore = 0;
  /** The wait after the next failed publish; it doubles. */
  #retryMs = PUBLISH_RETRY_MS;

  private constructor(options: DhtLinkOptions, dht: PresenceDht) {
    this.#o = options;
    this.#dht = dht;
  }

  /**
   * Starts the DHT node; the record is published on the first {@linkcode tick}.
   * The DHT code (and its npm dependencies) loads here, so a node without
   * `--dht` never holds it in memory.
   */
  static async start(options: DhtLinkOptions): Promise<DhtLink> {
    const { PresenceDht } = await import("../discovery/dht.ts");
    const dht = await PresenceDht.start({
      port: options.port,
      bootstrap: options.bootstrap.map((e) => `${e.host}:${e.port}`),
    });
    return new DhtLink(options, dht);
  }

  /** The DHT node's UDP endpoint. */
  get endpoint(): Endpoint {
    return this.#dht.endpoint;
  }

  /** Its port, routing-table size, and answers dropped by reason (records that failed our checks). */
  stats(): DhtStats {
    return {
      port: this.#dht.endpoint.port,
      nodes: this.#dht.nodes,
      dropped: { ...this.#dht.dropped },
    };
  }

  /** Publishes the record when it is due (at start, then before it expires); never throws. */
  tick(): void {
    const now = Date.now();
    if (this.#publishing || now < this.#notBefore) return;
    if (now < this.#expiresAt - RECORD_REFRESH_BEFORE_MS) return;
    this.#publishing = true;
    this.#publish(now).finally(() => this.#publishing = false);
  }

  async #publish(now: number): Promise<void> {
    const { identity, hostname, visibility } = this.#o;
    // Serials only grow, even when the clock steps back.
    const serial = Math.max(now, this.#serial + 1);
    const expiresAt = now + RECORD_LIFETIME_MS;
    const listen = this.#o.listen();
    const record = signOwnPresence(identity, {
      hostname: hostname ?? "",
      visibility,
      serial,
      expiresAt,
      endpoints: visibility === "public" ? localEndpoints(listen) : [],
    });
    try {
      await this.#dht.publish(record, identity.seed, identity.publicKey, serial);
      if (visibility === "public") {
        await this.#dht.announce(identity.address, listen.port);
        if (hostname !== null) await this.#dht.announceHostname(hostname, listen.port);
      }
      this.#serial = serial;
      this.#expiresAt = expiresAt;
      this.#retryMs = PUBLISH_RETRY_MS;
    } catch {
      // No DHT node took it (none known, or none answered): tried again in a while.
      this.#serial = serial;
      this.#notBefore = Date.now() + this.#retryMs;
      this.#retryMs = Math.min(this.#retryMs * 2, PUBLISH_RETRY_MAX_MS);
    }
  }

  /**
   * Looks a key or an address up in the DHT: the record's key and public
   * endpoint, or for an address the endpoint it announced (the handshake
   * must prove the address). Null when the DHT knows nothing; hostnames are
   * looked up with {@linkcode lookupHostname}.
   */
  async discover(query: PeerQuery, timeoutMs: number): Promise<Discovered | null> {
    if (query.kind === "key") {
      const v = await this.#dht.lookupKey(Uint8Array.fromHex(query.keyHex));
      if (v === null) return null;
      const where = v.record.endpoints.find((e) => e.kind === "observed") ??
        v.record.endpoints[0];
      if (where === undefined) {
        throw new PilotError(
          "unreachable",
          `${v.address} is a private node: its DHT record names no endpoint`,
          "reach it through a rendezvous (--rendezvous), or ask it to run with --public",
        );
      }
      return {
        publicKey: v.record.publicKey,
        endpoint: { host: where.hostname, port: where.port },
      };
    }
    if (query.kind === "address") {
      const found = await this.#dht.lookupAddress(query.address, Math.min(timeoutMs, 5_000));
      const first = found[0];
      return first === undefined
        ? null
        : { address: query.address, endpoint: { host: first.hostname, port: first.port } };
    }
    return null;
  }

  /** The endpoints announced under `hostname` (by anyone: only where to try a handshake). */
  lookupHostname(hostname: string, timeoutMs: number): Promise<Endpoint[]> {
    return this.#dht.lookupHostname(hostname, timeoutMs);
  }

  /** The verified record of `publicKey` in the DHT, or null. */
  lookupKey(publicKey: Uint8Array): Promise<VerifiedPresence | null> {
    return this.#dht.lookupKey(publicKey);
  }

  /** Stops the DHT node. */
  close(): Promise<void> {
    return this.#dht.close();
  }

  /** For logs: where the DHT node listens. */
  toString(): string {
    return `DHT node at ${formatEndpoint(this.endpoint)}`;
  }
}
