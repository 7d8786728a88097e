/**
 * UDP endpoints on the wire: a family byte (4 or 6), the IP (4 or 16
 * bytes), and the port (u16, 1 to 65535). Presence records and rendezvous
 * messages carry endpoints this way; IPv6 text is written in RFC 5952 form.
 *
 * @module
 */
import { DecodeError, type Reader, type Writer } from "../bytes.ts";

/** An endpoint as these codecs carry it: an IP literal (no brackets) and a port. */
export interface IpEndpoint {
  /** IPv4 or IPv6 literal. */
  hostname: string;
  /** UDP port, 1 to 65535. */
  port: number;
}

/** Bytes of the largest endpoint (IPv6). */
export const MAX_ENDPOINT_SIZE = 1 + 16 + 2;

/** Appends `e`; throws `RangeError` for a port out of range or a host that is not an IP literal. */
export function writeEndpoint(w: Writer, e: IpEndpoint): Writer {
  if (!Number.isInteger(e.port) || e.port < 1 || e.port > 65535) {
    throw new RangeError(`Invalid endpoint port ${e.port}: expected 1 to 65535`);
  }
  const ip = ipBytes(e.hostname);
  return w.u8(ip.length === 4 ? 4 : 6).bytes(ip).u16(e.port);
}

/** Reads an endpoint; throws {@linkcode DecodeError} (`bad_endpoint`, or the reader's own). */
export function readEndpoint(r: Reader, what: string): IpEndpoint {
  const family = r.u8(`${what} family`);
  if (family !== 4 && family !== 6) {
    throw new DecodeError("bad_endpoint", `Cannot decode ${what}: family ${family}`);
  }
  const ip = r.bytes(family === 4 ? 4 : 16, `${what} IP`);
  const port = r.u16(`${what} port`);
  if (port === 0) throw new DecodeError("bad_endpoint", `Cannot decode ${what}: port 0`);
  return { hostname: family === 4 ? Array.from(ip).join(".") : ipv6Text(ip), port };
}

const OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]\\d|\\d)";
const IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}$`);
const IPV6_GROUP = /^[0-9a-fA-F]{1,4}$/;
const IPV6_ZONE = /^[0-9a-zA-Z\-.:]+$/;

function isIPv4(text: string): boolean {
  return IPV4.test(text);
}

function isIPv6(text: string): boolean {
  const percent = text.indexOf("%");
  if (percent >= 0 && !IPV6_ZONE.test(text.slice(percent + 1))) return false;
  let s = percent >= 0 ? text.slice(0, percent) : text;
  // A dotted IPv4 tail (::ffff:192.0.2.1) stands for the last two groups.
  let tailGroups = 0;
  const lastColon = s.lastIndexOf(":");
  if (lastColon >= 0 && s.indexOf(".", lastColon) >= 0) {
    if (!isIPv4(s.slice(lastColon + 1))) return false;
    s = s.slice(0, lastColon + 1) + "0";
    tailGroups = 1;
  }
  const halves = s.split("::");
  if (halves.length > 2) return false;
  const groupsOf = (part: string) => part === "" ? [] : part.split(":");
  const groups = halves.flatMap(groupsOf);
  if (!groups.every((g) => IPV6_GROUP.test(g))) return false;
  const count = groups.length + tailGroups;
  return halves.length === 2 ? count <= 7 : count === 8;
}

/**
 * 4 for an IPv4 literal (dotted decimal, no leading zeros), 6 for an IPv6
 * literal (with `::`, a dotted IPv4 tail or a `%zone`), else 0: what
 * `node:net`'s `isIP` answers, without loading `node:net`.
 */
export function ipFamily(text: string): 0 | 4 | 6 {
  if (isIPv4(text)) return 4;
  return text.includes(":") && isIPv6(text) ? 6 : 0;
}

/** The 4 or 16 bytes of an IP literal; throws `RangeError` for anything else. */
export function ipBytes(text: string): Uint8Array {
  const family = ipFamily(text);
  if (family === 4) return Uint8Array.from(text.split(".").map(Number));
  if (family === 6) return ipv6Bytes(text);
  throw new RangeError(`Invalid endpoint IP "${text}": expected an IPv4 or IPv6 literal`);
}

function ipv6Bytes(text: string): Uint8Array {
  let s = text.toLowerCase();
  const out = new Uint8Array(16);
  // A dotted IPv4 tail (::ffff:192.0.2.1) is two more groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (dotted) {
    const v4 = dotted[1]!.split(".").map(Number);
    s = s.slice(0, -dotted[1]!.length) +
      `${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes("::") ? s.split("::") : [s, undefined];
  const groups = (part: string | undefined) => part ? part.split(":") : [];
  const left = groups(head);
  const right = groups(tail);
  const all = tail === undefined
    ? left
    : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** RFC 5952 text: lowercase, no leading zeros, the longest run of two or more zero groups as `::`. */
function ipv6Text(b: Uint8Array): string {
  const groups = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  let bestAt = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestAt = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLength))}`;
}
