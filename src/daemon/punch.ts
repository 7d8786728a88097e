/**
 * Hole punching between trusted peers whose session runs through a relay
 * (issue 9; design: `docs/design/rendezvous.md`, "Paths"). Sans-IO but for
 * the session table it sends through.
 *
 * While a trusted peer's path is a relay, this node sends it its candidate
 * endpoints on port 446 (inside the tunnel: no stranger learns them), at
 * once and then with backoff. A peer that receives candidates sends a few
 * probes straight to each, over UDP, and its own candidates back unless it
 * just did, so both sides' NATs open a mapping towards the other at about
 * the same time. A probe that arrives moves the receiver's path to its source
 * (roaming), and the receiver's acknowledgement, sent along that path, moves
 * the prober's: the session, its streams and its keys carry on unchanged.
 * Endpoint-dependent ("symmetric") NATs defeat this; those pairs stay on the
 * relay and try again later, less and less often.
 *
 * @module
 */
import { PORT_PATH } from "../constants.ts";
import { DecodeError } from "../bytes.ts";
import { type Endpoint, isLoopbackHost, RELAY_PORT } from "../discovery/endpoint.ts";
import type { PortService } from "../services/port_service.ts";
import type { PeerStatus, SessionManager } from "../session/manager.ts";
import { randomBytes } from "../session/crypto.ts";
import type { IpEndpoint } from "../wire/ip_endpoint.ts";
import {
  decodePathMessage,
  encodePathMessage,
  MAX_CANDIDATES,
  type PathMessage,
} from "../wire/path_message.ts";

/** First wait before sending candidates again to a peer still on the relay (ms); it doubles. */
export const PUNCH_RETRY_MS = 2_000;
/** Longest wait between two punch attempts to one peer (ms). */
export const PUNCH_RETRY_MAX_MS = 5 * 60_000;
/** When, after candidates arrived, each candidate gets a probe (ms). */
export const PROBE_SCHEDULE_MS = [0, 200, 500, 1_000, 2_000, 4_000] as const;
/** Candidates from a peer, and punch notices about it, are taken at most this often (ms). */
export const PUNCH_NOTICE_MS = 1_000;
/** Candidates are sent back at most this often to one peer (ms). */
const ANSWER_CANDIDATES_MS = 1_000;
/** Peers with punching state, at most (trusted peers with a session are far fewer). */
const MAX_PEERS = 4096;

/** What the puncher needs from the node. */
export interface PunchOptions {
  /** The session table (peers, and sends to an endpoint other than the path's). */
  sessions: Pick<SessionManager, "peers" | "send">;
  /** This node's candidate endpoints (observed by its rendezvous, and local). */
  candidates(): IpEndpoint[];
  /**
   * Asks the rendezvous relaying to a peer to tell it where it sees us now
   * (sent with each round of candidates).
   */
  requestPunch?(peer: PeerStatus): void;
  /** Monotonic clock (ms). */
  now(): number;
  /**
   * Probes were scheduled: the caller's timer should call `sendDueProbes`
   * every tick while {@linkcode Puncher.probing}.
   */
  wake?(): void;
}

interface PeerPunch {
  /** When candidates go to it next. */
  nextAt: number;
  /** The wait after that. */
  backoffMs: number;
  /** When candidates last went to it. */
  sentAt: number;
  /** Probes still to send: where, and when. */
  probes: { to: Endpoint; at: number }[];
  /** When the last punch notice from a rendezvous for it was taken. */
  noticeAt: number;
  /** When its last candidates were taken. */
  candidatesAt: number;
}

/** Counters of the puncher. */
export interface PunchStats {
  /** Candidate messages sent. */
  candidatesSent: number;
  /** Probes sent. */
  probesSent: number;
  /** Probes acknowledged (each one a working direct path). */
  probesAcked: number;
  /** Port-446 datagrams that did not decode. */
  malformed: number;
}

/**
 * Whether the direct path to a peer at `endpoint` needs keepalives every
 * PERSISTENT_KEEPALIVE_MS to hold a NAT mapping open: only a trusted peer's
 * (a stranger's session is not kept), never a relay path's (the rendezvous
 * link keeps that) nor a loopback one (it never crosses a NAT). `natted` is
 * what this node's rendezvous observed (an endpoint it does not listen on),
 * or null without one: it cannot tell then, and keeps them.
 */
export function holdsNatMapping(
  endpoint: Endpoint,
  trusted: boolean,
  natted: boolean | null,
): boolean {
  if (!trusted || endpoint.port === RELAY_PORT || isLoopbackHost(endpoint.hostname)) return false;
  return natted ?? true;
}

/** Punches holes towards trusted peers on relayed paths. */
export class Puncher {
  #o: PunchOptions;
  #peers = new Map<string, PeerPunch>();
  #lastCandidates = "";
  readonly stats: PunchStats = { candidatesSent: 0, probesSent: 0, probesAcked: 0, malformed: 0 };

  /** A puncher over the node's session table. */
  constructor(options: PunchOptions) {
    this.#o = options;
  }

  /** Port 446: only trusted peers reach it (the session layer's gate). */
  portService(): PortService {
    return {
      port: PORT_PATH,
      name: "path",
      onDatagram: (packet, dctx) => {
        let m: PathMessage;
        try {
          m = decodePathMessage(packet.payload);
        } catch (e) {
          if (!(e instanceof DecodeError)) throw e;
          this.stats.malformed++;
          return Promise.resolve();
        }
        this.#receive(dctx.peer.keyHex, m);
        return Promise.resolve();
      },
    };
  }

