/**
 * Raises a UDP socket's kernel buffers, which Deno's datagram API cannot set.
 *
 * The usual Linux default (net.core.rmem_default, 212,992 bytes) holds three
 * 60 KB datagrams or about 166 small ones: a stream's burst, or a flood of
 * message 1s arriving faster than the event loop reads them for a few
 * milliseconds, overflows it, and the kernel then drops a trusted peer's
 * packets with the attacker's. Like wireguard-go, the daemon asks for larger
 * buffers: first with SO_RCVBUFFORCE / SO_SNDBUFFORCE (Linux, which need
 * CAP_NET_ADMIN and ignore net.core.rmem_max), then with SO_RCVBUF /
 * SO_SNDBUF (capped by rmem_max / wmem_max). The socket's descriptor is
 * found by its bound address (getsockname), through the C library (Deno's
 * FFI, which needs `--allow-ffi`). Nothing here is required: without the
 * permission, on another system, or when the calls fail, the socket keeps
 * its defaults and {@linkcode SocketBuffers.why} says why.
 *
 * @module
 */
import type { Endpoint } from "../discovery/endpoint.ts";
import { ipBytes, ipFamily } from "../wire/ip_endpoint.ts";
import { openLibc } from "./_libc.ts";

/** A socket's buffers as the kernel reports them (Linux reports twice what was set: its bookkeeping share). */
export interface SocketBuffers {
  /** Receive buffer, bytes. */
  receive: number;
  /** Send buffer, bytes; null when it could not be read. */
  send: number | null;
  /** Whether the receive buffer is now larger than the system's default. */
  raised: boolean;
  /** Why the buffers were not raised, when they were not. */
  why?: string;
}

/** What differs between the systems the program runs on. */
interface Platform {
  solSocket: number;
  soType: number;
  soReceive: number;
  soSend: number;
  /** Options that exceed the system's maximum (Linux, with CAP_NET_ADMIN). */
  soReceiveForce?: number;
  soSendForce?: number;
  inet: number;
  inet6: number;
  /** How many times what was set the kernel reports (Linux keeps a bookkeeping share). */
  reported: number;
  /** The setting that caps a socket's buffers, for the hint. */
  maximum: string;
  /** The address family of a sockaddr. */
  family(sockaddr: Uint8Array): number;
}

const SOCK_DGRAM = 2;

const PLATFORMS: Partial<Record<typeof Deno.build.os, Platform>> = {
  linux: {
    solSocket: 1,
    soType: 3,
    soReceive: 8,
    soSend: 7,
    soReceiveForce: 33,
    soSendForce: 32,
    inet: 2,
    inet6: 10,
    reported: 2,
    maximum: "net.core.rmem_max",
    family: (a) => a[0]! | (a[1]! << 8),
  },
  darwin: {
    solSocket: 0xffff,
    soType: 0x1008,
    soReceive: 0x1002,
    soSend: 0x1001,
    inet: 2,
    inet6: 30,
    reported: 1,
    maximum: "kern.ipc.maxsockbuf",
    // BSD's sockaddr starts with its length, then a one-byte family.
    family: (a) => a[1]!,
  },
};

/** {@linkcode SocketBuffers.why} when the system's default needed no raising. */
export const DEFAULT_LARGE_ENOUGH = "the system's default is already as large";

/** Descriptors searched for the socket, at most: a daemon holds a few dozen. */
const MAX_FD = 4096;

