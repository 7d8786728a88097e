/**
 * NAT lab: a small internet in Linux network namespaces for the NAT
 * traversal scenarios of issue 9. A switch (`core`) joins a rendezvous host,
 * an optional public node and the WAN side of one home router per private
 * site; each router NATs the one host on its LAN:
 *
 * ```
 *                     core: bridge, the "internet" 198.18.0.0/24
 *      ┌──────────────┬───────────┴──────┬───────────────────────┐
 *   rdv 198.18.0.2  pub 198.18.0.3   r1 WAN 198.18.0.10       r2 WAN 198.18.0.20   (…r9 .90)
 *   (rendezvous)    (public node)    r1 LAN 198.19.1.1        r2 LAN 198.19.2.1
 *                                       │ NAT kind of site 1      │ NAT kind of site 2
 *                                    h1 198.19.1.2            h2 198.19.2.2
 *                                    default via 198.19.1.1   default via 198.19.2.1
 * ```
 *
 * Nothing on the public segment has a route to 198.19.0.0/16: a site's host
 * is reachable only through its router's mappings. Every router forwards
 * only what its host started (or answers to it) and drops new inbound
 * packets addressed to itself, as home routers do. The NAT kinds:
 *
 * - `"cone"`: endpoint-independent mapping (masquerade reuses the mapping of
 *   a source for every destination) and filtering by conntrack, which lets a
 *   peer in once the host has sent to it: enough for hole punching. The
 *   input drop matters: with Linux masquerade an unsolicited inbound punch
 *   would otherwise create a conntrack entry that takes the mapped port, and
 *   the host's own packet to that peer would then get a new port.
 * - `"symmetric"`: endpoint-dependent mapping (`masquerade random,fully-random`):
 *   each destination sees another port, so punching with the endpoint a
 *   reflector saw fails.
 *
 * {@linkcode NatLab.rebindNat} moves a site to its next WAN address and port
 * range, as a router whose address changes mid-session.
 *
 * Addresses come only from 198.18.0.0/15 (RFC 2544), inside namespaces named
 * `pilot-<random>-<role>` that {@linkcode NatLab.destroy} deletes with their
 * veths and nftables tables. Needs root, iproute2 and nftables: see
 * `netlabUnavailable()` in `_netlab.ts`.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { fixture } from "./_daemon_harness.ts";
import {
  buildLab,
  ip,
  type LabNode,
  type LabNodeOptions,
  labPrefix,
  LabResources,
  nft,
  rebindRouter,
  run,
  runOk,
} from "./_netlab.ts";

const PROBE = join(dirname(fileURLToPath(import.meta.url)), "_udp_probe.ts");

/** How a site's router maps and filters: see the module comment. */
export type NatKind = "cone" | "symmetric";

/** The rendezvous host's address on the public segment. */
export const RENDEZVOUS_IP = "198.18.0.2";
/** The public node's address on the public segment. */
export const PUBLIC_NODE_IP = "198.18.0.3";
/** UDP port {@linkcode NatLab.startRendezvous} listens on. */
export const RENDEZVOUS_PORT = 7445;
/** Most sites a lab can have (the WAN addresses of site n are 198.18.0.(10n + generation)). */
export const MAX_SITES = 9;
/** Most rebindings per site. */
export const MAX_REBINDS = 9;
/**
 * External UDP ports the routers map to, by generation: before the first
 * rebinding, after it, after the second, ... (cycling). Wide, so two random
 * symmetric mappings collide with odds of 1 in 20 000.
 */
export const NAT_PORT_RANGES = [
  { min: 20_000, max: 39_999 },
  { min: 40_000, max: 59_999 },
] as const;

const NAT_TABLE = "pilot_natlab";

/** A site's router WAN address at `generation` (0 until the first rebinding). */
export function wanIp(site: number, generation = 0): string {
  return `198.18.0.${10 * site + generation}`;
}

