/**
 * The peer resolver: turns what a user typed (address, hostname, full key,
 * fingerprint or endpoint) into where to send a handshake and who must answer there.
 *
 * Naming rules (docs/PROTOCOL.md, threat model):
 * - only trusted bindings, the static `--peer NAME=ENDPOINT` table and names
 *   that prove themselves (a full key, or an address, which costs about 2^68
 *   hashes to match) resolve; a hostname claimed on an untrusted session never
 *   picks a key or an endpoint;
 * - a trusted peer's name keeps resolving to its trusted key whatever
 *   strangers claim (their claims are flagged elsewhere, never followed);
 * - more than one key for a name among equally strong sources is a
 *   `conflict`, never a guess;
 * - where to handshake: a live session's endpoint first, then a configured
 *   `--peer` endpoint, then where a trusted peer was last authenticated
 *   (remembered across restarts), then the discovery sources' in their
 *   order. Each is only a hint: the handshake still checks the expected
 *   key, so another key there is `key_changed`.
 *
 * Every source feeds one resolver (docs/design/offline.md §5), strongest
 * first: trust, the `--peer` table, live sessions, remembered endpoints
 * (this node's own, answered at once), then the discovery sources the daemon
 * plugs in as functions: signed LAN announcements, the rendezvous, the
 * Mainline DHT. `mergeCandidates` is the one merge rule, for a handshake by
 * name (daemon/reach.ts) and for `pilot find` alike: what this node's own
 * sources know decides; the discovery sources decide only names those do not
 * know, as trust on first use that never pins a name, and every key they
 * name for it is listed (more than one is a `conflict`). `Resolver.candidates`
 * keeps each source's answer, a failed one's as its failure.
 *
 * @module
 */
import { isAddressLike, parseAddress } from "../identity/address.ts";
import { isValidHostname } from "../identity/self_description.ts";
import { fingerprint, fingerprintIn } from "../identity/fingerprint.ts";
import { type ErrorCode, invalid, PilotError } from "../errors.ts";
import { type EndpointSpec, looksLikeEndpoint, parseEndpoint } from "./endpoint.ts";
import type { Address } from "../identity/address.ts";

/** What the user asked for, classified. */
export type PeerQuery =
  | { kind: "endpoint"; endpoint: EndpointSpec }
  | { kind: "address"; address: Address }
  // A hostname that is also a fingerprint's text names whichever known key has that fingerprint.
  | { kind: "hostname"; hostname: string; fingerprint?: string }
  | { kind: "key"; keyHex: string };

/**
 * Every source of names, strongest first (docs/design/offline.md §5): a
 * trusted binding, the static `--peer` table, a live authenticated session
 * (answers by key or address only), the endpoint a trusted peer was last
 * authenticated at (`remembered`, carrying the trusted key), then the
 * discovery sources: signed LAN announcements, the rendezvous, the DHT.
 */
export const SOURCE_ORDER = [
  "trust",
  "static",
  "session",
  "remembered",
  "lan",
  "rendezvous",
  "dht",
] as const;

/** One source of names (see `SOURCE_ORDER`). */
export type SourceKind = (typeof SOURCE_ORDER)[number];

/** The sources that must be asked over the network; the daemon plugs them in. */
export type DiscoveryKind = "lan" | "rendezvous" | "dht";

const DISCOVERY: readonly DiscoveryKind[] = ["lan", "rendezvous", "dht"];
const LOCAL: ReadonlySet<SourceKind> = new Set(["trust", "static", "session", "remembered"]);

/** Which source's endpoint is tried first (lower first); names are decided by strength, not by this. */
const ENDPOINT_RANK: Readonly<Record<SourceKind, number>> = {
  session: 0,
  trust: 1,
  static: 2,
  remembered: 3,
  lan: 4,
  rendezvous: 5,
  dht: 6,
};

