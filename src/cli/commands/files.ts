/**
 * Files and request/reply: `send-file`, `received`, `received ack`, `call`,
 * `reply`. Names and data from peers are untrusted text.
 *
 * @module
 */
import { resolve } from "node:path";
import { ControlClient } from "../../control/client.ts";
import { invalid, isErrorCode, PilotError } from "../../errors.ts";
import type { CommandSpec } from "../command.ts";
import { peerText } from "../peer_text.ts";
import { arr, bool, int, nullable, obj, oneOf, str } from "../schema.ts";
import { MESSAGE, messageData, messageText } from "./messages.ts";
import { PEER_REF } from "./trust.ts";

const SEND_RESULT = obj({
  to: PEER_REF,
  id: str,
  type: oneOf("text", "json", "binary"),
  bytes: int,
  receipt: obj({ status: oneOf("stored", "duplicate"), seq: int }),
});

function progressBar(sent: number, size: number): string {
  const width = 30;
  const done = size === 0 ? width : Math.round((sent / size) * width);
  const pct = size === 0 ? 100 : Math.floor((sent / size) * 100);
  return `\r[${"#".repeat(done)}${" ".repeat(width - done)}] ${pct}% ${
    (sent / 1048576).toFixed(1)
  } MiB`;
}

const sendFile: CommandSpec = {
  name: "send-file",
  summary:
    "stream a file of any size to a trusted peer (SHA-256 verified; stored in its received/)",
  args: [
    { name: "peer", description: "address, hostname, key or endpoint IP:PORT", required: true },
    { name: "path", description: "the file to send", required: true },
  ],
  flags: {
    timeout: { type: "duration", description: "give up after this long (default 10m)" },
  },
  output: obj({
    to: PEER_REF,
    name: str,
    stored_as: str,
    bytes: int,
    sha256: str,
    receipt: obj({ status: oneOf("stored", "duplicate"), seq: int, id: str }),
  }),
  errors: ["not_running", "not_trusted", "unreachable", "timeout", "too_large", "not_found"],
  async run(ctx) {
    const timeoutMs = typeof ctx.flags.timeout === "number" ? ctx.flags.timeout : 600_000;
    // The daemon reads the file: give it an absolute path.
    const body = {
      peer: ctx.args.peer,
      path: resolve(String(ctx.args.path)),
      timeout_ms: timeoutMs,
    };
    const client = await ControlClient.open(ctx.home);
    if (ctx.json || !Deno.stderr.isTerminal()) {
      return await client.call("POST", "/v1/send-file", { body, timeoutMs: timeoutMs + 5_000 });
    }
    // A progress bar only for a person watching a terminal.
    let result: unknown;
    const enc = new TextEncoder();
    await client.stream(
      "/v1/send-file",
      {},
      (line) => {
        const l = line as Record<string, unknown>;
        if (l.kind === "progress") {
          Deno.stderr.writeSync(enc.encode(progressBar(Number(l.sent), Number(l.size))));
        } else result = l;
      },
      timeoutMs + 5_000,
      { ...body, progress: true },
    );
    Deno.stderr.writeSync(enc.encode("\n"));
    const r = result as Record<string, unknown> | undefined;
    if (r === undefined) {
      throw new PilotError("timeout", "The transfer did not finish in time", "retry");
    }
    if (r.kind === "error") {
      const code = isErrorCode(r.code) ? r.code : "internal";
      throw new PilotError(code, String(r.message), String(r.hint ?? ""));
    }
    const { kind: _, ...data } = r;
    return data;
  },
  human: (d) => {
    const o = d as {
      to: Record<string, unknown>;
      stored_as: string;
      bytes: number;
      sha256: string;
      receipt: { status: string };
    };
    const how = o.receipt.status === "duplicate" ? "already there (same content)" : "stored";
    return `${how} at ${o.to.address}: ${o.bytes} bytes, sha256 ${o.sha256}, as ${
      peerText(o.stored_as)
    }`;
  },
};

const FILE = obj({
  seq: int,
  id: str,
  from: str,
  from_key: str,
  hostname: nullable(str),
  fingerprint: str,
  name: str,
  original_name: str,
  path: str,
  bytes: int,
  sha256: str,
  received_at: str,
});

