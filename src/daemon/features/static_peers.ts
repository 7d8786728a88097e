/**
 * `pilot peer list`, `peer add` and `peer remove`: the static peer table
 * (`--peer NAME=ENDPOINT`, `peers` in config.json) changed while the daemon
 * runs, and with `save` in config.json too. The table only says where to
 * handshake for a name: a name that is also a trusted peer's still expects
 * that peer's key (discovery/resolver.ts), and strangers claiming a
 * configured name are flagged (name_claims.ts), both read the live table.
 *
 * @module
 */
import { PilotError } from "../../errors.ts";
import { type PeerRef, refOf } from "../../session/peer_ref.ts";
import { parsePeerEntry, parsePeerName, saveConfigPeer } from "../config.ts";
import type { NodeContext } from "../context.ts";

/** The most static peers a node keeps (each name is looked up on every resolve). */
export const MAX_STATIC_PEERS = 1024;

/** One entry of the static table. */
export interface StaticPeer {
  /** Hostname or (canonical) address. */
  name: string;
  /** Endpoint text as given. */
  endpoint: string;
  /** Trusted peers this name also names (their key is what a handshake there must prove). */
  trusted: PeerRef[];
}

/** What `peer add` or `peer remove` did. */
export interface StaticPeerChange {
  /** The name. */
  name: string;
  /** The endpoint added, or the one removed (null when there was none). */
  endpoint: string | null;
  /** Whether the running table or config.json changed. */
  changed: boolean;
  /** Whether config.json holds the change (asked with `save`). */
  saved: boolean;
  /** Trusted peers this name also names. */
  trusted: PeerRef[];
}

/** The static peer table of a running node. */
export class StaticPeersFeature {
  #ctx: NodeContext;
  #home: string;
  /** Changes one after another: each reads and writes config.json whole. */
  #queue: Promise<unknown> = Promise.resolve();

  /** Works over the node's live configuration and its home's config.json. */
  constructor(ctx: NodeContext, home: string) {
    this.#ctx = ctx;
    this.#home = home;
  }

  /** `pilot peer list`. */
  list(): StaticPeer[] {
    return Object.entries(this.#ctx.config.peers)
      .map(([name, endpoint]) => ({ name, endpoint, trusted: this.#trustedAs(name) }));
  }

  /** `pilot peer add NAME ENDPOINT [--save]`; the same entry again answers changed: false. */
  add(nameText: string, endpointText: string, save: boolean): Promise<StaticPeerChange> {
    const [name, endpoint] = parsePeerEntry(nameText, endpointText, "peer add");
    return this.#serial(async () => {
      const peers = this.#ctx.config.peers;
      const running = peers[name] !== endpoint;
      if (running && !Object.hasOwn(peers, name)) {
        if (Object.keys(peers).length >= MAX_STATIC_PEERS) {
          throw new PilotError(
            "too_large",
            `Cannot add "${name}": the node keeps at most ${MAX_STATIC_PEERS} static peers`,
            "remove some with `pilot peer remove NAME`",
          );
        }
      }
      // config.json first: when it is refused, the running table is left as it was.
      const written = save ? await saveConfigPeer(this.#home, name, endpoint) : false;
      peers[name] = endpoint;
      return {
        name,
        endpoint,
        changed: running || written,
        saved: save,
        trusted: this.#trustedAs(name),
      };
    });
  }

  /** `pilot peer remove NAME [--save]`; an unknown name answers changed: false. */
  remove(nameText: string, save: boolean): Promise<StaticPeerChange> {
    const name = parsePeerName(nameText, "peer remove");
    return this.#serial(async () => {
      const peers = this.#ctx.config.peers;
      const endpoint = Object.hasOwn(peers, name) ? peers[name]! : null;
      const written = save ? await saveConfigPeer(this.#home, name, null) : false;
      delete peers[name];
      return {
        name,
        endpoint,
        changed: endpoint !== null || written,
        saved: save,
        trusted: this.#trustedAs(name),
      };
    });
  }

  #trustedAs(name: string): PeerRef[] {
    return this.#ctx.trust.list()
      .filter((e) => e.hostname === name || e.address === name)
      .map((e) => refOf(e));
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(work);
    this.#queue = next.catch(() => {});
    return next;
  }
}
