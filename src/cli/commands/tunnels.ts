/**
 * Private TCP between agents: `expose` a local service to trusted peers on
 * a virtual port, `forward` a port on 127.0.0.1 to a peer's exposure,
 * `unexpose`, `unforward`, and `tunnels` to list both (`info` shows them
 * too). `--save` keeps the change in config.json.
 *
 * @module
 */
import { PilotClient } from "../../client/mod.ts";
import { EXPOSE, FORWARD, TUNNELS, UNEXPOSE, UNFORWARD } from "../../control/contract/tunnels.ts";
import { invalid } from "../../errors.ts";
import { command, type CommandContext, type CommandSpec, type FlagSpec } from "../command.ts";
import { durationFlag, numberFlag } from "../flags.ts";
import { table } from "../output.ts";
import { peerText } from "../peer_text.ts";

const SAVE_FLAG: Record<string, FlagSpec> = {
  save: { type: "boolean", description: EXPOSE.input.save.description },
};

function portOf(text: unknown, what: string, min: 0 | 1): number {
  const s = String(text);
  if (!/^\d{1,5}$/.test(s) || Number(s) < min || Number(s) > 65_535) {
    throw invalid(`Cannot use ${what} "${s}": expected a number from ${min} to 65535`);
  }
  return Number(s);
}

function vportFlag(ctx: CommandContext): number {
  const v = ctx.flags.as;
  return v === undefined ? EXPOSE.input.vport.default : portOf(v, "--as", 1);
}

function saved(s: boolean, changed: boolean): string {
  if (s) return " (in config.json)";
  return changed ? " (until the daemon stops; --save keeps it)" : "";
}

const expose = command({
  name: "expose",
  routes: [EXPOSE.route],
  summary: "let trusted peers reach a local TCP service on a virtual port (default 80)",
  args: [{ name: "target", description: EXPOSE.input.target.description, required: true }],
  flags: {
    as: {
      type: "string",
      value: "VPORT",
      description: `virtual port peers reach it on (default ${EXPOSE.input.vport.default})`,
    },
    allow: {
      type: "string",
      value: "KEY",
      multiple: true,
      description: "only this trusted peer (fingerprint or full key); repeatable",
    },
    ...SAVE_FLAG,
  },
  output: EXPOSE.output,
  errors: ["not_running", "conflict", "too_large"],
  run: async (ctx) => {
    const allow = ctx.flags.allow;
    return await (await PilotClient.open(ctx.home)).call("POST", "/v1/expose", {
      body: {
        target: ctx.args.target,
        vport: vportFlag(ctx),
        ...(Array.isArray(allow) && allow.length > 0 ? { allow } : {}),
        save: ctx.flags.save === true,
      },
    });
  },
  human: ({ exposure: e, changed }) => {
    const who = e.allow.length === 0 ? "every trusted peer" : e.allow.join(", ");
    const what = changed
      ? `exposed ${e.target} on port ${e.vport} to ${who}`
      : `${e.target} was already exposed on port ${e.vport}`;
    return what + saved(e.saved, changed);
  },
});

const unexpose = command({
  name: "unexpose",
  routes: [UNEXPOSE.route],
  summary: "stop exposing a virtual port (its open tunnels are reset)",
  args: [{ name: "vport", description: "the exposure's virtual port", required: true }],
  flags: SAVE_FLAG,
  output: UNEXPOSE.output,
  errors: ["not_running"],
  run: async (ctx) =>
    await (await PilotClient.open(ctx.home)).call("POST", "/v1/unexpose", {
      body: { vport: portOf(ctx.args.vport, "vport", 1), save: ctx.flags.save === true },
    }),
  human: (o) => {
    if (!o.changed) return `nothing is exposed on port ${o.vport}; nothing to do`;
    const what = o.target === null ? "" : ` (${o.target})`;
    return `port ${o.vport} is no longer exposed${what}${o.saved ? "; config.json too" : ""}`;
  },
});

