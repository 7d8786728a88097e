/**
 * The webhooks of the running daemon: `webhook list`, `webhook add`,
 * `webhook remove` (each change written to the home's config.json too).
 *
 * @module
 */
import { PilotClient } from "../../client/mod.ts";
import { WEBHOOK_ADD, WEBHOOK_LIST, WEBHOOK_REMOVE } from "../../control/contract/webhooks.ts";
import { invalid } from "../../errors.ts";
import { command, type CommandSpec } from "../command.ts";
import { table } from "../output.ts";

const URL_ARG = { name: "url", description: WEBHOOK_ADD.input.url.description, required: true };

/** The secret as given, or read from stdin (`--secret -`, which keeps it out of `ps`). */
async function secretOf(given: unknown): Promise<string | undefined> {
  if (typeof given !== "string") return undefined;
  if (given !== "-") return given;
  const text = (await new Response(Deno.stdin.readable).text()).replace(/\r?\n$/, "");
  if (text === "") throw invalid("--secret - read nothing from stdin", "pipe the secret in");
  return text;
}

const webhookList = command({
  name: "webhook list",
  routes: [WEBHOOK_LIST.route],
  summary: "list the webhooks with their delivery counters (never their secrets)",
  args: [],
  flags: {},
  output: WEBHOOK_LIST.output,
  errors: ["not_running"],
  run: async (ctx) => await (await PilotClient.open(ctx.home)).call("GET", "/v1/webhooks"),
  human: ({ webhooks }) => {
    if (webhooks.length === 0) return "no webhooks";
    const rows = webhooks.map((h) => [
      h.url,
      h.events.join(","),
      h.secret ? "signed" : "-",
      `${h.delivered}/${h.failed}/${h.dropped}/${h.queued}`,
      h.last_error ?? (h.last_status === null ? "-" : String(h.last_status)),
    ]);
    return table(["URL", "EVENTS", "SECRET", "OK/FAILED/DROPPED/QUEUED", "LAST"], rows);
  },
});

const webhookAdd = command({
  name: "webhook add",
  routes: [WEBHOOK_ADD.route],
  summary: "POST matching events to URL as JSON (running daemon and config.json)",
  args: [URL_ARG],
  flags: {
    event: {
      type: "string",
      value: "TYPE",
      multiple: true,
      description: 'event type to send (message.received), "prefix.*" or "*"; repeatable',
    },
    secret: {
      type: "string",
      value: "SECRET",
      description: "sign requests with HMAC-SHA256 under SECRET (x-pilot-signature); - reads stdin",
    },
  },
  output: WEBHOOK_ADD.output,
  errors: ["not_running", "too_large"],
  run: async (ctx) => {
    const events = Array.isArray(ctx.flags.event) ? ctx.flags.event : [];
    if (events.length === 0) {
      throw invalid(
        "webhook add needs at least one --event",
        "e.g. --event message.received --event 'trust.*', or --event '*' for all",
      );
    }
    const secret = await secretOf(ctx.flags.secret);
    return await (await PilotClient.open(ctx.home)).call("POST", "/v1/webhooks/add", {
      body: { url: ctx.args.url, events, ...(secret === undefined ? {} : { secret }) },
    });
  },
  human: (o) => {
    const what = o.changed ? `${o.url} gets ${o.events.join(", ")}` : `${o.url} was already set`;
    return what + (o.secret ? " (signed)" : "");
  },
});

const webhookRemove = command({
  name: "webhook remove",
  routes: [WEBHOOK_REMOVE.route],
  summary: "stop posting events to URL (running daemon and config.json)",
  args: [URL_ARG],
  flags: {},
  output: WEBHOOK_REMOVE.output,
  errors: ["not_running"],
  run: async (ctx) =>
    await (await PilotClient.open(ctx.home)).call("POST", "/v1/webhooks/remove", {
      body: { url: ctx.args.url },
    }),
  human: (o) => o.changed ? `removed ${o.url}` : `no webhook ${o.url}; nothing to do`,
});

/** The webhook commands. */
export const WEBHOOK_COMMANDS: CommandSpec[] = [webhookList, webhookAdd, webhookRemove];