/** The LAN address of site `site`'s router: its host's default gateway. */
export function routerLanIp(site: number): string {
  return `198.19.${site}.1`;
}

/** The private address of site `site`'s host. */
export function hostIp(site: number): string {
  return `198.19.${site}.2`;
}

/** External UDP ports a router maps to at `generation`. */
export function natPorts(generation: number): { min: number; max: number } {
  return NAT_PORT_RANGES[generation % NAT_PORT_RANGES.length]!;
}

/** One private site: a home router with a NAT and the host behind it. */
export interface NatSite {
  /** 1-based site number (addresses: see {@linkcode wanIp}, {@linkcode hostIp}). */
  readonly index: number;
  /** How the router maps and filters. */
  readonly nat: NatKind;
  /** The router's namespace. */
  readonly router: string;
  /** The host's namespace: where a private node runs. */
  readonly host: string;
  /** The host's private address. */
  readonly hostIp: string;
  /** The router's current WAN address. */
  readonly wanIp: string;
  /** The router's current external UDP port range. */
  readonly ports: { min: number; max: number };
  /** Rebindings so far. */
  readonly generation: number;
}

/** Options of {@linkcode NatLab.create}. */
export interface NatLabOptions {
  /** One private site per entry, with its router's NAT kind (default two cone sites). */
  sites?: NatKind[];
  /** Whether to add the public node namespace `pub` (default true). */
  publicNode?: boolean;
}

/** A rendezvous started by {@linkcode NatLab.startRendezvous}. */
export interface LabRendezvous {
  /** Its home, for `pilot rendezvous status`. */
  node: LabNode;
  /** `KEY@IP:PORT`, as `--rendezvous` takes it. */
  at: string;
  /** What `pilot rendezvous start` answered (pid, listen, address, ...). */
  // deno-lint-ignore no-explicit-any
  started: any;
}

/** One entry of a node's `GET /v1/events`. */
export interface LabEvent {
  /** Monotonic number, from 1. */
  seq: number;
  /** What happened, e.g. `peer.path_changed`. */
  type: string;
  /** ISO time. */
  time: string;
  /** Details. */
  // deno-lint-ignore no-explicit-any
  data: any;
}

/**
 * The events of `node`'s daemon after seq `after` (`GET /v1/events`, which
 * no CLI command prints). The control API listens on 127.0.0.1 of the
 * node's namespace, so the request is made from a Deno child inside it.
 */
