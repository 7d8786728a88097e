/**
 * Reliable streams from the shell: `connect <peer> <port>` (pipe mode, or
 * one request with --message), `listen <port> [--exec CMD]` (inetd-style),
 * `connections`.
 *
 * @module
 */
import { PilotClient } from "../../client/mod.ts";
import { CONNECT } from "../../control/contract/diagnostics.ts";
import { CONNECTIONS, LISTEN, STREAM } from "../../control/contract/ports.ts";
import { anyOf, int, obj, str } from "../../control/schema.ts";
import { PEER_REF } from "../../control/contract/common.ts";
import type { StreamSocket } from "../../control/stream_client.ts";
import { invalid, PilotError } from "../../errors.ts";
import { command, type CommandContext, type CommandSpec } from "../command.ts";
import { table } from "../output.ts";
import { escapeText, peerText } from "../peer_text.ts";
import { durationFlag, numberFlag, optionalNumber, PEER_ARG } from "../flags.ts";
import { renewing } from "../renew.ts";

function portArg(text: unknown): number {
  const s = String(text);
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65_535) {
    throw invalid(`Cannot use port "${s}": expected a number from 1 to 65535`);
  }
  return Number(s);
}

/** Maps how a stream socket ended to an error (or nothing when both sides finished). */
function endError(code: number, reason: string): PilotError | undefined {
  if (code === 1000) return undefined;
  const what = {
    4000: "reset by the peer",
    4001: "timed out",
    4002: "refused",
    4003: "a limit was hit",
    4004: "closed",
  }[code] ?? `ended (WebSocket close ${code})`;
  return new PilotError(
    code === 4001 ? "timeout" : "unreachable",
    `The stream was ${what}${reason ? `: ${peerText(reason)}` : ""}`,
    "retry; the peer may have gone away",
  );
}

/** Copies stdin into the stream, then finishes our direction. */
async function pumpStdin(s: StreamSocket): Promise<number> {
  let n = 0;
  for await (const chunk of Deno.stdin.readable) {
    await s.write(chunk);
    n += chunk.length;
  }
  s.fin();
  return n;
}

/** Copies the stream to a writer; returns the byte count. */
async function pumpOut(s: StreamSocket, out: WritableStreamDefaultWriter<Uint8Array>) {
  let n = 0;
  for await (const chunk of s.data()) {
    await out.write(chunk);
    n += chunk.length;
  }
  return n;
}

async function streamConnect(ctx: CommandContext, port: number, timeoutMs: number) {
  const client = await PilotClient.open(ctx.home);
  const s = await client.openStream("/v1/stream", {
    peer: String(ctx.args.peer),
    port,
    timeout_ms: timeoutMs,
  });
  if (typeof ctx.flags.message === "string") {
    const sent = new TextEncoder().encode(ctx.flags.message);
    await s.write(sent);
    s.fin();
    const chunks: Uint8Array[] = [];
    for await (const c of s.data()) chunks.push(c);
    const end = await s.ended;
    const err = endError(end.code, end.reason);
    if (err) throw err;
    const reply = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
    let o = 0;
    for (const c of chunks) {
      reply.set(c, o);
      o += c.length;
    }
    return {
      peer: s.hello.peer,
      port,
      sent: sent.length,
      received: reply.length,
      reply: reply.toBase64(),
    };
  }
  if (ctx.json) {
    throw invalid("Pipe mode carries raw bytes on stdout", "use --message with --json");
  }
  const out = Deno.stdout.writable.getWriter();
  await Promise.all([pumpStdin(s), pumpOut(s, out)]);
  out.releaseLock();
  // Wait for the close even when both fins were exchanged: our fin must leave
  // this process before it exits. (A completed stream reports 1000.)
  const end = await s.ended;
  const err = endError(end.code, end.reason);
  if (err) throw err;
  return undefined;
}

