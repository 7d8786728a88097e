/**
 * The command table: every command the CLI knows, in help order.
 *
 * @module
 */
import type { CommandSpec } from "./command.ts";
import { DAEMON_COMMANDS } from "./commands/daemon.ts";
import { HELP_COMMAND } from "./commands/help.ts";
import { NODE_COMMANDS } from "./commands/node.ts";
import { TRUST_COMMANDS } from "./commands/trust.ts";
import { MESSAGE_COMMANDS } from "./commands/messages.ts";
import { PORT_COMMANDS } from "./commands/ports.ts";
import { STREAM_COMMANDS } from "./commands/streams.ts";
import { TUNNEL_COMMANDS } from "./commands/tunnels.ts";
import { PUBSUB_COMMANDS } from "./commands/pubsub.ts";
import { FILE_COMMANDS } from "./commands/files.ts";
import { STATIC_PEER_COMMANDS } from "./commands/static_peers.ts";
import { WEBHOOK_COMMANDS } from "./commands/webhooks.ts";
import { FIND_COMMANDS } from "./commands/find.ts";
import { TASK_COMMANDS } from "./commands/tasks.ts";
import { CONFIG_COMMANDS } from "./commands/config.ts";
import { MCP_COMMAND } from "./commands/mcp.ts";
import { SERVICE_COMMANDS } from "./commands/service.ts";
import { LOG_COMMANDS } from "./commands/logs.ts";
import { STATUS_COMMAND } from "./commands/status.ts";
import { EVENTS_COMMAND } from "./commands/events.ts";
import { COMPLETION_COMMANDS } from "./commands/completion.ts";
import { VERSION_COMMAND } from "./commands/version.ts";

/** All commands. */
export const COMMANDS: readonly CommandSpec[] = [
  ...DAEMON_COMMANDS,
  ...SERVICE_COMMANDS,
  ...LOG_COMMANDS,
  STATUS_COMMAND,
  ...NODE_COMMANDS,
  EVENTS_COMMAND,
  ...STATIC_PEER_COMMANDS,
  ...CONFIG_COMMANDS,
  ...WEBHOOK_COMMANDS,
  ...FIND_COMMANDS,
  ...STREAM_COMMANDS,
  ...TUNNEL_COMMANDS,
  ...TRUST_COMMANDS,
  ...MESSAGE_COMMANDS,
  ...TASK_COMMANDS,
  ...FILE_COMMANDS,
  ...PORT_COMMANDS,
  ...PUBSUB_COMMANDS,
  ...COMPLETION_COMMANDS,
  MCP_COMMAND,
  VERSION_COMMAND,
  HELP_COMMAND,
];
