/**
 * Network lab: real `pilot` daemons in Linux network namespaces, joined by
 * veth pairs through a router namespace that forwards and NATs (nftables
 * masquerade), as a home router does:
 *
 * ```
 *  A (private)              R (router, NAT)                 B (public)
 *  198.18.1.2 --veth-- 198.18.1.1 | 198.18.2.1 --veth-- 198.18.2.2
 *  default via 198.18.1.1           masquerade out of r-b      no route back to A
 * ```
 *
 * Addresses come only from 198.18.0.0/15 (RFC 2544 benchmarking space), and
 * only inside namespaces the lab creates (`pilot-<random>-{a,r,b}`) and
 * deletes. Needs root, iproute2 and nftables; {@linkcode netlabUnavailable}
 * tells the tests why they must skip otherwise.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type HomeOptions, makeHome, type PilotResult, waitFor } from "./_daemon_harness.ts";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const MAIN = join(ROOT, "main.ts");
const CONFIG = join(ROOT, "deno.json");

/** The private node's address (namespace A). */
export const PRIVATE_IP = "198.18.1.2";
/** The router's address on the private side: A's default gateway. */
export const ROUTER_PRIVATE_IP = "198.18.1.1";
/** The router's external address: what B sees as A's source until a rebinding. */
export const ROUTER_PUBLIC_IP = "198.18.2.1";
/** The router's external address after {@linkcode NetLab.rebindNat}. */
export const ROUTER_REBOUND_IP = "198.18.2.3";
/** The public node's address (namespace B). */
export const PUBLIC_IP = "198.18.2.2";
/** External UDP source ports the NAT maps to before a rebinding. */
export const NAT_PORTS = { min: 40_000, max: 40_999 } as const;
/** External UDP source ports the NAT maps to after a rebinding. */
export const REBOUND_NAT_PORTS = { min: 50_000, max: 50_999 } as const;

// The router's interfaces: towards A (private) and towards B (public, NAT'd).
const ROUTER_TO_A = "r-a";
const ROUTER_TO_B = "r-b";
const NAT_TABLE = "pilot_nat";

/** What a command run in a namespace printed and returned. */
export interface RunResult {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/** Options of {@linkcode run} and {@linkcode pilot}. */
export interface RunOptions {
  /** The child is killed after this long (ms, default 30 000): a hung command must not hang the suite. */
  timeoutMs?: number;
}

// The tests decide every input; a developer's PILOT_* settings must not leak in.
function childEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const k of Object.keys(env)) if (k.startsWith("PILOT_")) delete env[k];
  return env;
}

