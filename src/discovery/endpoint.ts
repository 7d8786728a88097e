/**
 * UDP endpoints and their text syntax: `IP:PORT`, `[IPv6]:PORT`,
 * `HOST:PORT` with a DNS name, or `udp://HOST:PORT`. The syntax never
 * overlaps with addresses (with or without a virtual port), hostnames,
 * fingerprints or keys: none of those has a single colon after a host.
 *
 * @module
 */
import { invalid } from "../errors.ts";
import { ipFamily } from "../wire/ip_endpoint.ts";
import { type Address, isAddressLike, parseAddress } from "../identity/address.ts";

/** A UDP endpoint with a literal IP. */
export interface Endpoint {
  /** IPv4 or IPv6 literal (no brackets). */
  hostname: string;
  /** UDP port 1..65535. */
  port: number;
}

/** An endpoint as typed, whose host may still need a DNS lookup. */
export interface EndpointSpec {
  /** IP literal or DNS name. */
  host: string;
  /** UDP port. */
  port: number;
}

const HINT = "write an endpoint as IP:PORT, [IPv6]:PORT, HOST:PORT or udp://HOST:PORT";

/** A DNS name: dot-separated labels of letters, digits and inner hyphens (RFC 1123). */
const DNS_NAME =
  /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

function parsePort(text: string, whole: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw invalid(`Cannot parse endpoint "${whole}": port must be 1-65535`, HINT);
  }
  return Number(text);
}

/**
 * Tells whether `text` is written as an endpoint (rather than an address,
 * hostname, fingerprint or key): a scheme, a bracket, or one colon after a
 * host that is not an address (`3fa2.09c1.77e4:1001` is an address with a
 * virtual port). A bad port still counts, so `parseEndpoint` says what is wrong.
 *
 * @example
 * ```ts
 * import { looksLikeEndpoint } from "./endpoint.ts";
 * looksLikeEndpoint("worker.example.com:4000"); // true
 * looksLikeEndpoint("3fa2.09c1.77e4:1001"); // false
 * ```
 */
export function looksLikeEndpoint(text: string): boolean {
  if (text.startsWith("udp://") || text.startsWith("[")) return true;
  const m = /^([^:[\]/\s]+):[^:]*$/.exec(text);
  return m !== null && !isAddressLike(m[1]!);
}

/** Parses endpoint text; throws `invalid_argument` with a hint on anything else. */
export function parseEndpoint(text: string): EndpointSpec {
  let rest = text;
  const scheme = rest.startsWith("udp://");
  if (scheme) rest = rest.slice(6);
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(rest);
  if (v6) {
    if (ipFamily(v6[1]!) !== 6) throw invalid(`Cannot parse endpoint "${text}": bad IPv6`, HINT);
    return { host: v6[1]!.toLowerCase(), port: parsePort(v6[2]!, text) };
  }
  const colon = rest.lastIndexOf(":");
  if (colon <= 0) throw invalid(`Cannot parse endpoint "${text}": missing :PORT`, HINT);
  const host = rest.slice(0, colon);
  const port = parsePort(rest.slice(colon + 1), text);
  if (ipFamily(host) === 4) return { host, port };
  if (!scheme && isAddressLike(host)) {
    throw invalid(
      `Cannot parse endpoint "${text}": "${host}" is a Pilot address, not a host`,
      "name a peer by its address alone; an endpoint is IP:PORT or HOST:PORT",
    );
  }
  // All digits and dots is a (bad) IPv4 literal, never a DNS name.
  if (!/^[\d.]+$/.test(host) && DNS_NAME.test(host)) return { host: host.toLowerCase(), port };
  throw invalid(
    `Cannot parse endpoint "${text}": "${host}" is not an IP address or DNS name`,
    HINT,
  );
}

/** Resolves a DNS name in an endpoint to an IP (literal IPs and relay paths pass through). */
export async function resolveEndpoint(spec: EndpointSpec): Promise<Endpoint> {
  if (ipFamily(spec.host) !== 0 || spec.port === RELAY_PORT) {
    return { hostname: spec.host, port: spec.port };
  }
  try {
    // node:dns loads only when a name needs resolving.
    const { lookup } = await import("node:dns/promises");
    const { address } = await lookup(spec.host);
    return { hostname: address, port: spec.port };
  } catch {
    throw invalid(`Cannot resolve "${spec.host}"`, "check the name, or give an IP address");
  }
}

/** Whether `host` is a loopback address (127.0.0.0/8, ::1): traffic there never leaves the host. */
export function isLoopbackHost(host: string): boolean {
  return host.startsWith("127.") || host === "::1";
}

/** Canonical text of an endpoint: `1.2.3.4:5`, `[::1]:5`, or a relay path's `relay/VIA/PEER`. */
export function formatEndpoint(e: Endpoint): string {
  if (e.port === RELAY_PORT) return e.hostname;
  return ipFamily(e.hostname) === 6 ? `[${e.hostname}]:${e.port}` : `${e.hostname}:${e.port}`;
}

/**
 * The port of a relay path. No UDP endpoint has it (ports are 1 to 65535,
 * and nothing parses port 0), so a relay path can never be typed, remembered
 * or sent to as UDP by mistake.
 */
export const RELAY_PORT = 0;

/** A path through a rendezvous: who forwards (`via`), and to whom (`peer`). */
export interface RelayPath {
  /** The rendezvous's address. */
  via: Address;
  /** The peer's address. */
  peer: Address;
}

/**
 * The endpoint of a relayed path, as the session layer sees it: frames for
 * it go to the rendezvous `via`, which forwards them to `peer`. Its text
 * (`relay/VIA/PEER`) keys per-source state like an IP:PORT does, one per
 * relayed peer.
 */
export function relayEndpoint(path: RelayPath): Endpoint {
  return { hostname: `relay/${path.via}/${path.peer}`, port: RELAY_PORT };
}

/** The relay path an endpoint names, or null for a UDP endpoint. */
export function relayPathOf(e: Endpoint | EndpointSpec): RelayPath | null {
  if (e.port !== RELAY_PORT) return null;
  const text = "hostname" in e ? e.hostname : e.host;
  const [kind, via, peer, ...rest] = text.split("/");
  if (kind !== "relay" || via === undefined || peer === undefined || rest.length > 0) return null;
  try {
    return { via: parseAddress(via), peer: parseAddress(peer) };
  } catch {
    return null;
  }
}