/** One answer from a source. */
export interface PeerCandidate {
  /** The source that answered. */
  source: SourceKind;
  /** The full key, when the source knows it. */
  publicKey?: Uint8Array;
  /** Where to send a handshake, per this source (a relay path for a private node). */
  endpoint?: EndpointSpec;
  /** The address it names; a claimant a rendezvous named without its record has only this. */
  address?: Address;
  /** The hostname its signed record claims. */
  hostname?: string;
  /** From a verified presence record: what it says of itself. */
  record?: { visibility: "public" | "private"; serial: number };
  /** Why this source gives no endpoint for it (a private node no rendezvous relays to now). */
  unreachable?: string;
}

/** A source of names that answers at once, from this node's own state. */
export interface ResolverSource {
  /** Candidates for a query (empty when the source knows nothing). */
  lookup(query: PeerQuery): PeerCandidate[];
}

/** What a discovery source found; `servers` when it asks several (the rendezvous). */
export interface DiscoveryAnswer {
  /** What it found, one entry per key (or per address a claimant is known by). */
  candidates: Omit<PeerCandidate, "source">[];
  /** How many servers it asked and how many answered in time. */
  servers?: { asked: number; answered: number };
}

/**
 * A discovery source: asks the network about a name (never the peer
 * itself). Empty when nothing is known; a throw or a timeout is reported as
 * that source's failure and hides no other source's answer.
 */
export type DiscoverySource = (
  query: PeerQuery,
  timeoutMs: number,
) => DiscoveryAnswer | Promise<DiscoveryAnswer>;

/** The discovery sources a node has; one left out is not configured there. */
export type DiscoverySources = Partial<Record<DiscoveryKind, DiscoverySource>>;

/**
 * How one source took a query: `answered` (candidates given), `none` (asked,
 * knows nothing), `failed` (threw or timed out), `skipped` (not needed: the
 * stronger sources settled it), `not_configured` (this node has no such source).
 */
export type SourceStatus = "answered" | "none" | "failed" | "skipped" | "not_configured";

/** What one source said about a query. */
export interface SourceAnswer {
  /** The source. */
  source: SourceKind;
  /** How it took the query. */
  status: SourceStatus;
  /** What it said (empty unless `answered`). */
  candidates: PeerCandidate[];
  /** Why it failed: its error's code, message and hint. */
  error?: { code: ErrorCode; message: string; hint: string };
  /** How many servers it asked and how many answered (the rendezvous). */
  servers?: { asked: number; answered: number };
}

/** A key (or, its record not given, an address) that claims a name. */
export interface Claimant {
  /** The key (hex), null for an address a rendezvous named as a claimant. */
  key: string | null;
  /** Its address, when a source said. */
  address: Address | null;
  /** Every source that named it, strongest first. */
  sources: SourceKind[];
}

/** What the merge rule decided for a query (`mergeCandidates`). */
export interface Decision {
  /** One key (or, for a keyless `--peer` name or an address, one name) decided; a conflict; or nothing. */
  outcome: "found" | "conflict" | "not_found";
  /** The key the handshake must meet (hex), when one is decided. */
  key: string | null;
  /** The strongest source behind the decision. */
  source: SourceKind | null;
  /** Where to send the handshake: the first source by endpoint rank that gives one. */
  endpoint: EndpointSpec | null;
  /** The source of `endpoint`. */
  endpointSource: SourceKind | null;
  /** The decided key is a trusted binding's. */
  trusted: boolean;
  /** The user named this exact key (see `Resolution.pinned`). */
  pinned: boolean;
  /** Every claimant of the name when more than one: why a conflict, or, when trust decided, the claims not followed. */
  claimants: Claimant[];
  /**
   * Trust decided a hostname or address that discovery sources now say only
   * other keys claim (like SSH's changed host key): the name still resolves
   * to the trusted key, and a handshake answered by another key is `key_changed`.
   */
  keyChanged: boolean;
  /** Why the decided key has no endpoint, when a source said. */
  unreachable: string | null;
}

/** Every source's answer to a query, and the merged decision. */
export interface Candidates {
  /** The classified query. */
  query: PeerQuery;
  /** Each source, in `SOURCE_ORDER`. */
  sources: SourceAnswer[];
  /** What the merge rule decided over every answer. */
  decision: Decision;
}

