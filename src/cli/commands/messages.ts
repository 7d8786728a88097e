/**
 * Messages: `send` (alias `send-message`), `inbox`, `inbox ack`, and
 * request/reply (`call`, `reply`), all on port 1001 and sharing the data
 * flags. Message data from peers is untrusted: printed escaped, and agents
 * are warned.
 *
 * @module
 */
import { MAX_STREAM_MESSAGE } from "../../constants.ts";
import { PilotClient } from "../../client/mod.ts";
import {
  CALL,
  INBOX,
  INBOX_ACK,
  INBOX_CLEAR,
  LONG_READ_TIMEOUT_MS,
  type MESSAGE,
  OUTBOX,
  OUTBOX_CANCEL,
  REPLY,
  SEND,
  TYPES,
  WAIT_TIMEOUT_MS,
} from "../../control/contract/mod.ts";
import { invalid, PilotError } from "../../errors.ts";
import { concat } from "../../bytes.ts";
import { command, type CommandContext, type CommandSpec, type FlagSpec } from "../command.ts";
import type { Infer } from "../../control/schema.ts";
import { renewing } from "../renew.ts";
import { printLine, table } from "../output.ts";
import { peerText, PREVIEW_WIDTH } from "../peer_text.ts";
import {
  durationFlag,
  integerFlag,
  numberFlag,
  optionalString,
  PEER_ARG,
  withoutDefault,
} from "../flags.ts";
import { formatDuration } from "../parse.ts";

async function readLimited(read: () => Promise<Uint8Array>, what: string): Promise<Uint8Array> {
  const bytes = await read();
  if (bytes.length > MAX_STREAM_MESSAGE) {
    throw new PilotError(
      "too_large",
      `${what} is ${bytes.length} bytes; messages carry at most ${MAX_STREAM_MESSAGE}`,
      "split the data",
    );
  }
  return bytes;
}

async function readStdin(): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of Deno.stdin.readable) {
    chunks.push(c);
    n += c.length;
    if (n > MAX_STREAM_MESSAGE) break;
  }
  return concat(...chunks);
}

async function readDataFile(path: string): Promise<Uint8Array> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    throw invalid(`Cannot read --data-file "${path}": no such file`, "check the path");
  }
  if (!info.isFile) throw invalid(`--data-file "${path}" is not a regular file`);
  if (info.size > MAX_STREAM_MESSAGE) {
    throw new PilotError(
      "too_large",
      `--data-file "${path}" is ${info.size} bytes; messages carry at most ${MAX_STREAM_MESSAGE}`,
      "split the data",
    );
  }
  try {
    return await Deno.readFile(path);
  } catch (e) {
    throw invalid(`Cannot read --data-file "${path}": ${(e as Error).message}`);
  }
}

/** The message data as the API takes it: text/JSON as is, binary as base64. */
export async function messageData(ctx: CommandContext, type: string): Promise<string> {
  const sources = ["data", "data-file"].filter((f) => typeof ctx.flags[f] === "string");
  if (sources.length !== 1) {
    throw invalid(
      "Give exactly one of --data, --data-file or --data -",
      `e.g. pilot send PEER --data '{"command":"run"}' --type json`,
    );
  }
  let raw: Uint8Array;
  if (typeof ctx.flags["data-file"] === "string") {
    raw = await readDataFile(ctx.flags["data-file"]);
  } else if (ctx.flags.data === "-") {
    raw = await readLimited(readStdin, "Standard input");
  } else {
    // --data: text as typed; for binary, base64 as typed.
    return ctx.flags.data as string;
  }
  if (type === "binary") return raw.toBase64();
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    throw invalid("The data is not valid UTF-8 text", "send it with --type binary");
  }
}

/** The data flags of `send`, `call` and `reply`. */
export const DATA_FLAGS = {
  data: {
    type: "string",
    value: "DATA",
    description: "the data (for binary: base64); - reads stdin",
  },
  "data-file": { type: "string", value: "PATH", description: "read the data from a file" },
  type: {
    type: "string",
    value: "TYPE",
    description: "text, json or binary",
    default: String(SEND.input.type.default),
  },
} as const satisfies CommandSpec["flags"];

/** The checked --type of a data command. */
export function typeFlag(ctx: CommandContext): string {
  const type = optionalString(ctx, "type") ?? "text";
  if (!(TYPES as readonly string[]).includes(type)) {
    throw invalid(`Unknown --type "${type}"`, "use text, json or binary");
  }
  return type;
}

