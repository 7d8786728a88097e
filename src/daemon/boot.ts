/**
 * The one door from the CLI into the daemon layer. Everything else the CLI
 * does goes through the control API (control/client.ts); these are what
 * `pilot daemon start` needs before any daemon runs: the home and its lock,
 * the configuration (so its errors reach the terminal, not only the log),
 * and the identity (whose first creation shows progress on stderr).
 *
 * @module
 */
export { ensureHome, HOME_FILES, isHomeLocked, resolveHome } from "./home.ts";
export { loadOrCreateIdentity } from "./identity_store.ts";
export { CONFIG_KEYS, configOf, loadConfig, readConfigFile } from "./config.ts";
export type { ConfigFlags } from "./config.ts";
export { writeFileAtomic } from "./home.ts";
export { LOG_LEVELS } from "./log.ts";
