/**
 * Presence records in the BitTorrent Mainline DHT (issue 10 item 4; BEP 5
 * and BEP 44), through npm `bittorrent-dht` over `node:dgram`: discovery
 * with no server of ours.
 *
 * - A node stores its signed presence record (`wire/presence_record.ts`,
 *   at most 408 bytes, within BEP 44's 1000) as a *mutable item* under its
 *   own Ed25519 identity key, with the record's serial as the item's `seq`.
 *   BEP 44 signs `seq` and the value with that same key, so DHT nodes refuse
 *   an item its owner did not sign, and an older `seq` than the one they
 *   hold. The signed bytes (`3:seqi…e1:v…`) never look like one of our own
 *   domain-separated messages.
 * - A lookup by key fetches that item and believes it only after the
 *   project's own checks (`verifyPresence`: signature, address stamp,
 *   expiry) and only if the record's key is the one asked for. What the DHT
 *   says is never trusted beyond that; a bad answer is counted and dropped.
 * - A node can also announce itself (BEP 5) under an infohash derived from
 *   its address, and one derived from its hostname, so that an address or
 *   a hostname finds the endpoints it announced from: that reveals its IP
 *   to anyone who asks, so only public nodes announce. An announce proves
 *   nothing: anyone can announce under any name, so what it gives is only
 *   where to send a handshake, which must prove the key (and the address,
 *   or the hostname the key's signed self-description claims).
 *
 * @module
 */
import { createHash } from "node:crypto";
import DHT from "bittorrent-dht";
import type { Address } from "../identity/address.ts";
import { sign, verify } from "../identity/ed25519.ts";
import type { Endpoint } from "./endpoint.ts";
import { type VerifiedPresence, verifyPresence } from "./presence.ts";

/** Why a DHT answer was not believed. */
export const DHT_DROPS = {
  bad_record: "an item whose value is not a valid presence record (signature, stamp, expiry)",
  wrong_key: "a valid record for another key than the one asked for",
} as const satisfies Record<string, string>;

/** One reason a DHT answer was dropped. */
export type DhtDrop = keyof typeof DHT_DROPS;

/** Options of {@linkcode PresenceDht.start}. */
export interface PresenceDhtOptions {
  /** Local address to bind (default `0.0.0.0`). */
  host?: string;
  /** UDP port (0: any free one). */
  port: number;
  /** Nodes to join through, as HOST:PORT (none: a DHT of its own until nodes are added). */
  bootstrap: string[];
  /** Wall clock (ms) for record expiry. */
  now?: () => number;
}

// deno-lint-ignore no-explicit-any
type DhtNode = any;

/** The BEP 44 target of a mutable item with no salt: SHA-1 of the key. */
export function itemTarget(publicKey: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha1").update(publicKey).digest());
}

/** The BEP 5 infohash a node announces itself under for `address`. */
export function addressInfohash(address: Address): Uint8Array {
  return new Uint8Array(createHash("sha1").update(`pilot address v1 ${address}`).digest());
}

/** The BEP 5 infohash a public node announces itself under for `hostname`. */
export function hostnameInfohash(hostname: string): Uint8Array {
  return new Uint8Array(createHash("sha1").update(`pilot hostname v1 ${hostname}`).digest());
}

/** A DHT node that stores and finds presence records. */
export class PresenceDht {
  #dht: DhtNode;
  #now: () => number;
  /** Answers dropped, by reason. */
  readonly dropped: Record<DhtDrop, number> = { bad_record: 0, wrong_key: 0 };

  private constructor(dht: DhtNode, now: () => number) {
    this.#dht = dht;
    this.#now = now;
  }

  /** Starts a DHT node on `port` and joins through `bootstrap`. */
  static async start(options: PresenceDhtOptions): Promise<PresenceDht> {
    const dht = new DHT({
      bootstrap: options.bootstrap.length === 0 ? false : options.bootstrap,
      // Every signature a DHT item carries is checked as strictly as ours.
      verify: (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array) =>
        verify(signature, message, publicKey),
    });
    const host = options.host ?? "0.0.0.0";
    await new Promise<void>((resolve, reject) => {
      dht.once("error", reject);
      dht.listen(options.port, host, () => {
        dht.off("error", reject);
        resolve();
      });
    });
    // A DHT error later (a bad packet, a send failure) must not end the daemon.
    dht.on("error", () => {});
    dht.on("warning", () => {});
    return new PresenceDht(dht, options.now ?? Date.now);
  }