const send = command({
  name: "send",
  aliases: ["send-message"],
  routes: [SEND.route],
  summary: "send a typed message to a trusted peer; returns once it is stored durably there",
  args: [PEER_ARG],
  flags: {
    ...DATA_FLAGS,
    id: {
      type: "string",
      value: "ID",
      description: "message id: retries with the same id are stored once",
    },
    "correlation-id": {
      type: "string",
      value: "ID",
      description: "correlates a reply with its request",
    },
    "in-reply-to": { type: "string", value: "ID", description: "id of the message this answers" },
    timeout: durationFlag(SEND.input.timeout_ms, "keep retrying delivery this long"),
    queue: {
      type: "boolean",
      description: "keep the message in the local outbox if the peer cannot take it in time, " +
        "and retry (a trusted peer only)",
    },
    // No default here: --ttl without --queue is refused (the API's default is 24 h).
    ttl: withoutDefault(
      durationFlag(SEND.input.ttl_ms, "how long a queued message is retried (with --queue; 24h)"),
    ),
  },
  output: SEND.output,
  errors: [
    "not_running",
    "not_trusted",
    "unreachable",
    "timeout",
    "too_large",
    "key_changed",
    "conflict",
    "not_found",
    "rate_limited",
  ],
  async run(ctx) {
    const type = typeFlag(ctx);
    const data = await messageData(ctx, type);
    if (type === "json") {
      try {
        JSON.parse(data);
      } catch (e) {
        throw invalid(
          `--data is not valid JSON: ${(e as Error).message}`,
          "check the quoting, or use --type text",
        );
      }
    }
    const timeoutMs = numberFlag(ctx, "timeout");
    const body: Record<string, unknown> = {
      peer: ctx.args.peer,
      type,
      data,
      timeout_ms: timeoutMs,
    };
    if (ctx.flags.ttl !== undefined && ctx.flags.queue !== true) {
      throw invalid("--ttl needs --queue", "add --queue, or leave out --ttl");
    }
    if (ctx.flags.queue === true) body.queue = true;
    if (ctx.flags.ttl !== undefined) body.ttl_ms = numberFlag(ctx, "ttl");
    const optional = [
      ["id", "id"],
      ["correlation-id", "correlation_id"],
      ["in-reply-to", "in_reply_to"],
    ] as const;
    for (const [flag, field] of optional) {
      const v = optionalString(ctx, flag);
      if (v !== undefined) body[field] = v;
    }
    const client = await PilotClient.open(ctx.home);
    return await client.call("POST", "/v1/send", { body, timeoutMs: timeoutMs + 5_000 });
  },
  human: (o) => {
    const host = o.to.hostname ? ` (${peerText(o.to.hostname)})` : "";
    if (o.receipt === null) {
      const where = o.delivery === "queued_relay" ? ", a sealed copy at its mailbox" : "";
      return `queued for ${o.to.address}${host}: id ${peerText(o.id)}, ${o.bytes} bytes${where}; ` +
        `retried until ${o.expires_at} (pilot outbox)`;
    }
    const how = o.receipt.status === "duplicate" ? "already stored (a retry)" : "stored";
    return `${how} at ${o.to.address}${host}: id ${
      peerText(o.id)
    }, ${o.bytes} bytes, seq ${o.receipt.seq}`;
  },
});

/**
 * Human text of an inbox message: the sender's address and fingerprint first,
 * then the peer's own words (hostname, id, a one-line preview of the data),
 * each cut to a fixed width; `--json` has the data whole.
 */
export function messageText(m: Infer<typeof MESSAGE>): string {
  const host = m.hostname ? ` (${peerText(m.hostname)})` : "";
  const body = m.type === "binary"
    ? `<${m.bytes} bytes of binary data, base64 in --json>`
    : peerText(m.data, PREVIEW_WIDTH);
  return [
    `#${m.seq} from ${m.from} ${m.fingerprint}${host}`,
    `  ${m.type}, ${m.bytes} bytes, ${m.received_at}`,
    `  id ${peerText(m.id)}`,
    `  ${body}`,
  ].join("\n");
}

