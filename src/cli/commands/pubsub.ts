/**
 * Pub/sub through a peer's broker (port 1002): `publish`, `subscribe`.
 * Event data from peers is untrusted text.
 *
 * @module
 */
import { ControlClient } from "../../control/client.ts";
import { invalid } from "../../errors.ts";
import type { CommandSpec } from "../command.ts";
import { printLine } from "../output.ts";
import { peerText, PREVIEW_WIDTH } from "../peer_text.ts";
import { int, obj, oneOf, str } from "../schema.ts";
import { PEER_REF } from "./trust.ts";

const publish: CommandSpec = {
  name: "publish",
  summary: "publish an event on a topic at a trusted peer; its subscribers get it",
  args: [
    { name: "peer", description: "address, hostname, or endpoint IP:PORT", required: true },
    { name: "topic", description: "dot-separated labels of a-z, 0-9, _ and -", required: true },
  ],
  flags: {
    data: {
      type: "string",
      value: "DATA",
      description: "the event data (text; or base64 with --base64)",
    },
    base64: { type: "boolean", description: "--data is base64-encoded bytes" },
    timeout: { type: "duration", description: "give up after this long (default 10s)" },
  },
  output: obj({ to: PEER_REF, topic: str, bytes: int, seq: int, delivered: int, dropped: int }),
  errors: [
    "not_running",
    "not_trusted",
    "unreachable",
    "timeout",
    "too_large",
    "not_found",
    "rate_limited",
  ],
  async run(ctx) {
    if (typeof ctx.flags.data !== "string") throw invalid("Give the event with --data");
    const timeoutMs = typeof ctx.flags.timeout === "number" ? ctx.flags.timeout : 10_000;
    return await (await ControlClient.open(ctx.home)).call("POST", "/v1/publish", {
      body: {
        peer: ctx.args.peer,
        topic: ctx.args.topic,
        data: ctx.flags.data,
        encoding: ctx.flags.base64 === true ? "base64" : "text",
        timeout_ms: timeoutMs,
      },
      timeoutMs: timeoutMs + 5_000,
    });
  },
  human: (d) => {
    const o = d as {
      to: Record<string, unknown>;
      topic: string;
      seq: number;
      delivered: number;
      dropped: number;
    };
    const dropped = o.dropped ? `, ${o.dropped} slow subscriber(s) dropped it` : "";
    return `published ${
      peerText(o.topic)
    } at ${o.to.address} (seq ${o.seq}): ${o.delivered} subscriber(s)${dropped}`;
  },
};

function eventText(e: Record<string, unknown>): string {
  if (e.kind === "overflow") {
    return `! ${e.dropped} event(s) dropped (seq ${e.first_seq}-${e.last_seq}): this subscriber was too slow`;
  }
  const bytes = Uint8Array.fromBase64(String(e.data));
  let body: string;
  try {
    body = peerText(new TextDecoder("utf-8", { fatal: true }).decode(bytes), PREVIEW_WIDTH);
  } catch {
    body = `<${bytes.length} bytes of binary data; base64 in --json>`;
  }
  return `#${e.seq} from ${e.from} ${peerText(String(e.topic))}\n  ${body}`;
}

const subscribeCommand: CommandSpec = {
  name: "subscribe",
  summary: "print events on matching topics at a trusted peer (NDJSON with --json)",
  args: [
    { name: "peer", description: "address, hostname, or endpoint IP:PORT", required: true },
    { name: "pattern", description: "a topic, prefix.* or *", required: true },
  ],
  flags: {
    count: { type: "integer", value: "N", description: "stop after N events" },
    timeout: { type: "duration", description: "stop after this long (default 10m)" },
  },
  // NDJSON: one line per subscription notice (not the ok envelope).
  output: {
    anyOf: [
      obj({ kind: oneOf("subscribed"), pattern: str, since: int }),
      obj({
        kind: oneOf("event"),
        seq: int,
        topic: str,
        from: str,
        from_key: str,
        time: str,
        data: str,
        bytes: int,
      }),
      obj({ kind: oneOf("overflow"), dropped: int, first_seq: int, last_seq: int }),
      obj({ kind: oneOf("heartbeat"), time: str }),
    ],
  },
  errors: [
    "not_running",
    "not_trusted",
    "unreachable",
    "timeout",
    "invalid_argument",
    "rate_limited",
  ],
  async run(ctx) {
    const count = typeof ctx.flags.count === "number" ? ctx.flags.count : undefined;
    if (count !== undefined && count < 1) throw invalid("--count must be at least 1");
    const timeoutMs = typeof ctx.flags.timeout === "number" ? ctx.flags.timeout : 600_000;
    const client = await ControlClient.open(ctx.home);
    await client.stream("/v1/subscribe", {
      peer: String(ctx.args.peer),
      pattern: String(ctx.args.pattern),
      count,
      timeout_ms: timeoutMs,
    }, (line) => {
      const e = line as Record<string, unknown>;
      if (ctx.json) printLine(JSON.stringify(line));
      else if (e.kind === "subscribed") {
        ctx.progress(`subscribed to ${peerText(String(e.pattern))}`);
      } else if (e.kind !== "heartbeat") printLine(eventText(e));
    }, timeoutMs + 5_000);
    return undefined;
  },
  human: () => "",
};

/** The pub/sub commands. */
export const PUBSUB_COMMANDS: CommandSpec[] = [publish, subscribeCommand];
