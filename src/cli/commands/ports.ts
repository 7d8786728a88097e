/**
 * Unreliable datagrams on virtual ports: `dgram` sends one, `recv` binds a
 * port and prints what arrives. Data from peers is untrusted text.
 *
 * @module
 */
import { PilotClient } from "../../client/mod.ts";
import { DGRAM, RECV } from "../../control/contract/ports.ts";
import { invalid } from "../../errors.ts";
import { command, type CommandSpec } from "../command.ts";
import { printLine } from "../output.ts";
import { peerText, PREVIEW_WIDTH } from "../peer_text.ts";
import { durationFlag, integerFlag, numberFlag, PEER_ARG } from "../flags.ts";

function portArg(text: unknown): number {
  const s = String(text);
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65_535) {
    throw invalid(`Cannot use port "${s}": expected a number from 1 to 65535`);
  }
  return Number(s);
}

function datagramText(d: Record<string, unknown>): string {
  const bytes = Uint8Array.fromBase64(String(d.data));
  let body: string;
  try {
    body = peerText(new TextDecoder("utf-8", { fatal: true }).decode(bytes), PREVIEW_WIDTH);
  } catch {
    body = `<${bytes.length} bytes of binary data>`;
  }
  const host = d.hostname ? ` (${peerText(String(d.hostname))})` : "";
  return `from ${d.from}:${d.src_port} ${d.fingerprint} [${d.bytes} bytes]${host}\n  ${body}`;
}

const dgram = command({
  name: "dgram",
  routes: [DGRAM.route],
  summary: "send one unreliable datagram to a trusted peer's virtual port",
  args: [
    PEER_ARG,
    { name: "port", description: "virtual port 1-65535", required: true },
  ],
  flags: {
    data: {
      type: "string",
      value: "DATA",
      description: "the data (text; or base64 with --base64)",
    },
    base64: { type: "boolean", description: "--data is base64-encoded bytes" },
    timeout: durationFlag(DGRAM.input.timeout_ms, "give up reaching the peer after this long"),
  },
  output: DGRAM.output,
  errors: [
    "not_running",
    "not_trusted",
    "unreachable",
    "too_large",
    "key_changed",
    "conflict",
    "not_found",
  ],
  async run(ctx) {
    if (typeof ctx.flags.data !== "string") throw invalid("Give the datagram with --data");
    const timeoutMs = numberFlag(ctx, "timeout");
    return await (await PilotClient.open(ctx.home)).call("POST", "/v1/dgram", {
      body: {
        peer: ctx.args.peer,
        port: portArg(ctx.args.port),
        data: ctx.flags.data,
        encoding: ctx.flags.base64 === true ? "base64" : "text",
        timeout_ms: timeoutMs,
      },
      timeoutMs: timeoutMs + 5_000,
    });
  },
  human: (o) => `sent ${o.bytes} bytes to ${o.to.address}:${o.port} (no delivery guarantee)`,
});

const recv: CommandSpec = {
  name: "recv",
  routes: [RECV.route],
  summary: "bind a virtual port and print the datagrams trusted peers send to it",
  args: [{ name: "port", description: "virtual port 1-65535", required: true }],
  flags: {
    count: integerFlag(RECV.input.count, "N", "stop after N datagrams"),
    timeout: durationFlag(RECV.input.timeout_ms, "stop waiting after this long"),
  },
  output: RECV.output,
  errors: ["not_running", "conflict"],
  async run(ctx) {
    const count = numberFlag(ctx, "count");
    const timeoutMs = numberFlag(ctx, "timeout");
    const client = await PilotClient.open(ctx.home);
    const query = { port: portArg(ctx.args.port), count, timeout_ms: timeoutMs };
    if (!ctx.json) {
      // People see datagrams as they come.
      let n = 0;
      await client.stream("/v1/recv", { ...query, follow: true }, (line) => {
        n++;
        printLine(datagramText(line as Record<string, unknown>));
      }, timeoutMs + 5_000);
      if (n < count) printLine(`(${n} of ${count} datagrams before the timeout)`);
      return undefined;
    }
    return await client.call("GET", "/v1/recv", { query, timeoutMs: timeoutMs + 5_000 });
  },
  human: () => "",
};

/** The datagram commands. */
export const PORT_COMMANDS: CommandSpec[] = [dgram, recv];