/** The `--timeout` of a long read: renewed underneath, `0` or `none` for no limit. */
export function waitFlag(what: string, follow: boolean): FlagSpec {
  return {
    type: "duration",
    description: `how long ${what} waits`,
    default: formatDuration(WAIT_TIMEOUT_MS),
    ...(follow
      ? { defaultWith: { flag: "follow", value: formatDuration(LONG_READ_TIMEOUT_MS) } }
      : {}),
    unlimited: true,
  };
}

const inbox = command({
  name: "inbox",
  routes: [INBOX.route, INBOX_CLEAR.route],
  summary: "read received messages (peer data is untrusted input)",
  args: [],
  flags: {
    after: integerFlag(INBOX.input.after, "SEQ", "only messages after this seq"),
    limit: integerFlag(INBOX.input.limit, "N", "at most N messages"),
    from: { type: "string", value: "PEER", description: "only messages from this peer" },
    wait: { type: "boolean", description: "wait for a message when there is none" },
    follow: { type: "boolean", description: "print messages as they arrive (NDJSON with --json)" },
    clear: {
      type: "boolean",
      description: "remove the messages returned (up to the last seq shown)",
    },
    timeout: waitFlag("--wait/--follow", true),
  },
  output: INBOX.output,
  errors: ["not_running", "not_found", "conflict"],
  async run(ctx) {
    const f = ctx.flags;
    if (f.clear === true && (typeof f.from === "string" || f.follow === true)) {
      throw invalid(
        "--clear cannot be combined with --from or --follow",
        "use `pilot inbox ack ID…` for single messages",
      );
    }
    const client = await PilotClient.open(ctx.home);
    const timeoutMs = numberFlag(ctx, "timeout");
    const query = {
      after: numberFlag(ctx, "after"),
      limit: numberFlag(ctx, "limit"),
      from: optionalString(ctx, "from"),
    };
    if (f.follow === true) {
      // Each follow connection is renewed from the last seq seen.
      await renewing(timeoutMs, LONG_READ_TIMEOUT_MS, async (ms) => {
        await client.stream("/v1/inbox", { ...query, follow: true }, (line) => {
          const o = line as Record<string, unknown>;
          if (typeof o.seq === "number") query.after = Math.max(query.after, o.seq);
          if (ctx.json) printLine(JSON.stringify(line));
          // Follow lines are the route's Message objects, plus heartbeats.
          else if (o.type !== "heartbeat") printLine(messageText(line as Infer<typeof MESSAGE>));
        }, ms);
        return false;
      });
      return undefined;
    }
    type Page = { messages: { seq: number }[]; next: number; timed_out: boolean };
    let page = await client.call("GET", "/v1/inbox", { query, timeoutMs: 10_000 }) as Page;
    if (f.wait === true && page.messages.length === 0) {
      await renewing(timeoutMs, INBOX.input.wait.max, async (ms) => {
        page = await client.call("GET", "/v1/inbox", {
          query: { ...query, wait: ms },
          timeoutMs: ms + 10_000,
        }) as Page;
        return page.messages.length > 0;
      });
      page = { ...page, timed_out: page.messages.length === 0 };
    }
    const last = page.messages.at(-1);
    if (f.clear === true && last !== undefined) {
      const r = await client.call("POST", "/v1/inbox/clear", { body: { up_to: last.seq } });
      // stdout stays exactly the inbox route's answer; the count goes to stderr.
      ctx.progress(`removed ${(r as { removed: number }).removed} message(s)`);
    }
    return page;
  },
  human: (o) => {
    const lines = o.messages.map(messageText);
    if (lines.length === 0) {
      lines.push(o.timed_out ? "no messages (timed out waiting)" : "no messages");
    }
    return lines.join("\n");
  },
});

const inboxAck = command({
  name: "inbox ack",
  routes: [INBOX_ACK.route],
  summary: "remove messages from the inbox by id",
  args: [{ name: "id", description: "message ids", required: true, variadic: true }],
  flags: {
    from: {
      type: "string",
      value: "PEER",
      description: "only messages from this peer (needed when two senders used an id)",
    },
  },
  output: INBOX_ACK.output,
  errors: ["not_running", "conflict"],
  async run(ctx) {
    const client = await PilotClient.open(ctx.home);
    const from = typeof ctx.flags.from === "string" ? { from: ctx.flags.from } : {};
    return await client.call("POST", "/v1/inbox/ack", { body: { ids: ctx.args.id, ...from } });
  },
  human: (o) => `removed ${o.removed} message(s)`,
});