const SYMBOLS = {
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

function bytesOf(view: Int32Array | Uint32Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(view.buffer as ArrayBuffer);
}

function getInt(libc: Libc, p: Platform, fd: number, option: number): number | null {
  const value = new Int32Array(1);
  const length = new Uint32Array([4]);
  return libc.getsockopt(fd, p.solSocket, option, bytesOf(value), bytesOf(length)) === 0
    ? value[0]!
    : null;
}

function setInt(libc: Libc, p: Platform, fd: number, option: number, value: number): boolean {
  return libc.setsockopt(fd, p.solSocket, option, bytesOf(new Int32Array([value])), 4) === 0;
}

/** The descriptor of the datagram socket bound to `local`, or null. */
function findSocket(libc: Libc, p: Platform, local: Endpoint): number | null {
  // An address it cannot read (a zoned IPv6 one) is matched by port and type alone.
  let ip: Uint8Array | null = null;
  try {
    if (ipFamily(local.hostname) !== 0) ip = ipBytes(local.hostname);
  } catch {
    ip = null;
  }
  const sockaddr = new Uint8Array(128);
  const length = new Uint32Array(1);
  for (let fd = 0; fd < MAX_FD; fd++) {
    length[0] = sockaddr.length;
    if (libc.getsockname(fd, sockaddr, bytesOf(length)) !== 0) continue;
    const family = p.family(sockaddr);
    if (family !== p.inet && family !== p.inet6) continue;
    if (((sockaddr[2]! << 8) | sockaddr[3]!) !== local.port) continue;
    // The address: after the port in sockaddr_in, after the flow label in sockaddr_in6.
    const at = family === p.inet ? 4 : 8;
    if (ip !== null && (ip.length === 4) !== (family === p.inet)) continue;
    if (ip !== null && !ip.every((b, i) => sockaddr[at + i] === b)) continue;
    if (getInt(libc, p, fd, p.soType) !== SOCK_DGRAM) continue;
    return fd;
  }
  return null;
}

/**
 * Whether a buffer the kernel reports at `current` bytes should be set to
 * `bytes`: only when that makes it larger. A system whose default is
 * already larger (`sysctl net.core.rmem_default`) keeps it.
 */
export function raises(current: number | null, bytes: number, reported: number): boolean {
  return current === null || current < bytes * reported;
}

/**
 * Sets one buffer to `bytes`, forcing past the system's maximum where
 * allowed, unless it is already at least as large.
 */
function raise(
  libc: Libc,
  p: Platform,
  fd: number,
  option: number,
  force: number | undefined,
  bytes: number,
): void {
  if (!raises(getInt(libc, p, fd, option), bytes, p.reported)) return;
  if (force !== undefined && setInt(libc, p, fd, force, bytes)) return;
  setInt(libc, p, fd, option, bytes);
}

/** Runs `use` with the C library and the socket bound to `local`, or returns why it cannot. */
function withSocket<T>(
  local: Endpoint,
  use: (libc: Libc, p: Platform, fd: number) => T,
): T | string {
  const p = PLATFORMS[Deno.build.os];
  if (p === undefined) return `not supported on ${Deno.build.os}`;
  const library = openLibc(SYMBOLS);
  if (typeof library === "string") return library;
  try {
    const fd = findSocket(library.symbols, p, local);
    return fd === null ? "the socket's descriptor was not found" : use(library.symbols, p, fd);
  } finally {
    library.close();
  }
}

/** The buffers of the UDP socket bound to `local` (receive, send), or why they cannot be read. */
export function readSocketBuffers(local: Endpoint): { receive: number; send: number } | string {
  return withSocket(local, (libc, p, fd) => {
    const receive = getInt(libc, p, fd, p.soReceive);
    const send = getInt(libc, p, fd, p.soSend);
    return receive === null || send === null ? "getsockopt failed" : { receive, send };
  });
}

/**
 * Asks the kernel for `bytes` of receive and send buffer on the UDP socket
 * bound to `local`, and reports what the socket has afterwards.
 * `defaultReceive` is the receive buffer a new socket gets, so that
 * `raised` says whether anything changed.
 */
export function raiseSocketBuffers(
  local: Endpoint,
  options: { bytes: number; defaultReceive: number },
): SocketBuffers {
  const done = withSocket(local, (libc, p, fd): SocketBuffers => {
    raise(libc, p, fd, p.soReceive, p.soReceiveForce, options.bytes);
    raise(libc, p, fd, p.soSend, p.soSendForce, options.bytes);
    const receive = getInt(libc, p, fd, p.soReceive) ?? options.defaultReceive;
    const send = getInt(libc, p, fd, p.soSend);
    if (receive > options.defaultReceive) return { receive, send, raised: true };
    return {
      receive,
      send,
      raised: false,
      why: receive >= options.bytes * p.reported
        ? DEFAULT_LARGE_ENOUGH
        : `the system's maximum (${p.maximum}) allows no more` +
          (p.soReceiveForce === undefined
            ? ""
            : ", and the daemon lacks CAP_NET_ADMIN to force it"),
    };
  });
  return typeof done === "string"
    ? { receive: options.defaultReceive, send: null, raised: false, why: done }
    : done;
}
