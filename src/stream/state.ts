/**
 * The connection state machine of a stream: RFC 9293's states, reduced to
 * what a tunnel between authenticated peers needs (no LISTEN state, since
 * the mux's listeners stand in for it; no simultaneous open), and the one
 * table of legal transitions that {@linkcode Connection} checks on every
 * change.
 *
 * ```text
 *          connect(): snd SYN              rcv SYN: snd SYN|ACK
 *                  |                                |
 *                  v                                v
 *            +----------+                   +--------------+
 *            | SYN-SENT |                   | SYN-RECEIVED |
 *            +----------+                   +--------------+
 *   rcv SYN|ACK: snd ACK |                          | rcv ACK of SYN
 *                        +------------+-------------+
 *                                     v
 *                              +-------------+
 *             close(): snd FIN | ESTABLISHED | rcv FIN: snd ACK
 *                  +-----------+-------------+-----------+
 *                  v                                     v
 *           +------------+                        +------------+
 *           | FIN-WAIT-1 |                        | CLOSE-WAIT |
 *           +------------+                        +------------+
 *  rcv ACK of FIN |     | rcv FIN: snd ACK              | close(): snd FIN
 *                 v     v                               v
 *   +------------+ +---------+                     +----------+
 *   | FIN-WAIT-2 | | CLOSING |                     | LAST-ACK |
 *   +------------+ +---------+                     +----------+
 *  rcv FIN: |           | rcv ACK of FIN                | rcv ACK of FIN
 *   snd ACK v           v                               v
 *        +-----------------+   timeWaitMs          +--------+
 *        |    TIME-WAIT    |---------------------->| CLOSED |
 *        +-----------------+                       +--------+
 * ```
 *
 * Every other state also goes straight to CLOSED when the connection is
 * reset (`reset()`, an RST from the peer: `refused` while in SYN-SENT), times
 * out (connect or idle), or is aborted by the mux (session gone, TIME_WAIT
 * overflow). A segment that carries both the ACK of our FIN and the peer's
 * FIN takes two steps, FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT: there is no
 * FIN-WAIT-1 → TIME-WAIT edge.
 *
 * @module
 */

/** RFC 9293 connection states, in lower case. */
export type ConnectionState =
  | "syn-sent"
  | "syn-received"
  | "established"
  | "fin-wait-1"
  | "fin-wait-2"
  | "close-wait"
  | "closing"
  | "last-ack"
  | "time-wait"
  | "closed";

/** The states a connection may enter from each state (the diagram above, as data). */
export const TRANSITIONS: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  "syn-sent": ["established", "closed"],
  "syn-received": ["established", "closed"],
  "established": ["fin-wait-1", "close-wait", "closed"],
  "fin-wait-1": ["fin-wait-2", "closing", "closed"],
  "fin-wait-2": ["time-wait", "closed"],
  "close-wait": ["last-ack", "closed"],
  "closing": ["time-wait", "closed"],
  "last-ack": ["closed"],
  "time-wait": ["closed"],
  "closed": [],
};

/** Throws when `to` is not a legal next state after `from`: an illegal transition is a bug. */
export function assertTransition(from: ConnectionState, to: ConnectionState): void {
  if (!TRANSITIONS[from].includes(to)) {
    throw new Error(
      `Illegal stream connection transition ${from} -> ${to}: expected one of ${
        TRANSITIONS[from].join(", ") || "none"
      }`,
    );
  }
}
