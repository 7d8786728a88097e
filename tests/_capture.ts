/**
 * Packet capture in a lab namespace: `tcpdump -i any -w FILE` started in
 * the namespace (so it sees every interface there, loopback included; not
 * Unix sockets, which the CLI uses to reach its daemon), and a reader for
 * what it wrote (classic pcap, Linux cooked SLL or SLL2 frames).
 *
 * @module
 */
import { join } from "node:path";

/** The link-layer protocol numbers {@linkcode Capture.packets} reports. */
export const ETHERTYPE = { ipv4: 0x0800, arp: 0x0806, ipv6: 0x86dd } as const;

/** One captured frame. */
export interface CapturedPacket {
  /** The link-layer protocol (ethertype): see {@linkcode ETHERTYPE}. */
  protocol: number;
  /** The frame as captured, link-layer header included. */
  bytes: Uint8Array;
}

/** Why tcpdump cannot capture here, or null when it can. */
export async function tcpdumpUnavailable(): Promise<string | null> {
  try {
    const out = await new Deno.Command("tcpdump", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.code === 0 ? null : `"tcpdump --version" failed (exit ${out.code})`;
  } catch {
    return "needs tcpdump to capture what a namespace receives: it is not installed";
  }
}

/**
 * One tcpdump writing everything namespace `ns` sees to a file in a
 * temporary directory. Start with {@linkcode Capture.start}; stop with
 * {@linkcode Capture.stop}, which flushes the file; {@linkcode Capture.close}
 * (or `await using`) stops it if needed and removes the directory.
 */
export class Capture implements AsyncDisposable {
  /** The namespace captured (null: the host's own). */
  readonly ns: string | null;
  /** The temporary directory holding the capture file. */
  readonly dir: string;
  /** The capture file. */
  readonly file: string;
  #child: Deno.ChildProcess;
  #stderr: Promise<string>;
  #stopped: Promise<Deno.CommandStatus> | undefined;

  private constructor(
    ns: string | null,
    dir: string,
    child: Deno.ChildProcess,
    stderr: Promise<string>,
  ) {
    this.ns = ns;
    this.dir = dir;
    this.file = join(dir, "capture.pcap");
    this.#child = child;
    this.#stderr = stderr;
  }

  /** The tcpdump process id (`ip netns exec` execs it, so it is the child itself). */
  get pid(): number {
    return this.#child.pid;
  }

  /**
   * Starts tcpdump in `ns` (null: this host's own namespace),
   * capturing what the pcap `filter` words select (everything by default),
   * and waits until it says it is listening (at most 10 s).
   */
  static async start(ns: string | null, filter: string[] = []): Promise<Capture> {
    const dir = await Deno.makeTempDir({ prefix: "pilot-capture-" });
    // --immediate-mode: the kernel hands over each packet at once (else the
    // last ring block, up to a second of packets, can be lost at the stop);
    // -U: each is written as it comes; -s 0: whole frames; -n: no name
    // lookups leaving the lab.
    const inNs = ns === null ? [] : ["ip", "netns", "exec", ns];
    const child = new Deno.Command(inNs[0] ?? "tcpdump", {
      args: [
        ...inNs.slice(1),
        ...(ns === null ? [] : ["tcpdump"]),
        "--immediate-mode",
        "-i",
        "any",
        "-n",
        "-U",
        "-s",
        "0",
        "-w",
        join(dir, "capture.pcap"),
        ...filter,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let listening: (ok: boolean) => void = () => {};
    const ready = new Promise<boolean>((r) => listening = r);
    const stderr = (async () => {
      let text = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        text += chunk;
        if (text.includes("listening on")) listening(true);
      }
      listening(false);
      return text;
    })();
    const timer = setTimeout(() => listening(false), 10_000);
    const ok = await ready;
    clearTimeout(timer);
    const capture = new Capture(ns, dir, child, stderr);
    if (!ok) {
      await capture.close();
      throw new Error(`tcpdump in ${ns} did not start: ${await stderr}`);
    }
    return capture;
  }

  /** Stops tcpdump (SIGINT: it flushes and closes the file) and waits for it to exit. */
  stop(): Promise<Deno.CommandStatus> {
    if (this.#stopped === undefined) {
      try {
        this.#child.kill("SIGINT");
      } catch {
        // It exited already (the lab killed everything in the namespace).
      }
      this.#stopped = Promise.all([this.#child.status, this.#stderr]).then(([s]) => s);
    }
    return this.#stopped;
  }

  /** The frames captured; call after {@linkcode Capture.stop}. */
  async packets(): Promise<CapturedPacket[]> {
    return parsePcap(await Deno.readFile(this.file));
  }

  /** Stops tcpdump if it still runs and removes the directory. */
  async close(): Promise<void> {
    await this.stop();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  /** Same as {@linkcode Capture.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_LINUX_SLL2 = 276;

/** Splits a classic pcap file into frames with their link-layer protocol. */
export function parsePcap(file: Uint8Array): CapturedPacket[] {
  if (file.length < 24) throw new RangeError(`Cannot parse a pcap file of ${file.length} bytes`);
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const magic = view.getUint32(0, true);
  const little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (
    !little && view.getUint32(0, false) !== 0xa1b2c3d4 && view.getUint32(0, false) !== 0xa1b23c4d
  ) {
    throw new RangeError(`Cannot parse pcap magic 0x${magic.toString(16)}: expected 0xa1b2c3d4`);
  }
  const linktype = view.getUint32(20, little) & 0x0fff_ffff;
  if (linktype !== LINKTYPE_LINUX_SLL && linktype !== LINKTYPE_LINUX_SLL2) {
    throw new RangeError(`Cannot parse link type ${linktype}: expected Linux cooked (113 or 276)`);
  }
  const packets: CapturedPacket[] = [];
  let at = 24;
  while (at + 16 <= file.length) {
    const length = view.getUint32(at + 8, little);
    const start = at + 16;
    // A frame cut off by the stop is still searched as far as it got.
    const bytes = file.subarray(start, Math.min(start + length, file.length));
    const offset = linktype === LINKTYPE_LINUX_SLL ? 14 : 0;
    const protocol = bytes.length >= offset + 2 ? (bytes[offset]! << 8) | bytes[offset + 1]! : -1;
    packets.push({ protocol, bytes });
    at = start + length;
  }
  return packets;
}

/** IPv4 address `dotted` as its 4 bytes. */
export function ipv4Bytes(dotted: string): Uint8Array {
  const parts = dotted.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new TypeError(`Cannot parse IPv4 address "${dotted}": expected four numbers 0-255`);
  }
  return new Uint8Array(parts);
}

/** Whether `needle` occurs in `haystack`. */
export function containsBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  const first = needle[0];
  outer: for (let i = haystack.indexOf(first!); i >= 0; i = haystack.indexOf(first!, i + 1)) {
    if (i + needle.length > haystack.length) return false;
    for (let j = 1; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** Whether `text` names IPv4 address `dotted` (not as the start of a longer address). */
export function mentionsIp(text: string, dotted: string): boolean {
  const escaped = dotted.replaceAll(".", "\\.");
  return new RegExp(`(^|[^0-9.])${escaped}($|[^0-9])`).test(text);
}