const connect = command({
  name: "connect",
  routes: [CONNECT.route, STREAM.route],
  summary: "open a session with a peer; with a port, a stream (stdin/stdout, or --message)",
  args: [
    PEER_ARG,
    { name: "port", description: "virtual port: open a reliable stream to it", required: false },
  ],
  flags: {
    message: {
      type: "string",
      value: "TEXT",
      description: "send TEXT, finish, and print the reply",
    },
    timeout: durationFlag(CONNECT.input.timeout_ms, "give up opening after this long"),
  },
  output: anyOf(
    CONNECT.output,
    obj({ peer: PEER_REF, port: int, sent: int, received: int, reply: str }),
  ),
  errors: [
    "not_running",
    "unreachable",
    "key_changed",
    "conflict",
    "not_found",
    "timeout",
    "not_trusted",
  ],
  async run(ctx) {
    const timeoutMs = numberFlag(ctx, "timeout");
    if (ctx.args.port !== undefined) {
      return await streamConnect(ctx, portArg(ctx.args.port), timeoutMs);
    }
    if (ctx.flags.message !== undefined) {
      throw invalid("--message needs a port", "pilot connect PEER PORT --message TEXT");
    }
    return await (await PilotClient.open(ctx.home)).call("POST", "/v1/connect", {
      body: { peer: ctx.args.peer, timeout_ms: timeoutMs },
      timeoutMs: timeoutMs + 5_000,
    });
  },
  human: (o) => {
    const host = o.peer.hostname ? ` (${peerText(o.peer.hostname)})` : "";
    if ("reply" in o) {
      const bytes = Uint8Array.fromBase64(o.reply);
      try {
        return escapeText(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
      } catch {
        return `<${bytes.length} bytes of binary data; use --json for base64>`;
      }
    }
    return [
      `session:     ${o.changed ? "established" : "already up"}`,
      `peer:        ${o.peer.address}${host}`,
      `fingerprint: ${o.peer.fingerprint}`,
      `endpoint:    ${o.endpoint}`,
      `trusted:     ${o.trusted ? "yes" : "no"}`,
    ].join("\n");
  },
});

async function serveWithCommand(s: StreamSocket, command: string): Promise<void> {
  const child = new Deno.Command("sh", {
    args: ["-c", command],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const toChild = (async () => {
    const w = child.stdin.getWriter();
    try {
      for await (const chunk of s.data()) await w.write(chunk);
      await w.close();
    } catch {
      // The command stopped reading: nothing more to give it.
    }
  })();
  const fromChild = (async () => {
    for await (const chunk of child.stdout) await s.write(chunk);
    s.fin();
  })();
  await Promise.allSettled([toChild, fromChild, child.status]);
  await s.ended;
}

const listen = command({
  name: "listen",
  routes: [LISTEN.route],
  summary: "accept streams on a virtual port: print them, or run a command for each (inetd-style)",
  args: [{ name: "port", description: "virtual port 1-65535", required: true }],
  flags: {
    exec: {
      type: "string",
      value: "CMD",
      description: "run CMD for each stream, wired to its stdin/stdout",
    },
    count: {
      type: "integer",
      value: "N",
      description: "stop after N streams (default 1; with --exec unlimited)",
    },
    // A service run with --exec keeps serving until stopped.
    timeout: durationFlag(LISTEN.input.timeout_ms, "stop listening after this long", {
      unlimited: true,
      defaultWith: { flag: "exec", value: "none" },
    }),
  },
  output: obj({ port: int, accepted: int }),
  errors: ["not_running", "conflict", "timeout"],
  async run(ctx) {
    const port = portArg(ctx.args.port);
    const exec = typeof ctx.flags.exec === "string" ? ctx.flags.exec : undefined;
    const count = optionalNumber(ctx, "count") ?? (exec ? Infinity : 1);
    if (exec === undefined && ctx.json) {
      throw invalid("Printing a stream carries raw bytes on stdout", "use --exec, or drop --json");
    }
    const client = await PilotClient.open(ctx.home);
    const running: Promise<void>[] = [];
    let said = false;
    let accepted = 0;
    // Each wait for a stream is one bounded API call, renewed until --timeout
    // (0: never), so an inetd-style service does not quietly stop.
    await renewing(numberFlag(ctx, "timeout"), LISTEN.input.timeout_ms.max, async (ms) => {
      let s: StreamSocket;
      try {
        s = await client.openStream("/v1/listen", { port, timeout_ms: ms }, (p) => {
          // Said once, after the daemon registered the port: peers may connect now.
          if (!said) ctx.progress(`listening on port ${p}`);
          said = true;
        });
      } catch (e) {
        if (e instanceof PilotError && e.code === "timeout") return false;
        throw e;
      }
      accepted++;
      const peer = s.hello.peer as Record<string, unknown>;
      ctx.progress(`stream from ${peer.address}:${s.hello.src_port}`);
      if (exec !== undefined) {
        running.push(serveWithCommand(s, exec));
      } else {
        const out = Deno.stdout.writable.getWriter();
        await Promise.all([pumpStdin(s).catch(() => 0), pumpOut(s, out)]);
        out.releaseLock();
        await s.ended;
      }
      return accepted >= count;
    });
    await Promise.allSettled(running);
    return exec === undefined ? undefined : { port, accepted };
  },
  human: (o) => `handled ${o.accepted} stream(s)`,
});

const connections = command({
  name: "connections",
  routes: [CONNECTIONS.route],
  summary: "list reliable streams: state, cwnd, srtt, bytes in flight, retransmits",
  args: [],
  flags: {},
  output: CONNECTIONS.output,
  errors: ["not_running"],
  run: async (ctx) => await (await PilotClient.open(ctx.home)).call("GET", "/v1/connections"),
  human: ({ connections: list }) => {
    if (list.length === 0) return "no streams";
    return table(
      ["PEER", "LOCAL", "REMOTE", "STATE", "CWND", "SRTT", "IN FLIGHT", "RETX", "SENT", "RECEIVED"],
      list.map((c) => [
        c.peer.address,
        String(c.local_port),
        String(c.remote_port),
        c.state,
        String(c.cwnd),
        c.srtt_ms === null ? "-" : `${c.srtt_ms}ms`,
        String(c.bytes_in_flight),
        String(c.retransmits),
        String(c.sent),
        String(c.received),
      ]),
    );
  },
});

/** The stream commands. */
export const STREAM_COMMANDS: CommandSpec[] = [connect, listen, connections];
