/**
 * Reading a port-1002 stream to its end after our side is done, so the
 * peer can finish its side (its writes do not block on a full window).
 *
 * @module
 */
import type { Connection } from "../../stream/mod.ts";

/** Reads and discards until the stream ends, so the peer can finish its side. */
export async function drain(conn: Connection): Promise<void> {
  try {
    while ((await conn.read()) !== null) { /* discard */ }
  } catch { /* reset: nothing left to drain */ }
}
