/**
 * Pub/sub through a peer's broker (port 1002): `publish`, `subscribe`.
 * Event data from peers is untrusted text.
 *
 * @module
 */
import { PilotClient } from "../../client/mod.ts";
import { PUBLISH, SUBSCRIBE } from "../../control/contract/pubsub.ts";
import { invalid } from "../../errors.ts";
import { command, type CommandSpec } from "../command.ts";
import { printLine } from "../output.ts";
import { peerText, PREVIEW_WIDTH } from "../peer_text.ts";
import { durationFlag, integerFlag, numberFlag, optionalNumber, PEER_ARG } from "../flags.ts";
import { renewing } from "../renew.ts";

const publish = command({
  name: "publish",
  routes: [PUBLISH.route],
  summary: "publish an event on a topic at a trusted peer; its subscribers get it",
  args: [
    PEER_ARG,
    { name: "topic", description: "dot-separated labels of a-z, 0-9, _ and -", required: true },
  ],
  flags: {
    data: {
      type: "string",
      value: "DATA",
      description: "the event data (text; or base64 with --base64)",
    },
    base64: { type: "boolean", description: "--data is base64-encoded bytes" },
    timeout: durationFlag(PUBLISH.input.timeout_ms, "give up after this long"),
  },
  output: PUBLISH.output,
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
    const timeoutMs = numberFlag(ctx, "timeout");
    return await (await PilotClient.open(ctx.home)).call("POST", "/v1/publish", {
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
  human: (o) => {
    const dropped = o.dropped ? `, ${o.dropped} slow subscriber(s) dropped it` : "";
    return `published ${
      peerText(o.topic)
    } at ${o.to.address} (seq ${o.seq}): ${o.delivered} subscriber(s)${dropped}`;
  },
});

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
  routes: [SUBSCRIBE.route],
  summary: "print events on matching topics at a trusted peer (NDJSON with --json)",
  args: [
    PEER_ARG,
    { name: "pattern", description: "a topic, prefix.* or *", required: true },
  ],
  flags: {
    count: { ...integerFlag(SUBSCRIBE.input.count, "N", "stop after N events") },
    timeout: durationFlag(SUBSCRIBE.input.timeout_ms, "stop after this long", { unlimited: true }),
  },
  // NDJSON: one line per subscription notice (not the ok envelope).
  output: SUBSCRIBE.output,
  errors: [
    "not_running",
    "not_trusted",
    "unreachable",
    "timeout",
    "invalid_argument",
    "rate_limited",
  ],
  async run(ctx) {
    let left = optionalNumber(ctx, "count");
    const client = await PilotClient.open(ctx.home);
    // One subscription lasts at most the API's bound; a longer --timeout (or
    // none) subscribes again. Events published in between are not seen.
    await renewing(numberFlag(ctx, "timeout"), SUBSCRIBE.input.timeout_ms.max, async (ms) => {
      await client.stream("/v1/subscribe", {
        peer: String(ctx.args.peer),
        pattern: String(ctx.args.pattern),
        count: left,
        timeout_ms: ms,
      }, (line) => {
        const e = line as Record<string, unknown>;
        if (e.kind === "event" && left !== undefined) left--;
        if (ctx.json) printLine(JSON.stringify(line));
        else if (e.kind === "subscribed") {
          ctx.progress(`subscribed to ${peerText(String(e.pattern))}`);
        } else if (e.kind !== "heartbeat") printLine(eventText(e));
      }, ms + 5_000);
      return left !== undefined && left <= 0;
    });
    return undefined;
  },
  human: () => "",
};

/** The pub/sub commands. */
export const PUBSUB_COMMANDS: CommandSpec[] = [publish, subscribeCommand];