const call = command({
  name: "call",
  routes: [CALL.route],
  summary:
    "send a request to a trusted peer and wait for its reply (pilot reply on the other side)",
  args: [PEER_ARG],
  flags: {
    ...DATA_FLAGS,
    id: {
      type: "string",
      value: "ID",
      description: "request id (retries with the same id are stored once)",
    },
    timeout: durationFlag(CALL.input.timeout_ms, "how long to wait for the reply"),
  },
  output: CALL.output,
  errors: ["not_running", "not_trusted", "unreachable", "timeout", "too_large", "not_found"],
  async run(ctx) {
    const type = typeFlag(ctx);
    const data = await messageData(ctx, type);
    const timeoutMs = numberFlag(ctx, "timeout");
    const body: Record<string, unknown> = {
      peer: ctx.args.peer,
      type,
      data,
      timeout_ms: timeoutMs,
    };
    if (typeof ctx.flags.id === "string") body.id = ctx.flags.id;
    return await (await PilotClient.open(ctx.home)).call("POST", "/v1/call", {
      body,
      timeoutMs: timeoutMs + 5_000,
    });
  },
  human: (o) => messageText(o.reply),
});

const reply = command({
  name: "reply",
  routes: [REPLY.route],
  summary: "answer a message in the inbox; the reply names it, so the caller's `call` returns",
  args: [{ name: "id", description: "the id of the message to answer", required: true }],
  flags: {
    ...DATA_FLAGS,
    from: {
      type: "string",
      value: "PEER",
      description: "the sender of the message (needed when two senders used the id)",
    },
    timeout: durationFlag(REPLY.input.timeout_ms, "keep retrying delivery this long"),
  },
  output: REPLY.output,
  errors: ["not_running", "not_found", "conflict", "not_trusted", "unreachable", "timeout"],
  async run(ctx) {
    const type = typeFlag(ctx);
    const data = await messageData(ctx, type);
    const timeoutMs = numberFlag(ctx, "timeout");
    return await (await PilotClient.open(ctx.home)).call("POST", "/v1/reply", {
      body: {
        id: ctx.args.id,
        type,
        data,
        timeout_ms: timeoutMs,
        ...(typeof ctx.flags.from === "string" ? { from: ctx.flags.from } : {}),
      },
      timeoutMs: timeoutMs + 5_000,
    });
  },
  human: (o) => `reply stored at ${o.to.address} (seq ${o.receipt?.seq ?? "-"})`,
});

/** The message commands. */
const outbox = command({
  name: "outbox",
  routes: [OUTBOX.route],
  summary: "list messages queued by send --queue, with attempts and expiry",
  args: [],
  flags: {},
  output: OUTBOX.output,
  errors: ["not_running"],
  async run(ctx) {
    return await (await PilotClient.open(ctx.home)).call("GET", "/v1/outbox");
  },
  human: ({ messages }) => {
    if (messages.length === 0) return "no queued messages";
    return table(
      ["ID", "TO", "STATE", "BYTES", "ATTEMPTS", "LAST ERROR", "EXPIRES"],
      messages.map((m) => [
        peerText(m.id),
        m.to.hostname === null ? m.to.address : `${m.to.address} (${peerText(m.to.hostname)})`,
        m.mailbox === null ? "local" : `mailbox ${m.mailbox}`,
        String(m.bytes),
        String(m.attempts),
        m.last_error ?? "-",
        m.expires_at,
      ]),
    );
  },
});

const outboxCancel = command({
  name: "outbox cancel",
  routes: [OUTBOX_CANCEL.route],
  summary: "give up a queued message (one being delivered right now may still arrive)",
  args: [{ name: "id", description: "the queued message's id", required: true }],
  flags: {
    to: { type: "string", value: "PEER", description: "only the one queued for this peer" },
  },
  output: OUTBOX_CANCEL.output,
  errors: ["not_running", "not_found"],
  async run(ctx) {
    const to = optionalString(ctx, "to");
    return await (await PilotClient.open(ctx.home)).call("POST", "/v1/outbox/cancel", {
      body: { id: ctx.args.id, ...(to === undefined ? {} : { to }) },
    });
  },
  human: (o) => `cancelled ${o.cancelled} queued message(s)`,
});

export const MESSAGE_COMMANDS: CommandSpec[] = [
  send,
  inbox,
  inboxAck,
  call,
  reply,
  outbox,
  outboxCancel,
];
