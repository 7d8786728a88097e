/**
 * Congestion control as a connection sees it, after quic-go's
 * `SendAlgorithm`: the connection reports ACKs, losses, timeouts and idle
 * restarts, and sends no more than `cwnd` bytes beyond what it knows left
 * the network. NewReno (`new_reno.ts`) is the one algorithm today; CUBIC or
 * BBR would be another implementation handed to the mux, with no change to
 * `Connection`.
 *
 * Sequence numbers are the connection's byte offsets; "flight" is RFC 5681's
 * FlightSize (sent and not cumulatively acknowledged).
 *
 * @module
 */

/** What a controller is created with. */
export interface CongestionOptions {
  /** Sender maximum segment size (data bytes). */
  mss: number;
  /**
   * Upper bound of cwnd (bytes): the send buffer (more than it can ever fill
   * is pointless) or the path's in-flight cap, whichever is smaller.
   */
  maxWindow: number;
}

/** RFC 6928: min(10 MSS, max(2 MSS, 14600)). */
export function initialWindow(mss: number): number {
  return Math.min(10 * mss, Math.max(2 * mss, 14_600));
}

/** One processed ACK (reused by the connection between calls: read, do not keep). */
export interface AckEvent {
  /** Bytes newly acknowledged cumulatively that had not been SACKed (0 for a duplicate ACK). */
  acked: number;
  /** The cumulative ACK after this one (SND.UNA). */
  una: number;
  /** FlightSize after this ACK (bytes). */
  flight: number;
  /** Whether the sender was using the whole window (else the window must not grow). */
  limited: boolean;
  /** Highest sequence sent so far (SND.NXT, exclusive). */
  highSeq: number;
  /** The round trip this ACK timed (ms), or -1 when it timed none (Karn, or a timer-driven ACK). */
  rtt: number;
}

/** A loss found by the loss rules, or a retransmission timeout. */
export interface LossEvent {
  /** The cumulative ACK (SND.UNA). */
  una: number;
  /** FlightSize when the loss was found (bytes). */
  flight: number;
  /** Highest sequence sent so far (SND.NXT, exclusive). */
  highSeq: number;
}

/** A congestion controller: events in, a window out. */
export interface CongestionControl {
  /** Congestion window (bytes). */
  readonly cwnd: number;
  /** Slow-start threshold (bytes); Infinity when there is none (yet). */
  readonly ssthresh: number;
  /** Inside a loss-recovery episode. */
  readonly inRecovery: boolean;
  /** Loss episodes that reduced the window without a timeout. */
  readonly recoveries: number;
  /** Retransmission timeouts seen. */
  readonly timeouts: number;
  /** An acceptable ACK was processed (before the loss rules run on it). */
  onAckReceived(ack: AckEvent): void;
  /**
   * The loss rules found lost segments. Returns whether this starts a new
   * recovery episode: the connection then retransmits the first lost
   * segment at once, whatever cwnd allows (fast retransmit).
   */
  onLossDetected(loss: LossEvent): boolean;
  /** The retransmission timer expired with data outstanding. */
  onRetransmissionTimeout(loss: LossEvent): void;
  /** Sending resumes after an idle period longer than the RTO. */
  onIdleRestart(): void;
}

/** Creates a connection's controller (again if the handshake lowers the MSS). */
export type CongestionFactory = (options: CongestionOptions) => CongestionControl;