  /** The UDP endpoint it listens on. */
  get endpoint(): Endpoint {
    const a = this.#dht.address();
    return { hostname: a.address, port: a.port };
  }

  /** Nodes in its routing table. */
  get nodes(): number {
    return this.#dht.toJSON().nodes.length;
  }

  /** Adds a known DHT node (a bootstrap node, or one learned elsewhere). */
  addNode(e: Endpoint): void {
    this.#dht.addNode({ host: e.hostname, port: e.port });
  }

  /**
   * Stores `record` (signed by `seed`, whose key it carries) under that key
   * with `seq` = `serial`; resolves with how many nodes took it.
   */
  publish(record: Uint8Array, seed: Uint8Array, publicKey: Uint8Array, serial: number) {
    return new Promise<number>((resolve, reject) => {
      this.#dht.put(
        {
          k: Buffer.from(publicKey),
          seq: serial,
          v: Buffer.from(record),
          sign: (message: Uint8Array) => Buffer.from(sign(seed, message)),
        },
        (err: Error | null, _hash: Uint8Array, stored: number) =>
          err ? reject(err) : resolve(stored),
      );
    });
  }

  /**
   * Finds the record of `publicKey`: null when no node has one, or when
   * what came back is not a valid record for that key (counted).
   */
  lookupKey(publicKey: Uint8Array): Promise<VerifiedPresence | null> {
    return new Promise((resolve) => {
      this.#dht.get(Buffer.from(itemTarget(publicKey)), (err: Error | null, res: DhtNode) => {
        if (err || res === null || res === undefined || res.v === undefined) {
          return resolve(null);
        }
        let v: VerifiedPresence;
        try {
          v = verifyPresence(new Uint8Array(res.v), this.#now());
        } catch {
          this.dropped.bad_record++;
          return resolve(null);
        }
        if (v.record.publicKey.toHex() !== publicKey.toHex()) {
          this.dropped.wrong_key++;
          return resolve(null);
        }
        resolve(v);
      });
    });
  }

  /** Announces this node's UDP `port` under `address` (public nodes only: it reveals the IP). */
  announce(address: Address, port: number): Promise<void> {
    return this.#announce(addressInfohash(address), port);
  }

  /** Announces this node's UDP `port` under `hostname` (public nodes only: it reveals the IP). */
  announceHostname(hostname: string, port: number): Promise<void> {
    return this.#announce(hostnameInfohash(hostname), port);
  }

  #announce(infohash: Uint8Array, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#dht.announce(
        Buffer.from(infohash),
        port,
        (err: Error | null) => err ? reject(err) : resolve(),
      );
    });
  }

  /**
   * The endpoints that announced themselves under `address`, gathered for
   * up to `timeoutMs`. Only hints: a handshake there must still prove the
   * address (its key's stamp).
   */
  lookupAddress(address: Address, timeoutMs: number): Promise<Endpoint[]> {
    return this.#lookup(addressInfohash(address), timeoutMs);
  }

  /**
   * The endpoints that announced themselves under `hostname`, gathered for
   * up to `timeoutMs`. Only hints, from anyone: a handshake there must
   * still prove a key whose signed self-description claims the hostname.
   */
  lookupHostname(hostname: string, timeoutMs: number): Promise<Endpoint[]> {
    return this.#lookup(hostnameInfohash(hostname), timeoutMs);
  }

  #lookup(target: Uint8Array, timeoutMs: number): Promise<Endpoint[]> {
    const infohash = Buffer.from(target);
    const found = new Map<string, Endpoint>();
    const onPeer = (peer: { host: string; port: number }, hash: Uint8Array) => {
      if (Buffer.compare(Buffer.from(hash), infohash) !== 0 || found.size >= 16) return;
      found.set(`${peer.host}:${peer.port}`, { hostname: peer.host, port: peer.port });
    };
    this.#dht.on("peer", onPeer);
    return new Promise((resolve) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.#dht.off("peer", onPeer);
        resolve([...found.values()]);
      };
      const timer = setTimeout(finish, timeoutMs);
      this.#dht.lookup(infohash, () => finish());
    });
  }

  /** Stops the node and closes its socket. */
  close(): Promise<void> {
    return new Promise((resolve) => this.#dht.destroy(() => resolve()));
  }
}