const received: CommandSpec = {
  name: "received",
  summary: "list files peers sent (in HOME/received/); same cursor and ack model as inbox",
  args: [],
  flags: {
    after: { type: "integer", value: "SEQ", description: "only files after this seq" },
    limit: { type: "integer", value: "N", description: "at most N files (default 100)" },
    from: { type: "string", value: "PEER", description: "only files from this peer" },
    wait: { type: "boolean", description: "wait for a file when there is none" },
    clear: {
      type: "boolean",
      description: "take the files listed off the list (files stay on disk)",
    },
    timeout: { type: "duration", description: "how long --wait waits (default 30s)" },
  },
  output: obj({ files: arr(FILE), next: int, timed_out: bool, removed: int }),
  errors: ["not_running", "not_found", "conflict"],
  async run(ctx) {
    const f = ctx.flags;
    if (f.clear === true && typeof f.from === "string") {
      throw invalid("--clear cannot be combined with --from", "use `pilot received ack ID…`");
    }
    const client = await ControlClient.open(ctx.home);
    const waitMs = f.wait === true ? (typeof f.timeout === "number" ? f.timeout : 30_000) : 0;
    const page = await client.call("GET", "/v1/received", {
      query: {
        after: typeof f.after === "number" ? f.after : undefined,
        limit: typeof f.limit === "number" ? f.limit : undefined,
        from: typeof f.from === "string" ? f.from : undefined,
        wait: waitMs || undefined,
      },
      timeoutMs: waitMs + 10_000,
    }) as { files: { seq: number }[]; next: number; timed_out: boolean };
    let removed = 0;
    const last = page.files.at(-1);
    if (f.clear === true && last !== undefined) {
      const r = await client.call("POST", "/v1/received/clear", { body: { up_to: last.seq } });
      removed = (r as { removed: number }).removed;
    }
    return { ...page, removed };
  },
  human: (d) => {
    const o = d as { files: Record<string, unknown>[]; timed_out: boolean; removed: number };
    // The sender's address and fingerprint first; names a peer chose, cut to width, after.
    const lines = o.files.map((x) => {
      const host = x.hostname ? ` (${peerText(String(x.hostname))})` : "";
      return [
        `#${x.seq} from ${x.from} ${x.fingerprint}${host}`,
        `  ${x.bytes} bytes, sha256 ${String(x.sha256).slice(0, 16)}…, ${x.received_at}`,
        `  id ${peerText(String(x.id))}`,
        `  ${peerText(String(x.path))}`,
      ].join("\n");
    });
    if (lines.length === 0) lines.push(o.timed_out ? "no files (timed out waiting)" : "no files");
    if (o.removed > 0) lines.push(`took ${o.removed} file(s) off the list (they stay on disk)`);
    return lines.join("\n");
  },
};

const receivedAck: CommandSpec = {
  name: "received ack",
  summary: "take received files off the list by id (the files stay on disk)",
  args: [{ name: "id", description: "file ids", required: true, variadic: true }],
  flags: {
    from: {
      type: "string",
      value: "PEER",
      description: "only files from this peer (needed when two senders used an id)",
    },
  },
  output: obj({ removed: int }),
  errors: ["not_running", "conflict"],
  async run(ctx) {
    const from = typeof ctx.flags.from === "string" ? { from: ctx.flags.from } : {};
    return await (await ControlClient.open(ctx.home)).call("POST", "/v1/received/ack", {
      body: { ids: ctx.args.id, ...from },
    });
  },
  human: (d) => `took ${(d as { removed: number }).removed} file(s) off the list`,
};

const DATA_FLAGS = {
  data: {
    type: "string" as const,
    value: "DATA",
    description: "the data (for binary: base64); - reads stdin",
  },
  "data-file": { type: "string" as const, value: "PATH", description: "read the data from a file" },
  type: { type: "string" as const, value: "TYPE", description: "text (default), json or binary" },
};

const call: CommandSpec = {
  name: "call",
  summary:
    "send a request to a trusted peer and wait for its reply (pilot reply on the other side)",
  args: [{
    name: "peer",
    description: "address, hostname, key or endpoint IP:PORT",
    required: true,
  }],
  flags: {
    ...DATA_FLAGS,
    id: {
      type: "string",
      value: "ID",
      description: "request id (retries with the same id are stored once)",
    },
    timeout: { type: "duration", description: "how long to wait for the reply (default 60s)" },
  },
  output: obj({ request: SEND_RESULT, reply: MESSAGE }),
  errors: ["not_running", "not_trusted", "unreachable", "timeout", "too_large", "not_found"],
  async run(ctx) {
    const type = typeof ctx.flags.type === "string" ? ctx.flags.type : "text";
    const data = await messageData(ctx, type);
    const timeoutMs = typeof ctx.flags.timeout === "number" ? ctx.flags.timeout : 60_000;
    const body: Record<string, unknown> = {
      peer: ctx.args.peer,
      type,
      data,
      timeout_ms: timeoutMs,
    };
    if (typeof ctx.flags.id === "string") body.id = ctx.flags.id;
    return await (await ControlClient.open(ctx.home)).call("POST", "/v1/call", {
      body,
      timeoutMs: timeoutMs + 5_000,
    });
  },
  human: (d) => messageText((d as { reply: Record<string, unknown> }).reply),
};

const reply: CommandSpec = {
  name: "reply",
  summary: "answer a message in the inbox; the reply names it, so the caller's `call` returns",
  args: [{ name: "id", description: "the id of the message to answer", required: true }],
  flags: {
    ...DATA_FLAGS,
    from: {
      type: "string",
      value: "PEER",
      description: "the sender of the message (needed when two senders used the id)",
    },
    timeout: { type: "duration", description: "keep retrying delivery this long (default 30s)" },
  },
  output: SEND_RESULT,
  errors: ["not_running", "not_found", "conflict", "not_trusted", "unreachable", "timeout"],
  async run(ctx) {
    const type = typeof ctx.flags.type === "string" ? ctx.flags.type : "text";
    const data = await messageData(ctx, type);
    const timeoutMs = typeof ctx.flags.timeout === "number" ? ctx.flags.timeout : 30_000;
    return await (await ControlClient.open(ctx.home)).call("POST", "/v1/reply", {
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
  human: (d) => {
    const o = d as { to: Record<string, unknown>; receipt: { seq: number } };
    return `reply stored at ${o.to.address} (seq ${o.receipt.seq})`;
  },
};

/** File and request/reply commands. */
export const FILE_COMMANDS: CommandSpec[] = [sendFile, received, receivedAck, call, reply];
