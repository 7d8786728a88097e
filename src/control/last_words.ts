/**
 * The daemon's last words: whatever ends the process, its log says why
 * (with the stack) and the control file no longer points at it.
 *
 * @module
 */
import { log } from "../daemon/log.ts";

/**
 * Makes sure the background daemon, whose stderr goes nowhere, says why it
 * died in its log (with the stack) and leaves no control file pointing at a
 * dead process, whatever ends it: an uncaught error, an unhandled rejection
 * or `Deno.exit`. Returns the function that removes the handlers.
 */
export function installLastWords(controlPath: string): () => void {
  const removeControl = () => {
    try {
      Deno.removeSync(controlPath);
    } catch {
      // never written, or already removed
    }
  };
  const fatal = (what: string, reason: unknown) => {
    const detail = reason instanceof Error ? reason.stack ?? reason.message : String(reason);
    log(`${what}: ${detail}`, { level: "error", event: "fatal", code: "internal" });
    removeControl();
  };
  const onError = (e: ErrorEvent) => fatal("uncaught error", e.error ?? e.message);
  const onRejection = (e: PromiseRejectionEvent) => fatal("unhandled rejection", e.reason);
  globalThis.addEventListener("error", onError);
  globalThis.addEventListener("unhandledrejection", onRejection);
  globalThis.addEventListener("unload", removeControl);
  return () => {
    globalThis.removeEventListener("error", onError);
    globalThis.removeEventListener("unhandledrejection", onRejection);
    globalThis.removeEventListener("unload", removeControl);
  };
}
