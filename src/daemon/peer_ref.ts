/**
 * The error for an untrusted peer. The peer reference itself lives in
 * `session/peer_ref.ts`, where every layer that names a peer can reach it.
 *
 * @module
 */
import { PilotError } from "../errors.ts";

/** The error for a peer that is not trusted (yet). */
export function notTrusted(text: string): PilotError {
  return new PilotError(
    "not_trusted",
    `"${text}" is not a trusted peer`,
    `run \`pilot handshake ${text}\` and wait for its approval`,
  );
}
