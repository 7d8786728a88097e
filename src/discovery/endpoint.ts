/**
 * UDP endpoints and their text syntax: `IP:PORT`, `[IPv6]:PORT`, or
 * `udp://HOST:PORT`. The syntax never overlaps with addresses or hostnames.
 *
 * @module
 */
import { isIP } from "node:net";
import { lookup } from "node:dns/promises";
import { invalid } from "../errors.ts";

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

const HINT = "write an endpoint as IP:PORT, [IPv6]:PORT or udp://HOST:PORT";

function parsePort(text: string, whole: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw invalid(`Cannot parse endpoint "${whole}": port must be 1-65535`, HINT);
  }
  return Number(text);
}

/** Tells whether `text` is written as an endpoint (rather than an address or hostname). */
export function looksLikeEndpoint(text: string): boolean {
  return text.startsWith("udp://") || text.startsWith("[") || /^[0-9.]+:\d+$/.test(text);
}

/** Parses endpoint text; throws `invalid_argument` with a hint on anything else. */
export function parseEndpoint(text: string): EndpointSpec {
  let rest = text;
  const scheme = rest.startsWith("udp://");
  if (scheme) rest = rest.slice(6);
  const v6 = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(rest);
  if (v6) {
    if (isIP(v6[1]!) !== 6) throw invalid(`Cannot parse endpoint "${text}": bad IPv6`, HINT);
    return { host: v6[1]!.toLowerCase(), port: parsePort(v6[2]!, text) };
  }
  const colon = rest.lastIndexOf(":");
  if (colon <= 0) throw invalid(`Cannot parse endpoint "${text}": missing :PORT`, HINT);
  const host = rest.slice(0, colon);
  const port = parsePort(rest.slice(colon + 1), text);
  if (isIP(host) === 4) return { host, port };
  if (scheme && /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9-]{1,63})*$/.test(host)) {
    return { host: host.toLowerCase(), port };
  }
  throw invalid(`Cannot parse endpoint "${text}": "${host}" is not an IP address`, HINT);
}

/** Resolves a DNS name in an endpoint to an IP (literal IPs pass through). */
export async function resolveEndpoint(spec: EndpointSpec): Promise<Endpoint> {
  if (isIP(spec.host) !== 0) return { hostname: spec.host, port: spec.port };
  try {
    const { address } = await lookup(spec.host);
    return { hostname: address, port: spec.port };
  } catch {
    throw invalid(`Cannot resolve "${spec.host}"`, "check the name, or give an IP address");
  }
}

/** Canonical text of an endpoint: `1.2.3.4:5` or `[::1]:5`. */
export function formatEndpoint(e: Endpoint): string {
  return isIP(e.hostname) === 6 ? `[${e.hostname}]:${e.port}` : `${e.hostname}:${e.port}`;
}
