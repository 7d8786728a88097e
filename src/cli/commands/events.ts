/**
 * `pilot events`: the node's event feed (`GET /v1/events`) from the
 * terminal: a page of recent events, or `--follow` as they happen (NDJSON
 * with `--json`), renewed like `inbox --follow`. Event data names peers
 * with their own hostnames: printed escaped.
 *
 * @module
 */
import { PilotClient } from "../../client/mod.ts";
import { type EVENT, EVENTS, LONG_READ_TIMEOUT_MS } from "../../control/contract/mod.ts";
import type { Infer } from "../../control/schema.ts";
import { invalid } from "../../errors.ts";
import { command, type CommandContext, type CommandSpec } from "../command.ts";
import { printLine } from "../output.ts";
import { peerText, PREVIEW_WIDTH } from "../peer_text.ts";
import { formatDuration } from "../parse.ts";
import { renewing } from "../renew.ts";
import { integerFlag, numberFlag } from "../flags.ts";

/** A `--type`: an event type (`peer.up`), `prefix.*` (`trust.*`) or `*`. */
const TYPE_PATTERN = /^(\*|[a-z_]+(\.[a-z_]+)*(\.\*)?)$/;

function typePatterns(ctx: CommandContext): string[] {
  const given = ctx.flags.type;
  const patterns = Array.isArray(given) ? given : [];
  for (const p of patterns) {
    if (!TYPE_PATTERN.test(p)) {
      throw invalid(
        `Cannot filter on --type "${p}": expected an event type, "prefix.*" or "*"`,
        'e.g. --type peer.up or --type "trust.*"; see docs/API.md "Events"',
      );
    }
  }
  return patterns;
}

/** Whether `type` matches one of `patterns` (none: every type). */
function wanted(type: unknown, patterns: readonly string[]): boolean {
  if (patterns.length === 0) return true;
  if (typeof type !== "string") return false;
  return patterns.some((p) =>
    p === "*" || p === type || (p.endsWith(".*") && type.startsWith(p.slice(0, -1)))
  );
}

/**
 * One line of an event for people: seq, time, type, the peer it names (address
 * first, its own hostname escaped), then the rest of its data as escaped JSON.
 */
function eventLine(e: Infer<typeof EVENT>): string {
  const { peer, ...rest } = e.data;
  const ref = peer as { address?: unknown; hostname?: unknown } | null | undefined;
  const who = typeof ref?.address === "string"
    ? ` ${ref.address}${typeof ref.hostname === "string" ? ` (${peerText(ref.hostname)})` : ""}`
    : "";
  const more = Object.keys(rest).length === 0 && who !== ""
    ? ""
    : ` ${peerText(JSON.stringify(who === "" ? e.data : rest), PREVIEW_WIDTH)}`;
  return `#${e.seq} ${e.time} ${e.type}${who}${more}`;
}

/** The `events` command. */
export const EVENTS_COMMAND: CommandSpec = command({
  name: "events",
  routes: [EVENTS.route],
  summary: "show the node's events (trust, messages, peers, tasks); --follow as they happen",
  args: [],
  flags: {
    after: integerFlag(EVENTS.input.after, "SEQ", "only events after this seq"),
    limit: integerFlag(EVENTS.input.limit, "N", "at most N events (without --follow)"),
    type: {
      type: "string",
      value: "TYPE",
      multiple: true,
      description: 'only events of this type, "prefix.*" or "*" (repeatable)',
    },
    follow: { type: "boolean", description: "print events as they happen (NDJSON with --json)" },
    timeout: {
      type: "duration",
      description: "how long --follow runs (0 or none: no limit)",
      default: formatDuration(LONG_READ_TIMEOUT_MS),
      unlimited: true,
    },
  },
  output: EVENTS.output,
  errors: ["not_running"],
  async run(ctx) {
    const patterns = typePatterns(ctx);
    const client = await PilotClient.open(ctx.home);
    let after = numberFlag(ctx, "after");
    if (ctx.flags.follow === true) {
      // Each follow connection is renewed from the last seq seen.
      await renewing(numberFlag(ctx, "timeout"), LONG_READ_TIMEOUT_MS, async (ms) => {
        await client.stream("/v1/events", { after, follow: true }, (line) => {
          const o = line as Record<string, unknown>;
          if (o.type === "heartbeat") return;
          if (typeof o.seq === "number") after = Math.max(after, o.seq);
          if (!wanted(o.type, patterns)) return;
          printLine(ctx.json ? JSON.stringify(line) : eventLine(line as Infer<typeof EVENT>));
        }, ms);
        return false;
      });
      return undefined;
    }
    const page = await client.api.events({ after, limit: numberFlag(ctx, "limit") });
    // `next` stays the page's: resuming from it skips the events filtered out too.
    return { events: page.events.filter((e) => wanted(e.type, patterns)), next: page.next };
  },
  human: (o) => o.events.length === 0 ? "no events" : o.events.map(eventLine).join("\n"),
});