const forward = command({
  name: "forward",
  routes: [FORWARD.route],
  summary: "listen on 127.0.0.1:LOCAL and carry each connection to a peer's exposed port",
  args: [
    { name: "local-port", description: "TCP port on 127.0.0.1 (0: any free one)", required: true },
    { name: "peer", description: FORWARD.input.peer.description, required: true },
    {
      name: "vport",
      description: `the peer's exposed virtual port (default ${FORWARD.input.vport.default})`,
      required: false,
    },
  ],
  flags: {
    timeout: durationFlag(
      FORWARD.input.timeout_ms,
      "give up opening each connection's tunnel after this long",
    ),
    ...SAVE_FLAG,
  },
  output: FORWARD.output,
  errors: ["not_running", "conflict", "not_trusted", "too_large"],
  run: async (ctx) =>
    await (await PilotClient.open(ctx.home)).call("POST", "/v1/forward", {
      body: {
        local_port: portOf(ctx.args["local-port"], "local port", 0),
        peer: ctx.args.peer,
        vport: ctx.args.vport === undefined
          ? FORWARD.input.vport.default
          : portOf(ctx.args.vport, "vport", 1),
        timeout_ms: numberFlag(ctx, "timeout"),
        save: ctx.flags.save === true,
      },
    }),
  human: ({ forward: f, changed }) => {
    const what = changed
      ? `forwarding ${f.listen} to ${peerText(f.peer)} port ${f.vport}`
      : `${f.listen} already forwards to ${peerText(f.peer)} port ${f.vport}`;
    return `${what}${saved(f.saved, changed)}\ntry: curl http://${f.listen}/`;
  },
});

const unforward = command({
  name: "unforward",
  routes: [UNFORWARD.route],
  summary: "stop a forward (its open connections are closed)",
  args: [{ name: "local-port", description: "the forward's port on 127.0.0.1", required: true }],
  flags: SAVE_FLAG,
  output: UNFORWARD.output,
  errors: ["not_running"],
  run: async (ctx) =>
    await (await PilotClient.open(ctx.home)).call("POST", "/v1/unforward", {
      body: {
        local_port: portOf(ctx.args["local-port"], "local port", 1),
        save: ctx.flags.save === true,
      },
    }),
  human: (o) => {
    if (!o.changed) return `nothing forwards from 127.0.0.1:${o.local_port}; nothing to do`;
    const to = o.peer === null ? "" : ` (to ${peerText(o.peer)} port ${o.vport})`;
    return `127.0.0.1:${o.local_port} no longer forwards${to}${o.saved ? "; config.json too" : ""}`;
  },
});

const tunnels = command({
  name: "tunnels",
  routes: [TUNNELS.route],
  summary: "list exposed services and forwarded ports",
  args: [],
  flags: {},
  output: TUNNELS.output,
  errors: ["not_running"],
  run: async (ctx) => await (await PilotClient.open(ctx.home)).call("GET", "/v1/tunnels"),
  human: ({ exposed, forwarded }) => {
    const parts: string[] = [];
    parts.push(
      exposed.length === 0 ? "nothing exposed" : table(
        ["VPORT", "SERVICE", "ALLOW", "ACTIVE", "SERVED", "REFUSED", "FAILED"],
        exposed.map((e) => [
          String(e.vport),
          e.target,
          e.allow.length === 0 ? "all trusted" : e.allow.join(", "),
          String(e.active),
          String(e.served),
          String(e.refused),
          String(e.failed),
        ]),
      ),
    );
    parts.push(
      forwarded.length === 0 ? "nothing forwarded" : table(
        ["LISTEN", "PEER", "VPORT", "ACTIVE", "SERVED", "FAILED", "BUSY"],
        forwarded.map((f) => [
          f.listen,
          peerText(f.peer),
          String(f.vport),
          String(f.active),
          String(f.served),
          String(f.failed),
          String(f.busy),
        ]),
      ),
    );
    return parts.join("\n\n");
  },
});

/** The tunnel commands. */
export const TUNNEL_COMMANDS: CommandSpec[] = [expose, unexpose, forward, unforward, tunnels];
