/**
 * The static peer table while the daemon runs: `peer list`, `peer add`,
 * `peer remove` (the `--peer NAME=ENDPOINT` entries; `--save` also writes
 * them to the home's config.json).
 *
 * @module
 */
import { PilotClient } from "../../client/mod.ts";
import { PEER_ADD, PEER_LIST, PEER_REMOVE } from "../../control/contract/static_peers.ts";
import { command, type CommandSpec, type FlagSpec } from "../command.ts";
import { table } from "../output.ts";
import { peerText } from "../peer_text.ts";

const SAVE_FLAG: Record<string, FlagSpec> = {
  save: { type: "boolean", description: PEER_ADD.input.save.description },
};

const NAME_ARG = { name: "name", description: PEER_ADD.input.name.description, required: true };

function trustedNote(trusted: { fingerprint: string }[]): string {
  if (trusted.length === 0) return "";
  const keys = trusted.map((t) => t.fingerprint).join(" or ");
  return `\nnote: this name is a trusted peer's; a handshake there must prove ${keys}`;
}

const peerList = command({
  name: "peer list",
  routes: [PEER_LIST.route],
  summary: "list the static peers (--peer NAME=ENDPOINT and config.json, as changed since)",
  args: [],
  flags: {},
  output: PEER_LIST.output,
  errors: ["not_running"],
  run: async (ctx) => await (await PilotClient.open(ctx.home)).call("GET", "/v1/peer/list"),
  human: ({ peers }) => {
    if (peers.length === 0) return "no static peers";
    return table(
      ["NAME", "ENDPOINT", "TRUSTED AS"],
      peers.map((p) => [
        p.name,
        peerText(p.endpoint),
        p.trusted.map((t) => t.fingerprint).join(", ") || "-",
      ]),
    );
  },
});

const peerAdd = command({
  name: "peer add",
  routes: [PEER_ADD.route],
  summary: "add or change a static peer NAME=ENDPOINT in the running daemon",
  args: [NAME_ARG, {
    name: "endpoint",
    description: PEER_ADD.input.endpoint.description,
    required: true,
  }],
  flags: SAVE_FLAG,
  output: PEER_ADD.output,
  errors: ["not_running", "too_large"],
  run: async (ctx) =>
    await (await PilotClient.open(ctx.home)).call("POST", "/v1/peer/add", {
      body: { name: ctx.args.name, endpoint: ctx.args.endpoint, save: ctx.flags.save === true },
    }),
  human: (o) => {
    const what = o.changed ? `${o.name} = ${peerText(o.endpoint)}` : `${o.name} was already set`;
    const saved = o.saved ? " (in config.json)" : " (until the daemon stops; --save keeps it)";
    return what + saved + trustedNote(o.trusted);
  },
});

const peerRemove = command({
  name: "peer remove",
  routes: [PEER_REMOVE.route],
  summary: "remove a static peer from the running daemon",
  args: [NAME_ARG],
  flags: SAVE_FLAG,
  output: PEER_REMOVE.output,
  errors: ["not_running"],
  run: async (ctx) =>
    await (await PilotClient.open(ctx.home)).call("POST", "/v1/peer/remove", {
      body: { name: ctx.args.name, save: ctx.flags.save === true },
    }),
  human: (o) => {
    if (!o.changed) return `no static peer ${o.name}; nothing to do`;
    return `removed ${o.name}${o.saved ? " (from config.json too)" : ""}`;
  },
});

/** The static peer commands. */
export const STATIC_PEER_COMMANDS: CommandSpec[] = [peerList, peerAdd, peerRemove];
