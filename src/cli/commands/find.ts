/**
 * `pilot find <hostname|address|key>`: what every source of names (trust,
 * `--peer`, sessions, remembered endpoints, the LAN, the rendezvous, the DHT)
 * knows about a name (address, fingerprint, hostname, visibility,
 * reachability), and what each said, without contacting the node itself.
 *
 * @module
 */
import { PilotClient } from "../../client/mod.ts";
import { FIND } from "../../control/contract/find.ts";
import { command, type CommandSpec } from "../command.ts";
import { durationFlag, numberFlag } from "../flags.ts";
import { keyValues } from "../output.ts";
import type { Infer } from "../../control/schema.ts";
import { peerText } from "../peer_text.ts";

const REACHABILITY: Readonly<Record<string, string>> = {
  session: "session (live now)",
  direct: "direct (endpoint known)",
  relay: "relay (through a rendezvous; no endpoint is published)",
  unknown: "unknown (no endpoint known)",
};

type Report = Infer<typeof FIND.output>["sources"][number];

/** One line for a source that answered (what it said of each key) or failed (why). */
function sourceLine(s: Report): string {
  const what = s.status === "failed"
    ? `failed: ${s.error?.message ?? "no answer"}`
    : s.said.map((x) =>
      [
        x.address ?? (x.hostname === null ? "-" : peerText(x.hostname)),
        x.visibility === null ? "" : ` (${x.visibility}, serial ${x.serial})`,
        x.endpoint === null ? "" : ` at ${peerText(x.endpoint)}`,
        x.relay ? " through a rendezvous relay" : "",
        x.unreachable === null ? "" : ` (unreachable: ${peerText(x.unreachable)})`,
      ].join("")
    ).join("; ");
  return `  ${s.source.padEnd(10)} ${what}`;
}

const find = command({
  name: "find",
  routes: [FIND.route],
  summary:
    "show what every source (trust, --peer, LAN, rendezvous, DHT) knows about a name, without contacting the node",
  args: [{ name: "peer", description: FIND.input.peer.description, required: true }],
  flags: {
    timeout: durationFlag(FIND.input.timeout_ms, "wait this long for the LAN, rendezvous and DHT"),
  },
  output: FIND.output,
  errors: ["not_running", "not_found"],
  async run(ctx) {
    const timeoutMs = numberFlag(ctx, "timeout");
    return await (await PilotClient.open(ctx.home)).call("GET", "/v1/find", {
      query: { peer: String(ctx.args.peer), timeout_ms: timeoutMs },
      timeoutMs: timeoutMs + 5_000,
    });
  },
  human: (o) => {
    const blocks = o.candidates.map((c) =>
      keyValues([
        ["address", c.address ?? "- (key unknown: a --peer entry)"],
        ["fingerprint", c.fingerprint ?? "-"],
        ["hostname", c.hostname === null ? "-" : peerText(c.hostname)],
        ["visibility", c.visibility],
        ["trusted", c.trusted ? "yes" : "no"],
        ["source", c.sources.join(", ")],
        ["reachability", REACHABILITY[c.reachability] ?? c.reachability],
        ...(c.endpoint === null ? [] : [["endpoint", peerText(c.endpoint)] as [string, string]]),
      ])
    );
    const lines: string[] = [];
    if (o.conflict !== null) {
      const trusted = o.candidates.some((c) => c.trusted)
        ? "; it resolves to the trusted key here"
        : "; name the peer by address or full key";
      lines.push(
        `conflict: ${o.conflict.claimants} keys claim "${o.conflict.hostname}"${trusted}`,
        "",
      );
    }
    lines.push(blocks.join("\n\n"));
    if (o.decision.key_changed) {
      lines.push(
        "",
        "key changed: only other keys claim this trusted name now; it still resolves to the trusted key",
      );
    }
    const heard = o.sources.filter((s) => s.status === "answered" || s.status === "failed");
    if (heard.length > 0) lines.push("", "sources:", ...heard.map(sourceLine));
    if (o.rendezvous.asked > 0 && o.rendezvous.answered < o.rendezvous.asked) {
      lines.push("", `${o.rendezvous.answered} of ${o.rendezvous.asked} rendezvous answered`);
    }
    return lines.join("\n");
  },
});

/** The find command. */
export const FIND_COMMANDS: CommandSpec[] = [find];