/** How `Resolver.candidates` asks. */
export interface CandidatesOptions {
  /** The longest any discovery source is waited for (ms). */
  timeoutMs: number;
  /** The node's discovery sources (none: only its own state is asked). */
  discovery?: DiscoverySources;
  /**
   * Ask every configured discovery source at once, as `pilot find` does.
   * Otherwise they are asked in order, and only while the answers so far do
   * not settle the query (`settled`).
   */
  thorough?: boolean;
}

/** The resolver's answer. */
export interface Resolution {
  /** The classified query. */
  query: PeerQuery;
  /** Where to send the handshake, when known. */
  endpoint?: EndpointSpec;
  /** Who must answer: full key when known, else the name itself. */
  expected: { publicKey?: Uint8Array; address?: Address; hostname?: string };
  /** The expected key is a trusted binding's. */
  trusted: boolean;
  /**
   * The user named this exact key: by full key, by address, or by a name
   * bound to a trusted key. A hostname from `--peer` or an endpoint is
   * trust on first use, not pinned; so is whatever a discovery source found.
   */
  pinned: boolean;
}

const HINT =
  "name a peer by address (3fa2.09c1.77e4), hostname, full key (64 hex digits) or endpoint (IP:PORT)";

/** Classifies peer text; throws `invalid_argument` for anything else. */
export function classifyPeer(text: string): PeerQuery {
  if (looksLikeEndpoint(text)) return { kind: "endpoint", endpoint: parseEndpoint(text) };
  if (/^[0-9a-fA-F]{64}$/.test(text)) return { kind: "key", keyHex: text.toLowerCase() };
  if (isAddressLike(text)) {
    try {
      return { kind: "address", address: parseAddress(text) };
    } catch (e) {
      throw invalid((e as Error).message, HINT);
    }
  }
  const fp = fingerprintIn(text);
  if (fp !== null) {
    return { kind: "hostname", hostname: isValidHostname(text) ? text : fp, fingerprint: fp };
  }
  if (isValidHostname(text)) return { kind: "hostname", hostname: text };
  throw invalid(`Cannot parse peer "${text}"`, HINT);
}

/** Distinct claimants: one per key, plus addresses named without a key that no key here holds. */
function claimantsOf(cs: readonly PeerCandidate[]): Claimant[] {
  const byKey = new Map<string, Claimant>();
  for (const c of cs) {
    if (c.publicKey === undefined) continue;
    const key = c.publicKey.toHex();
    const k = byKey.get(key) ?? { key, address: null, sources: [] };
    k.address ??= c.address ?? null;
    if (!k.sources.includes(c.source)) k.sources.push(c.source);
    byKey.set(key, k);
  }
  const keyed = [...byKey.values()];
  const held = new Set(keyed.map((k) => k.address));
  const byAddress = new Map<string, Claimant>();
  for (const c of cs) {
    if (c.publicKey !== undefined || c.address === undefined || held.has(c.address)) continue;
    const k = byAddress.get(c.address) ?? { key: null, address: c.address, sources: [] };
    if (!k.sources.includes(c.source)) k.sources.push(c.source);
    byAddress.set(c.address, k);
  }
  const all = [...keyed, ...byAddress.values()];
  for (const k of all) k.sources.sort((x, y) => SOURCE_ORDER.indexOf(x) - SOURCE_ORDER.indexOf(y));
  return all;
}

/**
 * The merge rule, the one both `pilot find` and a handshake by name use
 * (docs/design/offline.md §5):
 * - the strongest stage that knows the name decides it: this node's own
 *   sources (trust, `--peer`, sessions, remembered endpoints) first, the
 *   discovery sources (LAN, rendezvous, DHT) only when those know nothing;
 * - a name decided by trust is never overridden (other keys' claims are
 *   listed, and `keyChanged` when only other keys claim it);
 * - more than one key (or an address a rendezvous named as another
 *   claimant) is a `conflict`, never a guess: two trusted keys, or two keys
 *   among the other sources of the deciding stage;
 * - where to send the handshake is the first endpoint by `ENDPOINT_RANK`
 *   (session, `--peer`, remembered, LAN, rendezvous, DHT) among those of the
 *   decided key or of no key; the handshake still proves the key.
 *
 * @example
 * ```ts
 * import { mergeCandidates } from "./resolver.ts";
 * const d = mergeCandidates({ kind: "hostname", hostname: "build-box" }, [
 *   { source: "static", endpoint: { host: "127.0.0.1", port: 9 } },
 * ]);
 * d.outcome; // "found"
 * d.key; // null: a `--peer` name is trust on first use
 * ```
 */