  /**
   * Sends what is due: candidates to trusted peers still on a relay, and
   * scheduled probes. Peers on a direct path, or gone, are forgotten.
   */
  tick(): void {
    const now = this.#o.now();
    const relayed = new Set<string>();
    // Our candidates moved (a NAT rebinding): every peer hears the new ones now.
    const ours = JSON.stringify(this.#o.candidates());
    if (ours !== this.#lastCandidates) {
      this.#lastCandidates = ours;
      for (const state of this.#peers.values()) {
        state.nextAt = now;
        state.backoffMs = PUNCH_RETRY_MS;
      }
    }
    for (const p of this.#o.sessions.peers()) {
      if (!p.trusted || p.endpoint?.port !== RELAY_PORT) continue;
      const key = p.identity.keyHex;
      relayed.add(key);
      const state = this.#state(key, now);
      if (state === undefined) continue;
      if (now >= state.nextAt) {
        state.nextAt = now + state.backoffMs;
        state.backoffMs = Math.min(state.backoffMs * 2, PUNCH_RETRY_MAX_MS);
        this.#sendCandidates(key, state, now);
        this.#o.requestPunch?.(p);
      }
      this.#sendDueProbes(key, state, now);
    }
    for (const key of this.#peers.keys()) if (!relayed.has(key)) this.#peers.delete(key);
  }

  /**
   * A rendezvous says trusted peer `key` wants a direct path and is seen at
   * `endpoint`: that endpoint gets probes too (the freshest there is, after
   * a NAT moved the peer).
   */
  punchFrom(key: string, endpoint: IpEndpoint): void {
    const now = this.#o.now();
    const state = this.#state(key, now);
    // At most one notice a second per peer: a rendezvous that sends more
    // cannot make this node probe an endpoint of its choosing any faster.
    if (state === undefined || now - state.noticeAt < PUNCH_NOTICE_MS) return;
    state.noticeAt = now;
    const to = { hostname: endpoint.hostname, port: endpoint.port };
    state.probes.push(...PROBE_SCHEDULE_MS.map((d) => ({ to, at: now + d })));
    this.#sendDueProbes(key, state, now);
    this.#o.wake?.();
  }

  /** Whether probes are scheduled: `sendDueProbes` is then due every tick. */
  get probing(): boolean {
    for (const state of this.#peers.values()) if (state.probes.length > 0) return true;
    return false;
  }

  /** Sends the probes that are due (cheap: only peers being punched are looked at). */
  sendDueProbes(): void {
    const now = this.#o.now();
    for (const [key, state] of this.#peers) this.#sendDueProbes(key, state, now);
  }

  #state(key: string, now: number): PeerPunch | undefined {
    let state = this.#peers.get(key);
    if (state === undefined && this.#peers.size < MAX_PEERS) {
      state = {
        nextAt: now,
        backoffMs: PUNCH_RETRY_MS,
        sentAt: -Infinity,
        probes: [],
        noticeAt: -Infinity,
        candidatesAt: -Infinity,
      };
      this.#peers.set(key, state);
    }
    return state;
  }

  #receive(key: string, m: PathMessage): void {
    const now = this.#o.now();
    if (m.type === "probe") {
      // Answered along the session's path, which the probe just moved here.
      void this.#send(key, { type: "probe_ack", nonce: m.nonce });
      return;
    }
    if (m.type === "probe_ack") {
      this.stats.probesAcked++;
      return;
    }
    const state = this.#state(key, now);
    // One set of candidates a second per peer: even a trusted peer cannot
    // make this node probe endpoints of its choosing any faster.
    if (state === undefined || now - state.candidatesAt < PUNCH_NOTICE_MS) return;
    state.candidatesAt = now;
    state.probes = m.endpoints.flatMap((to) => PROBE_SCHEDULE_MS.map((d) => ({ to, at: now + d })));
    if (now - state.sentAt >= ANSWER_CANDIDATES_MS) this.#sendCandidates(key, state, now);
    this.#sendDueProbes(key, state, now);
    this.#o.wake?.();
  }

  #sendCandidates(key: string, state: PeerPunch, now: number): void {
    const endpoints = this.#o.candidates().slice(0, MAX_CANDIDATES);
    if (endpoints.length === 0) return;
    state.sentAt = now;
    this.stats.candidatesSent++;
    void this.#send(key, { type: "candidates", endpoints });
  }

  #sendDueProbes(key: string, state: PeerPunch, now: number): void {
    const due = state.probes.filter((p) => p.at <= now);
    if (due.length === 0) return;
    state.probes = state.probes.filter((p) => p.at > now);
    for (const p of due) {
      this.stats.probesSent++;
      const nonce = new DataView(randomBytes(8).buffer).getBigUint64(0);
      void this.#send(key, { type: "probe", nonce }, { hostname: p.to.hostname, port: p.to.port });
    }
  }

  #send(key: string, m: PathMessage, to?: Endpoint): Promise<boolean> {
    const packet = {
      kind: "datagram" as const,
      srcPort: PORT_PATH,
      dstPort: PORT_PATH,
      payload: encodePathMessage(m),
    };
    return this.#o.sessions.send(key, packet, to === undefined ? {} : { to });
  }
}
