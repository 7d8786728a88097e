/**
 * A connection's timers, grouped so that they are stopped in one place (as
 * wireguard-go's `timersStop`). Each is an absolute deadline on the mux's
 * clock, Infinity when off; the connection runs no timer of its own; its mux
 * asks for the earliest and calls `tick()` then.
 *
 * Keepalive and idle timeout are not here: they follow from the time of the
 * last segment received, so they need no state of their own.
 *
 * @module
 */

/** The deadlines (ms) of one connection. */
export class Deadlines {
  /** Retransmission timeout (RFC 6298), or the SYN's while opening. */
  rto = Infinity;
  /** RACK's reordering window ran out: look for losses again (RFC 8985). */
  loss = Infinity;
  /** A delayed ACK is due. */
  ack = Infinity;
  /** The next zero-window probe. */
  persist = Infinity;
  /** The pacer lets the next segment out. */
  pace = Infinity;
  /** `connect()` (or the acceptor's handshake) gives up. */
  open = Infinity;
  /** TIME_WAIT ends. */
  timeWait = Infinity;

  /** Stops every timer. */
  clearAll(): void {
    this.rto = Infinity;
    this.loss = Infinity;
    this.ack = Infinity;
    this.persist = Infinity;
    this.pace = Infinity;
    this.open = Infinity;
    this.timeWait = Infinity;
  }

  /** The earliest deadline of the ones that drive transfer (all but TIME_WAIT's). */
  earliest(): number {
    return Math.min(this.open, this.rto, this.loss, this.persist, this.ack, this.pace);
  }
}