async function exec(cmd: string[], options: RunOptions & { stdin?: string } = {}) {
  const [program, ...args] = cmd;
  if (program === undefined) throw new TypeError("Cannot run an empty command");
  const child = new Deno.Command(program, {
    args,
    clearEnv: true,
    env: childEnv(),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const out = await child.output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/** Runs `cmd` inside namespace `ns` (`ip netns exec NS ...`) and waits for it to exit. */
export function run(ns: string, cmd: string[], options: RunOptions = {}): Promise<RunResult> {
  return exec(["ip", "netns", "exec", ns, ...cmd], options);
}

/** Like {@linkcode run}, but throws with the command's output unless it exits 0. */
export async function runOk(ns: string, cmd: string[], options: RunOptions = {}): Promise<string> {
  const r = await run(ns, cmd, options);
  if (r.code !== 0) {
    throw new Error(`"${cmd.join(" ")}" in ${ns} failed (exit ${r.code}): ${r.stderr}${r.stdout}`);
  }
  return r.stdout;
}

/** Runs `ip ARGS` in the host's namespace; throws with its stderr unless it exits 0. */
export async function ip(args: string[]): Promise<void> {
  const r = await exec(["ip", ...args]);
  if (r.code !== 0) throw new Error(`"ip ${args.join(" ")}" failed (exit ${r.code}): ${r.stderr}`);
}

/** Loads nftables `script` (`nft -f -`) in namespace `ns`; throws with the script if refused. */
export async function nft(ns: string, script: string): Promise<void> {
  const r = await exec(["ip", "netns", "exec", ns, "nft", "-f", "-"], { stdin: script });
  if (r.code !== 0) throw new Error(`nft in ${ns} refused the ruleset: ${r.stderr}\n${script}`);
}

/**
 * Runs `pilot --home HOME ARGS` inside namespace `ns`. The control API
 * listens on 127.0.0.1 of the daemon's namespace, so the CLI must run there too.
 */
export async function pilot(ns: string, home: string, ...args: string[]): Promise<PilotResult> {
  const cli = [Deno.execPath(), "run", "--allow-all", "--config", CONFIG, MAIN, "--home", home];
  // Longer than any CLI timeout the tests pass, so the CLI reports its own timeouts.
  const r = await run(ns, [...cli, ...args], { timeoutMs: 60_000 });
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    json = undefined;
  }
  return { ...r, json };
}

/**
 * Why the lab cannot run here, or null when it can: needs root, `ip` and
 * `nft`, and a kernel that lets us make a namespace with an nftables NAT.
 */
export async function netlabUnavailable(): Promise<string | null> {
  if (Deno.build.os !== "linux") return `needs Linux network namespaces, not ${Deno.build.os}`;
  if (Deno.uid() !== 0) return "needs root (network namespaces, veth, nftables)";
  for (const tool of [["ip", "-V"], ["nft", "--version"]]) {
    try {
      const r = await exec(tool);
      if (r.code !== 0) return `needs iproute2 and nftables: "${tool.join(" ")}" failed`;
    } catch {
      return `needs iproute2 and nftables: "${tool[0]}" is not installed`;
    }
  }
  const probe = `pilot-${crypto.randomUUID().slice(0, 8)}-probe`;
  try {
    await ip(["netns", "add", probe]);
  } catch (e) {
    return `cannot create a network namespace: ${(e as Error).message.trim()}`;
  }
  try {
    await nft(probe, natRuleset(NAT_PORTS));
    return null;
  } catch (e) {
    return `nftables NAT unavailable in a namespace: ${(e as Error).message.trim()}`;
  } finally {
    await ip(["netns", "del", probe]).catch(() => {});
  }
}

const unavailable = await netlabUnavailable();

/**
 * Registers a lab test. Where the lab cannot run (see
 * {@linkcode netlabUnavailable}), or where `reason` says why this test needs
 * more than the lab, it is ignored and its name says why.
 */
export function labTest(name: string, fn: () => Promise<void>, reason?: string | null): void {
  const skip = unavailable ?? reason ?? null;
  Deno.test({
    name: skip === null ? name : `${name} (skipped: ${skip})`,
    ignore: skip !== null,
    fn,
  });
}

function masquerade(ports: { min: number; max: number }): string {
  // UDP gets a port range (so a rebinding visibly moves the port too); the
  // rest (ICMP errors) is masqueraded plainly.
  return `add rule ip ${NAT_TABLE} postrouting oifname "${ROUTER_TO_B}" meta l4proto udp ` +
    `masquerade to :${ports.min}-${ports.max}\n` +
    `add rule ip ${NAT_TABLE} postrouting oifname "${ROUTER_TO_B}" masquerade\n`;
}

function natRuleset(ports: { min: number; max: number }): string {
  // The forward chain makes it a real NAT: nothing from the public side gets
  // in unless it answers a flow A started.
  return `table ip ${NAT_TABLE} {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    iifname "${ROUTER_TO_A}" oifname "${ROUTER_TO_B}" accept
    ct state established,related accept
  }
}
${masquerade(ports)}`;
}

/** Options of {@linkcode NetLab.node}. */
export interface LabNodeOptions extends HomeOptions {
  /** Name for messages, e.g. `"A"`. */
  name?: string;
}

/** A `pilot` home bound to one namespace of a lab. */
export class LabNode {
  /** The namespace its daemon and CLI run in. */
  readonly ns: string;
  /** Its home directory. */
  readonly home: string;
  /** Name for messages. */
  readonly name: string;

  /** Use {@linkcode NetLab.node}: the lab removes the home and reaps the daemon. */
  constructor(ns: string, home: string, name: string) {
    this.ns = ns;
    this.home = home;
    this.name = name;
  }

  /** Runs `pilot --home HOME ARGS` in the node's namespace. */
  pilot(...args: string[]): Promise<PilotResult> {
    return pilot(this.ns, this.home, ...args);
  }

  /** Runs `pilot ARGS --json` and returns `data`; throws with the output unless it answers ok. */
  // deno-lint-ignore no-explicit-any
  async ok(...args: string[]): Promise<any> {
    const r = await this.pilot(...args, "--json");
    if (r.code !== 0 || r.json?.status !== "ok") {
      throw new Error(
        `${this.name}: pilot ${args.join(" ")} failed (exit ${r.code}): ${r.stdout}${r.stderr}`,
      );
    }
    return r.json.data;
  }

  /** `pilot daemon start ARGS`; returns its data (pid, listen, ...). */
  // deno-lint-ignore no-explicit-any
  start(...args: string[]): Promise<any> {
    return this.ok("daemon", "start", ...args);
  }

  /** `pilot peers --json` peer list. */
  // deno-lint-ignore no-explicit-any
  async peers(): Promise<any[]> {
    return (await this.ok("peers")).peers;
  }

  /** `pilot info --json` data. */
  // deno-lint-ignore no-explicit-any
  info(): Promise<any> {
    return this.ok("info");
  }
}

/**
 * What a lab made and must delete again: its namespaces and its nodes'
 * homes. {@linkcode NetLab} and `NatLab` each hold one.
 */
export class LabResources {
  #namespaces: string[] = [];
  #nodes: LabNode[] = [];

  /** Creates namespace `ns` with its loopback up; {@linkcode LabResources.release} deletes it. */
  async namespace(ns: string): Promise<void> {
    await ip(["netns", "add", ns]);
    this.#namespaces.push(ns);
    await ip(["-n", ns, "link", "set", "lo", "up"]);
  }

  /** Makes a home (fixture identity, files as given) for a node that runs in namespace `ns`. */
  async node(ns: string, options: LabNodeOptions = {}): Promise<LabNode> {
    const home = await makeHome(options);
    const node = new LabNode(ns, home, options.name ?? ns);
    this.#nodes.push(node);
    return node;
  }

  /**
   * Deletes everything, even after failures: `stop(node)` for every node,
   * SIGKILL for any process still in a lab namespace (all of them are ours:
   * the namespaces are), then the namespaces (with their veths and nftables
   * tables) and the homes.
   */
  async release(stop: (node: LabNode) => Promise<unknown>): Promise<void> {
    await Promise.allSettled(this.#nodes.map(stop));
    for (const ns of this.#namespaces) await killAllIn(ns);
    for (const ns of this.#namespaces) await ip(["netns", "del", ns]).catch(() => {});
    await Promise.allSettled(this.#nodes.map((n) => Deno.remove(n.home, { recursive: true })));
    this.#namespaces = [];
    this.#nodes = [];
  }
}

/** A new lab's namespace prefix, `pilot-<random>`: labs of tests running in parallel never clash. */
export function labPrefix(): string {
  return `pilot-${crypto.randomUUID().slice(0, 8)}`;
}

/** Runs `build` on a new `lab`; if it fails, whatever was made is deleted again before the error is thrown. */
export async function buildLab<L extends { destroy(): Promise<void> }>(
  lab: L,
  build: (lab: L) => Promise<void>,
): Promise<L> {
  try {
    await build(lab);
  } catch (e) {
    await lab.destroy();
    throw e;
  }
  return lab;
}

/**
 * Makes the masquerading `router` map new flows to external address `to`
 * (on its device `dev`, in place of `from`) under the nftables `rules`, as a
 * home router does when its WAN address changes.
 *
 * Why this way: the mapping of a live UDP flow is its conntrack entry, and
 * a new nft rule only applies to new entries; the keepalives keep the old
 * one alive, and without the `conntrack` tool there is no way to delete it
 * by hand. Masquerade, however, ties its entries to the address it mapped
 * to: when that address is removed, the kernel deletes every entry NATed to
 * it (`masq_inet_event` in nf_nat_masquerade.c). So: add the new address,
 * swap the rules (one nft transaction, which `rules` is), then delete the
 * old address. The host's next packet makes a fresh mapping. Both addresses
 * are /24s; the router needs `promote_secondaries` on `dev`, so that deleting
 * the old one leaves the new one.
 */
export async function rebindRouter(
  router: string,
  wan: { dev: string; from: string; to: string },
  rules: string,
): Promise<void> {
  await ip(["-n", router, "address", "add", `${wan.to}/24`, "dev", wan.dev]);
  await nft(router, rules);
  await ip(["-n", router, "address", "del", `${wan.from}/24`, "dev", wan.dev]);
}

/** What a raw UDP probe got back. */
export interface ProbeResult {
  /** Datagrams received from the target before the wait ran out. */
  replies: number;
  /** Size of the first reply, when there was one. */
  firstLength?: number;
  /** First byte (frame type) of the first reply, when there was one. */
  firstType?: number;
}

// Runs in the namespace: one datagram out, then count what comes back from the target.
const PROBE_SCRIPT = `
const [host, port, hex, waitMs] = Deno.args;
const conn = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
await conn.send(Uint8Array.fromHex(hex), { transport: "udp", hostname: host, port: Number(port) });
const out = { replies: 0 };
const timer = setTimeout(() => conn.close(), Number(waitMs));
try {
  for (;;) {
    const [bytes, from] = await conn.receive();
    if (from.hostname !== host || from.port !== Number(port)) continue;
    if (out.replies++ === 0) Object.assign(out, { firstLength: bytes.length, firstType: bytes[0] });
  }
} catch {
  // closed when the wait ran out
}
clearTimeout(timer);
console.log(JSON.stringify(out));
`;

/**
 * Three namespaces (A private, R router with NAT, B public) wired as the
 * module comment shows. Create with {@linkcode NetLab.create}; always call
 * {@linkcode NetLab.destroy} in `finally`.
 */
export class NetLab {
  /** Namespace of the private node A (behind the NAT). */
  readonly a: string;
  /** Namespace of the router. */
  readonly router: string;
  /** Namespace of the public node B. */
  readonly b: string;
  #made = new LabResources();

  private constructor(prefix: string) {
    this.a = `${prefix}-a`;
    this.router = `${prefix}-r`;
    this.b = `${prefix}-b`;
  }

  /** Every namespace of the lab. */
  get namespaces(): string[] {
    return [this.a, this.router, this.b];
  }

  /** Builds the lab; on failure, whatever was made is deleted again before the error is thrown. */
  static create(): Promise<NetLab> {
    return buildLab(new NetLab(labPrefix()), (lab) => lab.#build());
  }

  async #build(): Promise<void> {
    for (const ns of this.namespaces) await this.#made.namespace(ns);
    // Each pair is made inside a lab namespace, never in the host's: no name
    // clashes with the host or with labs of tests running in parallel.
    await ip(["-n", this.a, "link", "add", "a-r", "type", "veth", "peer", "name", ROUTER_TO_A])
      .then(() => ip(["-n", this.a, "link", "set", ROUTER_TO_A, "netns", this.router]));
    await ip(["-n", this.b, "link", "add", "b-r", "type", "veth", "peer", "name", ROUTER_TO_B])
      .then(() => ip(["-n", this.b, "link", "set", ROUTER_TO_B, "netns", this.router]));
    // promote_secondaries: deleting the first external address (rebindNat)
    // must leave the second one, not take it along.
    await runOk(this.router, [
      "sysctl",
      "-qw",
      "net.ipv4.ip_forward=1",
      `net.ipv4.conf.${ROUTER_TO_B}.promote_secondaries=1`,
    ]);
    await nft(this.router, natRuleset(NAT_PORTS));
    const batch = [
      `-n ${this.a} address add ${PRIVATE_IP}/24 dev a-r`,
      `-n ${this.a} link set a-r up`,
      `-n ${this.a} route add default via ${ROUTER_PRIVATE_IP}`,
      `-n ${this.router} address add ${ROUTER_PRIVATE_IP}/24 dev ${ROUTER_TO_A}`,
      `-n ${this.router} address add ${ROUTER_PUBLIC_IP}/24 dev ${ROUTER_TO_B}`,
      `-n ${this.router} link set ${ROUTER_TO_A} up`,
      `-n ${this.router} link set ${ROUTER_TO_B} up`,
      // B gets no route to 198.18.1.0/24: it can only ever answer the router.
      `-n ${this.b} address add ${PUBLIC_IP}/24 dev b-r`,
      `-n ${this.b} link set b-r up`,
    ];
    // The default route needs its link up first: run the batch in order.
    for (const line of batch) await ip(line.split(" "));
  }

  /** Makes a home (fixture identity, files as given) for a node that runs in namespace `ns`. */
  node(ns: string, options: LabNodeOptions = {}): Promise<LabNode> {
    return this.#made.node(ns, options);
  }

  /**
   * Makes the NAT map A's flow to a new external address and port, as a
   * home router does when its WAN address changes ({@linkcode rebindRouter}):
   * A's next packet makes a fresh entry, mapped to
   * {@linkcode ROUTER_REBOUND_IP} and a port in {@linkcode REBOUND_NAT_PORTS}.
   */
  async rebindNat(): Promise<void> {
    await rebindRouter(
      this.router,
      { dev: ROUTER_TO_B, from: ROUTER_PUBLIC_IP, to: ROUTER_REBOUND_IP },
      `flush chain ip ${NAT_TABLE} postrouting\n${masquerade(REBOUND_NAT_PORTS)}`,
    );
  }

  /**
   * Sends one datagram (`bytes`) from namespace `ns` to `host:port` and
   * counts the datagrams that come back from there within `waitMs`.
   */
  async probe(
    ns: string,
    target: { host: string; port: number },
    options: { bytes: Uint8Array; waitMs: number },
  ): Promise<ProbeResult> {
    const out = await runOk(ns, [
      Deno.execPath(),
      "eval",
      "--unstable-net",
      PROBE_SCRIPT,
      target.host,
      String(target.port),
      options.bytes.toHex(),
      String(options.waitMs),
    ]);
    return JSON.parse(out);
  }

  /**
   * Tears everything down, even after failures: `daemon stop` for every node,
   * then what {@linkcode LabResources.release} deletes.
   */
  destroy(): Promise<void> {
    return this.#made.release((n) => n.pilot("daemon", "stop", "--timeout", "5s"));
  }
}

/** Process ids of every process inside namespace `ns`. */
export async function pidsIn(ns: string): Promise<number[]> {
  const r = await exec(["ip", "netns", "pids", ns]);
  if (r.code !== 0) return [];
  return r.stdout.split("\n").filter((l) => l.trim() !== "").map(Number);
}

/** SIGKILLs every process in namespace `ns` and waits (up to 5 s) until none is left. */
export async function killAllIn(ns: string): Promise<void> {
  const pids = await pidsIn(ns);
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // It exited meanwhile.
    }
  }
  await waitFor(
    `the processes in ${ns} to exit`,
    async () => (await pidsIn(ns)).length === 0,
    5_000,
  )
    .catch(() => {});
}

/** Names of every network namespace on the host (`ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const r = await exec(["ip", "netns", "list"]);
  return r.stdout.split("\n").map((l) => l.split(" ")[0] ?? "").filter((n) => n !== "");
}
