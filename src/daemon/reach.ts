/**
 * From what a user typed to an authenticated peer: resolve the name once,
 * connect (or reuse the session), and check trust once. Everything below
 * takes the resulting `PeerIdentity`, never the text.
 *
 * This is the seat of the path layer: a peer is reached directly at a UDP
 * endpoint or through a rendezvous relay (`#connect`). Names this node's own
 * sources do not know are asked of the discovery sources the node plugs in
 * (LAN, rendezvous, DHT), under the resolver's one merge rule
 * (discovery/resolver.ts).
 *
 * @module
 */
import {
  type Endpoint,
  type EndpointSpec,
  formatEndpoint,
  resolveEndpoint,
} from "../discovery/endpoint.ts";
import {
  type Candidates,
  classifyPeer,
  type DiscoverySources,
  type PeerQuery,
  type Resolution,
  resolutionOf,
  type Resolver,
} from "../discovery/resolver.ts";
import { invalid, noAnswer, PilotError } from "../errors.ts";
import type { Address } from "../identity/address.ts";
import { fingerprint } from "../identity/fingerprint.ts";
import type { SessionManager } from "../session/manager.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import { notTrusted } from "./peer_ref.ts";

/** What reaching a peer needs from the node. */
export interface ReachOptions {
  /** The resolver, with the node's sources. */
  resolver: Resolver;
  /** The session table. */
  sessions: SessionManager;
  /** Whether a key (hex) is trusted right now. */
  isTrusted(keyHex: string): boolean;
  /** This node's own key (hex): never a peer. */
  selfKeyHex: string;
  /**
   * The node's discovery sources now (the LAN, the rendezvous, the DHT),
   * asked for names its own sources do not know, and for where a known key
   * is. One left out is not configured.
   */
  discovery?(): DiscoverySources;
}

/** What one discovery link found for a name: the key that must answer, and where. */
export interface Discovered {
  /** The peer's key, from a verified record; absent when only an address led here. */
  publicKey?: Uint8Array;
  /** The address asked for, when no key is known: the handshake must prove it. */
  address?: Address;
  /** Where to send the handshake. */
  endpoint: EndpointSpec;
}

/** A peer reached, and how the user named it. */
export interface Reached {
  /** The authenticated peer. */
  peer: PeerIdentity;
  /** The resolver's answer for the text. */
  resolution: Resolution;
}

/** Resolves and reaches peers. */
export class Reach {
  #o: ReachOptions;

  /** Creates the reach layer over a resolver and a session table. */
  constructor(options: ReachOptions) {
    this.#o = options;
  }

  /** Resolves peer text (see discovery/resolver.ts for the naming rules). */
  resolve(text: string): Resolution {
    const r = this.#o.resolver.resolve(text);
    if (r.expected.publicKey?.toHex() === this.#o.selfKeyHex) {
      throw invalid(`"${text}" is this node itself`, "name another peer");
    }
    return r;
  }

  /** The current endpoint of a peer with a live session, or null. */
  endpointOf(keyHex: string): Endpoint | null {
    return this.#o.sessions.endpointOf(keyHex);
  }

  /**
   * Opens (or reuses) a session with the peer `text` names, trusted or not.
   * With `freshEndpoint`, text that is an endpoint always gets a new
   * handshake there: whoever answers now is named, not a session from before.
   */
  async reach(
    text: string,
    timeoutMs: number,
    options: { freshEndpoint?: boolean } = {},
  ): Promise<Reached> {
    const resolution = await this.#resolveOrDiscover(text, timeoutMs);
    const fresh = options.freshEndpoint === true && resolution.query.kind === "endpoint";
    return { peer: await this.#connect(text, resolution, timeoutMs, fresh), resolution };
  }

  /**
   * Reaches a trusted peer: `not_trusted` before any packet when the name
   * resolves to a known untrusted key, else after the handshake proved who
   * answered.
   */
  async reachTrusted(text: string, timeoutMs: number): Promise<PeerIdentity> {
    const resolution = await this.#resolveOrDiscover(text, timeoutMs);
    const known = resolution.expected.publicKey;
    if (known !== undefined && !this.#o.isTrusted(known.toHex())) throw notTrusted(text);
    const peer = await this.#connect(text, resolution, timeoutMs);
    if (!this.#o.isTrusted(peer.keyHex)) throw notTrusted(text);
    return peer;
  }

  /**
   * Every source's answer for `query` and the merged decision, asking every
   * configured discovery source at once (`pilot find`); nothing is sent to
   * the peer itself.
   */
  candidates(query: PeerQuery, timeoutMs: number): Promise<Candidates> {
    return this.#o.resolver.candidates(query, {
      timeoutMs,
      discovery: this.#o.discovery?.() ?? {},
      thorough: true,
    });
  }

  /**
   * The resolver's answer from this node's own sources, or for a name they
   * do not know, the discovery sources' under the same merge rule: trust on
   * first use, never pinned (the handshake still proves the key).
   */
  async #resolveOrDiscover(text: string, timeoutMs: number): Promise<Resolution> {
    try {
      return this.resolve(text);
    } catch (e) {
      if (!(e instanceof PilotError) || e.code !== "not_found" || !this.#o.discovery) throw e;
      const found = await this.#o.resolver.candidates(classifyPeer(text), {
        timeoutMs,
        discovery: this.#o.discovery(),
      });
      const r = resolutionOf(text, found);
      if (r.expected.publicKey?.toHex() === this.#o.selfKeyHex) {
        throw invalid(`"${text}" is this node itself`, "name another peer");
      }
      return r;
    }
  }

  async #connect(
    text: string,
    r: Resolution,
    timeoutMs: number,
    fresh = false,
  ): Promise<PeerIdentity> {
    const key = r.expected.publicKey?.toHex();
    const live = key === undefined ? null : this.endpointOf(key);
    let spec = r.endpoint;
    if (spec === undefined && live === null && key !== undefined && this.#o.discovery) {
      // A key we know but not where it is: its record may say.
      const found = await this.#o.resolver.candidates({ kind: "key", keyHex: key }, {
        timeoutMs,
        discovery: this.#o.discovery(),
      });
      spec = found.decision.endpoint ?? undefined;
    }
    if (spec === undefined && live === null) {
      throw new PilotError(
        "unreachable",
        `No endpoint known for "${text}"`,
        "give its endpoint (IP:PORT or HOST:PORT), or run `pilot peer add NAME ENDPOINT`",
      );
    }
    const endpoint = spec === undefined ? live! : await resolveEndpoint(spec);
    let peer: PeerIdentity;
    try {
      peer = await this.#o.sessions.connect(endpoint, r.expected, timeoutMs, { fresh });
    } catch (e) {
      if (e instanceof PilotError && e.code === "unreachable") {
        throw noAnswer("unreachable", text, formatEndpoint(endpoint));
      }
      if (!(e instanceof PilotError) || e.code !== "key_changed" || !r.trusted) throw e;
      // The trusted peer's own endpoint answered with another key: say so
      // with both fingerprints, and never suggest dropping the trusted key.
      throw new PilotError(
        "key_changed",
        `"${text}" is trusted as ${
          fingerprint(r.expected.publicKey!)
        }, but ${endpoint.hostname}:${endpoint.port} answered with another key (${e.message})`,
        "nothing was sent to it; if the peer really has a new key, compare the new fingerprint " +
          "with its `pilot info` over a channel you trust before trusting it",
      );
    }
    if (peer.keyHex === this.#o.selfKeyHex) {
      throw invalid(`"${text}" is this node itself`, "name another peer");
    }
    return peer;
  }
}
