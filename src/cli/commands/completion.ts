/**
 * `pilot completion bash|zsh|fish` prints a completion script generated
 * from the command table; `pilot completion peers` prints the peer names
 * those scripts offer, from the running daemon, and nothing when none
 * answers (a completion must never print an error into the terminal).
 *
 * @module
 */
import { PilotClient } from "../../client/mod.ts";
import { PEER_LIST, TRUST } from "../../control/contract/mod.ts";
import { arr, obj, oneOf, str } from "../../control/schema.ts";
import { invalid, PilotError } from "../../errors.ts";
import { command, type CommandSpec } from "../command.ts";
import { completionScript, type Shell, SHELLS } from "../completion.ts";

/** What a completion word may hold: hostnames, addresses, endpoints. */
const PLAIN_NAME = /^[A-Za-z0-9._:\[\]-]+$/;

const completion = command({
  name: "completion",
  routes: [],
  summary: "print a shell completion script: source <(pilot completion bash)",
  args: [{ name: "shell", description: SHELLS.join(", "), required: true }],
  flags: {},
  output: obj({ shell: oneOf(...SHELLS), script: str }),
  errors: [],
  run(ctx) {
    const shell = ctx.args.shell as string;
    if (!(SHELLS as readonly string[]).includes(shell)) {
      throw invalid(`No completion for shell "${shell}"`, `give one of ${SHELLS.join(", ")}`);
    }
    return Promise.resolve({
      shell: shell as Shell,
      script: completionScript(shell as Shell, ctx.table),
    });
  },
  human: (o) => o.script.trimEnd(),
});

const completionPeers = command({
  name: "completion peers",
  routes: [TRUST.route, PEER_LIST.route],
  summary: "print the peer names completion offers (trusted and configured peers); " +
    "nothing when no daemon runs",
  args: [],
  flags: {},
  // Hostnames (else addresses) of trusted peers, then configured peer names; sorted, unique.
  output: obj({ names: arr(str) }),
  errors: [],
  async run(ctx) {
    let client: PilotClient;
    try {
      client = await PilotClient.open(ctx.home);
    } catch (e) {
      if (e instanceof PilotError) return { names: [] };
      throw e;
    }
    const [trust, statics] = await Promise.all([
      client.api.trust({}, { timeoutMs: 2_000 }).catch(() => ({ trusted: [] })),
      client.api.peerList({}, { timeoutMs: 2_000 }).catch(() => ({ peers: [] })),
    ]);
    const names = new Set([
      ...trust.trusted.map((t) => t.hostname ?? t.address),
      ...statics.peers.map((p) => p.name),
    ]);
    // The shells expand the words they are given: only plain names reach them.
    return { names: [...names].filter((n) => PLAIN_NAME.test(n)).sort() };
  },
  human: (o) => o.names.join("\n"),
});

/** The completion commands. */
export const COMPLETION_COMMANDS: CommandSpec[] = [completion, completionPeers];