export function mergeCandidates(query: PeerQuery, all: readonly PeerCandidate[]): Decision {
  const local = all.filter((c) => LOCAL.has(c.source));
  const knownLocally = local.some((c) => c.publicKey !== undefined || c.endpoint !== undefined) ||
    query.kind === "key";
  const deciding = knownLocally ? local : all;
  const trustedKeys = new Set(
    deciding.filter((c) => c.source === "trust").map((c) => c.publicKey!.toHex()),
  );
  const claimants = claimantsOf(deciding);
  const none: Decision = {
    outcome: "not_found",
    key: null,
    source: null,
    endpoint: null,
    endpointSource: null,
    trusted: false,
    pinned: false,
    claimants,
    keyChanged: false,
    unreachable: null,
  };
  if (trustedKeys.size > 1) {
    return {
      ...none,
      outcome: "conflict",
      claimants: claimants.filter((k) => k.key !== null && trustedKeys.has(k.key)),
      trusted: true,
    };
  }
  // A trusted binding wins over everything else: other claims are not followed.
  const trustedKey = [...trustedKeys][0];
  const keys = trustedKey === undefined
    ? claimants.map((k) => k.key ?? `address:${k.address}`)
    : [trustedKey];
  if (query.kind === "key" && !keys.includes(query.keyHex)) keys.push(query.keyHex);
  if (keys.length > 1) return { ...none, outcome: "conflict" };
  const key = keys[0];
  const mine = (c: PeerCandidate) => c.publicKey === undefined || c.publicKey.toHex() === key;
  const at = all
    .filter((c) => c.endpoint !== undefined && mine(c))
    .sort((x, y) => ENDPOINT_RANK[x.source] - ENDPOINT_RANK[y.source])[0];
  if (key === undefined && at === undefined) return none;
  const strongest = deciding.filter(mine)
    .sort((x, y) => SOURCE_ORDER.indexOf(x.source) - SOURCE_ORDER.indexOf(y.source))[0];
  const trusted = trustedKey !== undefined;
  const others = all.filter((c) => !LOCAL.has(c.source) && c.publicKey !== undefined);
  return {
    ...none,
    outcome: "found",
    key: key?.startsWith("address:") ? null : key ?? null,
    source: strongest?.source ?? null,
    endpoint: at?.endpoint ?? null,
    endpointSource: at?.source ?? null,
    trusted,
    pinned: trusted || (knownLocally && (query.kind === "key" || query.kind === "address")),
    claimants: trusted ? claimantsOf(all) : claimants,
    keyChanged: trusted && query.kind !== "key" && others.length > 0 &&
      !others.some((c) => c.publicKey!.toHex() === trustedKey),
    unreachable: at === undefined
      ? all.find((c) => mine(c) && c.unreachable !== undefined)?.unreachable ?? null
      : null,
  };
}

/**
 * Whether the answers so far settle a query, so that weaker discovery
 * sources need not be asked (`next`, the next one): a conflict is final; a
 * key with an endpoint is enough for a full key (a key names itself), and for
 * a hostname or address once the LAN and the rendezvous, which hold the
 * claims, have both been asked (a DHT hostname announce proves nothing, and by address
 * only endpoints).
 */
function settled(query: PeerQuery, d: Decision, next: DiscoveryKind): boolean {
  if (d.outcome === "conflict") return true;
  if (d.outcome !== "found" || d.endpoint === null) return false;
  return query.kind === "key" || next === "dht" || LOCAL.has(d.endpointSource!);
}

/**
 * How long past its own timeout a discovery source is waited for: each
 * bounds its own wait (and says so better); this only stops one that does not.
 */
const ASK_GRACE_MS = 1_000;