export async function labEvents(node: LabNode, after = 0): Promise<LabEvent[]> {
  const control = join(node.home, "control.json");
  const code = `
    const c = JSON.parse(await Deno.readTextFile(${JSON.stringify(control)}));
    const url = new URL("/v1/events?limit=10000&after=${after}", c.url);
    // Straight to the daemon, whatever proxy the environment names.
    const client = Deno.createHttpClient({
      proxy: { transport: "tcp", hostname: url.hostname, port: Number(url.port) },
    });
    const res = await fetch(url, { headers: { authorization: "Bearer " + c.token }, client });
    console.log(await res.text());`;
  const r = await run(node.ns, [Deno.execPath(), "eval", "--no-config", code]);
  const body = r.code === 0 ? JSON.parse(r.stdout) : undefined;
  if (body?.status !== "ok") {
    throw new Error(`${node.name}: GET /v1/events failed (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
  return body.data.events;
}

/** A datagram a {@linkcode UdpAgent} received. */
export interface Datagram {
  /** Source `IP:PORT` as the receiver saw it. */
  from: string;
  /** Payload as text. */
  text: string;
}

/**
 * One UDP socket held by `_udp_probe.ts` inside a namespace: the same local
 * endpoint for every call, and a reflector for other agents.
 */
export class UdpAgent implements AsyncDisposable {
  /** The namespace it runs in. */
  readonly ns: string;
  /** Its local UDP port. */
  readonly port: number;
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;

  private constructor(
    ns: string,
    port: number,
    child: Deno.ChildProcess,
    lines: AsyncIterator<string>,
  ) {
    this.ns = ns;
    this.port = port;
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#lines = lines;
  }

  /** Starts an agent on `port` (0: any) in namespace `ns`; use {@linkcode NatLab.udp}. */
  static async start(ns: string, port: number): Promise<UdpAgent> {
    const child = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        ns,
        Deno.execPath(),
        "run",
        "--no-config",
        "--allow-net",
        "--unstable-net",
        PROBE,
        String(port),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = readLines(child.stdout);
    const first = await lines.next();
    if (first.done) {
      child.stdin.close();
      await child.status;
      throw new Error(`The UDP agent in ${ns} exited before it was ready`);
    }
    const ready = JSON.parse(first.value).ready as number;
    return new UdpAgent(ns, ready, child, lines);
  }

  // deno-lint-ignore no-explicit-any
  async #call(cmd: Record<string, unknown>): Promise<any> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(cmd) + "\n"));
    const line = await this.#lines.next();
    if (line.done) throw new Error(`The UDP agent in ${this.ns} exited`);
    const answer = JSON.parse(line.value);
    if (answer.error) throw new Error(`The UDP agent in ${this.ns}: ${answer.error}`);
    return answer;
  }

  /** Sends `text` to `host:port`, `count` times (default 1) `intervalMs` apart. */
  async send(
    to: { host: string; port: number },
    text: string,
    options: { count?: number; intervalMs?: number } = {},
  ): Promise<void> {
    await this.#call({ op: "send", ...to, text, ...options });
  }

  /** Asks the agent at `host:port` which source it sees; null when it did not answer in `waitMs`. */
  async ask(to: { host: string; port: number }, waitMs = 3_000): Promise<string | null> {
    return (await this.#call({ op: "ask", ...to, waitMs })).seen;
  }

  /** Collects the datagrams received so far, waiting until `count` arrived or `waitMs` passed. */
  async receive(options: { waitMs: number; count?: number }): Promise<Datagram[]> {
    return (await this.#call({ op: "recv", ...options })).got;
  }

  /** Ends the agent (end of its stdin) and waits for it to exit. */
  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    // Drain what is left so the stdout resource closes.
    for (;;) {
      const r = await this.#lines.next().catch(() => ({ done: true }));
      if (r.done) break;
    }
    await this.#child.status;
  }

  /** Same as {@linkcode UdpAgent.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
    }
  }
}

function masquerade(site: { nat: NatKind; generation: number }): string {
  const { min, max } = natPorts(site.generation);
  // cone: masquerade keeps a source's mapping for every destination (nf_nat's
  // find_appropriate_src); random/fully-random skip that, so each flow gets a new port.
  const flags = site.nat === "cone" ? "persistent" : "random,fully-random";
  return `add rule ip ${NAT_TABLE} postrouting oifname "wan" meta l4proto udp ` +
    `masquerade to :${min}-${max} ${flags}\n` +
    `add rule ip ${NAT_TABLE} postrouting oifname "wan" masquerade\n`;
}

function natRuleset(site: { nat: NatKind; generation: number }): string {
  // forward: only flows the host started come in. input: a new packet to the
  // router itself (an unsolicited punch at a mapped port) is dropped before
  // conntrack confirms it, so it cannot take the mapping from the host.
  return `table ip ${NAT_TABLE} {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    iifname "lan" oifname "wan" accept
    ct state established,related accept
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state new drop
  }
}
${masquerade(site)}`;
}

interface SiteState {
  index: number;
  nat: NatKind;
  router: string;
  host: string;
  generation: number;
}

/**
 * The topology of the module comment. Create with {@linkcode NatLab.create};
 * always {@linkcode NatLab.destroy} it (or `await using`).
 */
export class NatLab implements AsyncDisposable {
  /** `pilot-<random>`: every namespace name starts with it. */
  readonly prefix: string;
  /** The core switch's namespace (the "internet"). */
  readonly core: string;
  /** The rendezvous host's namespace ({@linkcode RENDEZVOUS_IP}). */
  readonly rendezvous: string;
  /** The public node's namespace ({@linkcode PUBLIC_NODE_IP}), when the lab has one. */
  readonly public: string | undefined;
  #sites: SiteState[];
  #made = new LabResources();
  #rendezvousNodes: LabNode[] = [];
  #agents: UdpAgent[] = [];

  private constructor(prefix: string, sites: NatKind[], publicNode: boolean) {
    this.prefix = prefix;
    this.core = `${prefix}-core`;
    this.rendezvous = `${prefix}-rdv`;
    this.public = publicNode ? `${prefix}-pub` : undefined;
    this.#sites = sites.map((nat, i) => ({
      index: i + 1,
      nat,
      router: `${prefix}-r${i + 1}`,
      host: `${prefix}-h${i + 1}`,
      generation: 0,
    }));
  }

  /** Builds the lab; on failure, whatever was made is deleted again before the error is thrown. */
  static async create(options: NatLabOptions = {}): Promise<NatLab> {
    const sites = options.sites ?? ["cone", "cone"];
    if (sites.length < 1 || sites.length > MAX_SITES) {
      throw new RangeError(`Cannot build a NAT lab with ${sites.length} sites: expected 1 to 9`);
    }
    const lab = new NatLab(labPrefix(), sites, options.publicNode ?? true);
    return await buildLab(lab, (lab) => lab.#build());
  }

  /** Every namespace of the lab. */
  get namespaces(): string[] {
    return [
      this.core,
      this.rendezvous,
      ...(this.public === undefined ? [] : [this.public]),
      ...this.#sites.flatMap((s) => [s.router, s.host]),
    ];
  }

  /** The private sites, in order (site 1 first). */
  get sites(): NatSite[] {
    return this.#sites.map((s) => this.site(s.index));
  }

  /** Site `index` (1-based) as it is now. */
  site(index: number): NatSite {
    const s = this.#state(index);
    return {
      index: s.index,
      nat: s.nat,
      router: s.router,
      host: s.host,
      hostIp: hostIp(s.index),
      wanIp: wanIp(s.index, s.generation),
      ports: natPorts(s.generation),
      generation: s.generation,
    };
  }

  #state(index: number): SiteState {
    const s = this.#sites[index - 1];
    if (s === undefined) {
      throw new RangeError(`No site ${index} in this lab: expected 1 to ${this.#sites.length}`);
    }
    return s;
  }

  async #build(): Promise<void> {
    for (const ns of this.namespaces) await this.#made.namespace(ns);
    await ip(["-n", this.core, "link", "add", "br0", "type", "bridge"]);
    await ip(["-n", this.core, "link", "set", "br0", "up"]);
    // Every veth is made inside a lab namespace, never in the host's: no name
    // clashes with the host or with labs of tests running in parallel.
    // Each member's link to the switch: namespace, device name, address.
    const uplinks: [ns: string, dev: string, address: string][] = [
      [this.rendezvous, "eth0", `${RENDEZVOUS_IP}/24`],
    ];
    if (this.public !== undefined) uplinks.push([this.public, "eth0", `${PUBLIC_NODE_IP}/24`]);
    for (const s of this.#sites) uplinks.push([s.router, "wan", `${wanIp(s.index)}/24`]);
    for (const [i, [ns, dev, address]] of uplinks.entries()) {
      const port = `port${i}`;
      await ip(["-n", this.core, "link", "add", port, "type", "veth", "peer", "name", dev]);
      await ip(["-n", this.core, "link", "set", dev, "netns", ns]);
      await ip(["-n", this.core, "link", "set", port, "master", "br0", "up"]);
      await ip(["-n", ns, "address", "add", address, "dev", dev]);
      await ip(["-n", ns, "link", "set", dev, "up"]);
    }
    for (const s of this.#sites) {
      await ip(["-n", s.host, "link", "add", "eth0", "type", "veth", "peer", "name", "lan"]);
      await ip(["-n", s.host, "link", "set", "lan", "netns", s.router]);
      // promote_secondaries: deleting the old WAN address (rebindNat) must
      // leave the new one, not take it along.
      await runOk(s.router, [
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.wan.promote_secondaries=1",
      ]);
      await nft(s.router, natRuleset(s));
      const batch = [
        `-n ${s.router} address add ${routerLanIp(s.index)}/24 dev lan`,
        `-n ${s.router} link set lan up`,
        `-n ${s.host} address add ${hostIp(s.index)}/24 dev eth0`,
        `-n ${s.host} link set eth0 up`,
        `-n ${s.host} route add default via ${routerLanIp(s.index)}`,
      ];
      // The default route needs its link up first: run the batch in order.
      for (const line of batch) await ip(line.split(" "));
    }
  }

  /** Makes a home (fixture identity, files as given) for a node that runs in namespace `ns`. */
  node(ns: string, options: LabNodeOptions = {}): Promise<LabNode> {
    return this.#made.node(ns, options);
  }

  /**
   * Starts `pilot rendezvous start --listen 0.0.0.0:PORT` with fixture
   * identity `identity` in the rendezvous namespace.
   */
  async startRendezvous(
    options: { identity?: number; port?: number } = {},
  ): Promise<LabRendezvous> {
    const identity = options.identity ?? 7;
    const port = options.port ?? RENDEZVOUS_PORT;
    const node = await this.node(this.rendezvous, { name: "rendezvous", identity });
    this.#rendezvousNodes.push(node);
    const started = await node.ok("rendezvous", "start", "--listen", `0.0.0.0:${port}`);
    return { node, at: `${fixture(identity).public_key}@${RENDEZVOUS_IP}:${port}`, started };
  }

  /** Starts a {@linkcode UdpAgent} on `port` (default any) in namespace `ns`; the lab closes it. */
  async udp(ns: string, port = 0): Promise<UdpAgent> {
    const agent = await UdpAgent.start(ns, port);
    this.#agents.push(agent);
    return agent;
  }

  /**
   * Makes site `index`'s router map its host's flows to its next WAN address
   * and port range ({@linkcode wanIp}, {@linkcode natPorts} of the next
   * generation), as a home router does when its address changes
   * ({@linkcode rebindRouter}).
   */
  async rebindNat(index: number): Promise<NatSite> {
    const s = this.#state(index);
    if (s.generation >= MAX_REBINDS) {
      throw new RangeError(`Cannot rebind site ${index} again: at most ${MAX_REBINDS} rebindings`);
    }
    const next = { ...s, generation: s.generation + 1 };
    await rebindRouter(
      s.router,
      { dev: "wan", from: wanIp(s.index, s.generation), to: wanIp(s.index, next.generation) },
      `flush chain ip ${NAT_TABLE} postrouting\n${masquerade(next)}`,
    );
    s.generation = next.generation;
    return this.site(index);
  }

  /**
   * Tears everything down, even after failures: the UDP agents, `daemon stop`
   * / `rendezvous stop` for every node, then what
   * {@linkcode LabResources.release} deletes (the bridge goes with its
   * namespace).
   */
  async destroy(): Promise<void> {
    await Promise.allSettled(this.#agents.map((a) => a.close()));
    const rendezvous = this.#rendezvousNodes;
    await this.#made.release((n) =>
      n.pilot(rendezvous.includes(n) ? "rendezvous" : "daemon", "stop", "--timeout", "5s")
    );
    this.#rendezvousNodes = [];
    this.#agents = [];
  }

  /** Same as {@linkcode NatLab.destroy}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.destroy();
  }
}
