/**
 * Counted slots for control API requests that stay open: long polls, NDJSON
 * follow streams and WebSockets. Each kind has a cap; a request beyond it is
 * refused `rate_limited` instead of holding a connection, timers and
 * waiters, so ordinary requests always find room.
 *
 * @module
 */
import { PilotError } from "../errors.ts";

/** The kinds of request that hold a slot while open. */
export type HoldKind = "long_poll" | "follow" | "socket";

const NAMES: Record<HoldKind, string> = {
  long_poll: "long polls",
  follow: "follow streams",
  socket: "WebSocket streams",
};

/** Slots per kind of open request, each taken until released once. */
export class Holds {
  #caps: Readonly<Record<HoldKind, number>>;
  #open: Record<HoldKind, number> = { long_poll: 0, follow: 0, socket: 0 };

  /** Slots with at most `caps[kind]` open at once per kind. */
  constructor(caps: Readonly<Record<HoldKind, number>>) {
    this.#caps = caps;
  }

  /** Open requests of each kind. */
  get open(): Readonly<Record<HoldKind, number>> {
    return { ...this.#open };
  }

  /** Takes a slot of `kind` and returns its release (idempotent); throws `rate_limited` when full. */
  take(kind: HoldKind): () => void {
    const cap = this.#caps[kind];
    if (this.#open[kind] >= cap) {
      throw new PilotError(
        "rate_limited",
        `Refused: ${cap} ${NAMES[kind]} are already open on the control API`,
        "close some, or poll without waiting (and retry later)",
      );
    }
    this.#open[kind]++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#open[kind]--;
    };
  }
}