/** Asks one discovery source, bounded by `timeoutMs`; a throw or a timeout is its failure. */
async function ask(
  kind: DiscoveryKind,
  source: DiscoverySource,
  query: PeerQuery,
  timeoutMs: number,
): Promise<SourceAnswer> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new PilotError("timeout", `${kind} did not answer within ${timeoutMs} ms`)),
      Math.max(0, timeoutMs) + ASK_GRACE_MS,
    );
  });
  try {
    const got = await Promise.race([Promise.resolve().then(() => source(query, timeoutMs)), late]);
    const candidates = got.candidates.map((c) => ({ ...c, source: kind }));
    return {
      source: kind,
      status: candidates.length > 0 ? "answered" : "none",
      candidates,
      ...(got.servers === undefined ? {} : { servers: got.servers }),
    };
  } catch (e) {
    const error = e instanceof PilotError
      ? { code: e.code, message: e.message, hint: e.hint }
      : { code: "internal" as const, message: `${kind}: ${(e as Error)?.message ?? e}`, hint: "" };
    return { source: kind, status: "failed", candidates: [], error };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The resolution a decision stands for, for the peer text `text`: throws
 * `conflict`, or `not_found` (a failed discovery source's own error when one
 * failed), or `unreachable` when a key is known but no source can say where.
 */
export function resolutionOf(text: string, found: Candidates): Resolution {
  const { query, decision: d } = found;
  if (d.outcome === "conflict") {
    const named = d.claimants.map((k) => k.address ?? k.key!.slice(0, 16) + "…").join(", ");
    throw d.trusted
      ? new PilotError(
        "conflict",
        `"${text}" names ${d.claimants.length} trusted peers with different keys: ${named}`,
        "name the peer by its fingerprint or full key (see `pilot trust`)",
      )
      : new PilotError(
        "conflict",
        `"${text}" names ${d.claimants.length} different keys: ${named}`,
        "name the peer by its address or full key instead",
      );
  }
  if (d.outcome === "not_found") {
    const failed = found.sources.find((s) => s.status === "failed" && s.error?.code !== "internal");
    if (failed?.error !== undefined) {
      throw new PilotError(failed.error.code, failed.error.message, failed.error.hint);
    }
    const rendezvous = found.sources.find((s) => s.source === "rendezvous")?.servers;
    throw new PilotError(
      "not_found",
      `No known peer "${text}"${
        rendezvous === undefined || rendezvous.asked === 0
          ? ""
          : rendezvous.answered === 0
          ? " (no rendezvous answered)"
          : " (no rendezvous knows it)"
      }`,
      "give its endpoint (IP:PORT or HOST:PORT), or run `pilot peer add NAME ENDPOINT`",
    );
  }
  if (d.endpoint === null && d.unreachable !== null) {
    throw new PilotError(
      "unreachable",
      d.unreachable,
      "reach it through a rendezvous that holds its record, or ask it to run with --public",
    );
  }
  const expected: Resolution["expected"] = d.key !== null
    ? { publicKey: Uint8Array.fromHex(d.key) }
    : query.kind === "address"
    ? { address: query.address }
    : { hostname: (query as { hostname: string }).hostname };
  const base = { query, expected, trusted: d.trusted, pinned: d.pinned };
  return d.endpoint === null ? base : { ...base, endpoint: d.endpoint };
}

/** Resolves peer names through several sources. */
export class Resolver {
  #sources: ResolverSource[];

  /** Creates a resolver asking `sources` (in any order: strength decides, not order). */
  constructor(sources: ResolverSource[]) {
    this.#sources = sources;
  }

  /**
   * Resolves `text` from this node's own sources; `conflict` when a name is
   * ambiguous, `not_found` when none knows it (then ask `candidates` with
   * the discovery sources).
   */
  resolve(text: string): Resolution {
    const query = classifyPeer(text);
    if (query.kind === "endpoint") {
      return { query, endpoint: query.endpoint, expected: {}, trusted: false, pinned: false };
    }
    const found = this.#local(query);
    const key = found.decision.outcome === "found" ? found.decision.key : null;
    if (
      query.kind === "hostname" && query.fingerprint !== undefined && key !== null &&
      fingerprint(Uint8Array.fromHex(key)) === query.fingerprint
    ) {
      // A fingerprint named this exact key: resolved as the key is (sessions answer too).
      return resolutionOf(text, this.#local({ kind: "key", keyHex: key }));
    }
    return resolutionOf(text, found);
  }

  /**
   * Asks every source about `query`: this node's own at once, then the
   * discovery sources given (all at once with `thorough`, else in order
   * while the answers do not settle it). Each source's answer is kept, a
   * failing one's as its failure; `decision` is `mergeCandidates` over all.
   *
   * @example
   * ```ts
   * import { Resolver } from "./resolver.ts";
   * const found = await new Resolver([]).candidates(
   *   { kind: "hostname", hostname: "worker" },
   *   { timeoutMs: 1_000, discovery: { lan: () => ({ candidates: [] }) }, thorough: true },
   * );
   * found.sources.find((s) => s.source === "lan")?.status; // "none"
   * found.sources.find((s) => s.source === "dht")?.status; // "not_configured"
   * ```
   */
  async candidates(query: PeerQuery, options: CandidatesOptions): Promise<Candidates> {
    const found = this.#local(query);
    if (query.kind === "endpoint") return found;
    const deadline = Date.now() + options.timeoutMs;
    const discovery = options.discovery ?? {};
    const answers = new Map<DiscoveryKind, SourceAnswer>();
    const configured = DISCOVERY.filter((k) => discovery[k] !== undefined);
    for (const k of DISCOVERY) {
      if (!configured.includes(k)) {
        answers.set(k, { source: k, status: "not_configured", candidates: [] });
      }
    }
    const merged = () =>
      mergeCandidates(query, [
        ...found.sources.flatMap((s) => s.candidates),
        ...[...answers.values()].flatMap((s) => s.candidates),
      ]);
    if (options.thorough === true) {
      const got = await Promise.all(
        configured.map((k) => ask(k, discovery[k]!, query, deadline - Date.now())),
      );
      for (const a of got) answers.set(a.source as DiscoveryKind, a);
    } else {
      for (const k of configured) {
        if (settled(query, merged(), k)) {
          answers.set(k, { source: k, status: "skipped", candidates: [] });
        } else answers.set(k, await ask(k, discovery[k]!, query, deadline - Date.now()));
      }
    }
    return {
      query,
      sources: [...found.sources, ...DISCOVERY.map((k) => answers.get(k)!)],
      decision: merged(),
    };
  }

  /** This node's own sources' answers, merged. */
  #local(query: PeerQuery): Candidates {
    const said = query.kind === "endpoint" ? [] : this.#sources.flatMap((s) => s.lookup(query));
    const sources = SOURCE_ORDER.filter((k) => LOCAL.has(k)).map((k): SourceAnswer => {
      const candidates = said.filter((c) => c.source === k);
      return { source: k, status: candidates.length > 0 ? "answered" : "none", candidates };
    });
    return { query, sources, decision: mergeCandidates(query, said) };
  }
}

/** Whether a record with these names answers `query`. */
export function answers(
  query: PeerQuery,
  record: { keyHex: string; address: string; hostname: string | null },
): boolean {
  switch (query.kind) {
    case "key":
      return record.keyHex === query.keyHex;
    case "address":
      return record.address === query.address;
    case "hostname":
      return record.hostname === query.hostname ||
        (query.fingerprint !== undefined &&
          fingerprint(Uint8Array.fromHex(record.keyHex)) === query.fingerprint);
    case "endpoint":
      return false;
  }
}

/**
 * A source backed by the static `--peer NAME=ENDPOINT` table, read at every
 * lookup (`peer add` and `peer remove` change it while the daemon runs).
 */
export function staticSource(peers: Readonly<Record<string, string>>): ResolverSource {
  return {
    lookup(query) {
      if (query.kind !== "address" && query.kind !== "hostname") return [];
      const name = query.kind === "address" ? query.address : query.hostname;
      return Object.entries(peers)
        .filter(([n]) => (isAddressLike(n) ? parseAddress(n) : n) === name)
        .map(([, ep]) => ({ source: "static", endpoint: parseEndpoint(ep) }));
    },
  };
}
