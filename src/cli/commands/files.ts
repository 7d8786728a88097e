/**
 * Files: `send-file`, `received`, `received ack`. Names and contents from
 * peers are untrusted text.
 *
 * @module
 */
import { resolve } from "node:path";
import { PilotClient } from "../../client/mod.ts";
import { RECEIVED, RECEIVED_ACK, RECEIVED_CLEAR, SEND_FILE } from "../../control/contract/mod.ts";
import { invalid, isErrorCode, PilotError } from "../../errors.ts";
import { command, type CommandSpec } from "../command.ts";
import { peerText } from "../peer_text.ts";
import { durationFlag, integerFlag, numberFlag, optionalString, PEER_ARG } from "../flags.ts";
import { renewing } from "../renew.ts";
import { waitFlag } from "./messages.ts";

function progressBar(sent: number, size: number): string {
  const width = 30;
  const done = size === 0 ? width : Math.round((sent / size) * width);
  const pct = size === 0 ? 100 : Math.floor((sent / size) * 100);
  return `\r[${"#".repeat(done)}${" ".repeat(width - done)}] ${pct}% ${
    (sent / 1048576).toFixed(1)
  } MiB`;
}

const sendFile = command({
  name: "send-file",
  routes: [SEND_FILE.route],
  summary:
    "stream a file of any size to a trusted peer (SHA-256 verified; stored in its received/)",
  args: [
    PEER_ARG,
    { name: "path", description: "the file to send", required: true },
  ],
  flags: {
    timeout: durationFlag(SEND_FILE.input.timeout_ms, "give up after this long"),
  },
  output: SEND_FILE.output,
  errors: ["not_running", "not_trusted", "unreachable", "timeout", "too_large", "not_found"],
  async run(ctx) {
    const timeoutMs = numberFlag(ctx, "timeout");
    // The daemon reads the file: give it an absolute path.
    const body = {
      peer: ctx.args.peer,
      path: resolve(String(ctx.args.path)),
      timeout_ms: timeoutMs,
    };
    const client = await PilotClient.open(ctx.home);
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
  human: (o) => {
    const how = o.receipt.status === "duplicate" ? "already there (same content)" : "stored";
    return `${how} at ${o.to.address}: ${o.bytes} bytes, sha256 ${o.sha256}, as ${
      peerText(o.stored_as)
    }`;
  },
});

const received = command({
  name: "received",
  routes: [RECEIVED.route, RECEIVED_CLEAR.route],
  summary: "list files peers sent (in HOME/received/); same cursor and ack model as inbox",
  args: [],
  flags: {
    after: integerFlag(RECEIVED.input.after, "SEQ", "only files after this seq"),
    limit: integerFlag(RECEIVED.input.limit, "N", "at most N files"),
    from: { type: "string", value: "PEER", description: "only files from this peer" },
    wait: { type: "boolean", description: "wait for a file when there is none" },
    clear: {
      type: "boolean",
      description: "take the files listed off the list (files stay on disk)",
    },
    timeout: waitFlag("--wait", false),
  },
  output: RECEIVED.output,
  errors: ["not_running", "not_found", "conflict"],
  async run(ctx) {
    const f = ctx.flags;
    if (f.clear === true && typeof f.from === "string") {
      throw invalid("--clear cannot be combined with --from", "use `pilot received ack ID…`");
    }
    const client = await PilotClient.open(ctx.home);
    const query = {
      after: numberFlag(ctx, "after"),
      limit: numberFlag(ctx, "limit"),
      from: optionalString(ctx, "from"),
    };
    type Page = { files: { seq: number }[]; next: number; timed_out: boolean };
    let page = await client.call("GET", "/v1/received", { query, timeoutMs: 10_000 }) as Page;
    if (f.wait === true && page.files.length === 0) {
      await renewing(numberFlag(ctx, "timeout"), RECEIVED.input.wait.max, async (ms) => {
        page = await client.call("GET", "/v1/received", {
          query: { ...query, wait: ms },
          timeoutMs: ms + 10_000,
        }) as Page;
        return page.files.length > 0;
      });
      page = { ...page, timed_out: page.files.length === 0 };
    }
    const last = page.files.at(-1);
    if (f.clear === true && last !== undefined) {
      const r = await client.call("POST", "/v1/received/clear", { body: { up_to: last.seq } });
      // stdout stays exactly the route's answer; the count goes to stderr.
      ctx.progress(
        `took ${(r as { removed: number }).removed} file(s) off the list (they stay on disk)`,
      );
    }
    return page;
  },
  human: (o) => {
    // The sender's address and fingerprint first; names a peer chose, cut to width, after.
    const lines = o.files.map((x) => {
      const host = x.hostname ? ` (${peerText(x.hostname)})` : "";
      return [
        `#${x.seq} from ${x.from} ${x.fingerprint}${host}`,
        `  ${x.bytes} bytes, sha256 ${x.sha256.slice(0, 16)}…, ${x.received_at}`,
        `  id ${peerText(x.id)}`,
        `  ${peerText(x.path)}`,
      ].join("\n");
    });
    if (lines.length === 0) lines.push(o.timed_out ? "no files (timed out waiting)" : "no files");
    return lines.join("\n");
  },
});

const receivedAck = command({
  name: "received ack",
  routes: [RECEIVED_ACK.route],
  summary: "take received files off the list by id (the files stay on disk)",
  args: [{ name: "id", description: "file ids", required: true, variadic: true }],
  flags: {
    from: {
      type: "string",
      value: "PEER",
      description: "only files from this peer (needed when two senders used an id)",
    },
  },
  output: RECEIVED_ACK.output,
  errors: ["not_running", "conflict"],
  async run(ctx) {
    const from = typeof ctx.flags.from === "string" ? { from: ctx.flags.from } : {};
    return await (await PilotClient.open(ctx.home)).call("POST", "/v1/received/ack", {
      body: { ids: ctx.args.id, ...from },
    });
  },
  human: (o) => `took ${o.removed} file(s) off the list`,
});

/** File commands. */
export const FILE_COMMANDS: CommandSpec[] = [sendFile, received, receivedAck];
