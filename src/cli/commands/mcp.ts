/**
 * `pilot mcp [--allow-trust-changes]`: serves this home's node to an LLM
 * host as an MCP server on stdin/stdout (src/mcp/), until stdin closes.
 * The daemon is found at each tool call, so the server starts without one
 * (its tools then answer `not_running`). stdout carries only the MCP session.
 * The MCP SDK (and zod under it) loads only here: the daemon, which is the
 * same program, never holds it.
 *
 * @module
 */
import { obj } from "../../control/schema.ts";
import { command, type CommandSpec } from "../command.ts";

/** The `mcp` command. */
export const MCP_COMMAND: CommandSpec = command({
  name: "mcp",
  // Its tools call the main routes of the commands they are named after.
  routes: [],
  summary: "serve this node to an LLM host as an MCP server on stdin/stdout " +
    "(approve, reject, untrust only with --allow-trust-changes)",
  args: [],
  flags: {
    "allow-trust-changes": {
      type: "boolean",
      description: "also offer approve, reject and untrust (peer text could steer the model)",
    },
  },
  // Nothing: stdout is the MCP session.
  output: obj({}),
  errors: [],
  async run(ctx) {
    const { serveStdio } = await import("../../mcp/server.ts");
    await serveStdio({
      home: ctx.home,
      commands: ctx.table,
      allowTrustChanges: ctx.flags["allow-trust-changes"] === true,
    });
    return undefined;
  },
  human: () => "",
});
