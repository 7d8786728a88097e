/**
 * NewReno congestion control with the window in bytes: slow start and
 * congestion avoidance as RFC 5681 with appropriate byte counting (RFC 3465,
 * L = max(2 SMSS, `STREAM_ACK_BYTES`): the receiver's stretch ACKs each
 * cover that much, and slow start still doubles cwnd per round trip), one
 * window reduction per loss episode as RFC 6582 (the "recover" point), and
 * the initial window of RFC 6928. The first slow start ends early when the
 * round trip grows (HyStart++, RFC 9406; see `hystart.ts`); later ones
 * end at the ssthresh a loss set. Congestion avoidance grows cwnd only while
 * no standing queue shows in the round trip (`delay_brake.ts`).
 *
 * Fast recovery keeps cwnd at ssthresh instead of inflating it per
 * duplicate ACK: the sender counts what is really in flight (the "pipe" of
 * RFC 6675, SACKed bytes excluded), which is what inflation approximates when
 * there is no SACK.
 *
 * @module
 */

import { STREAM_ACK_BYTES } from "../constants.ts";
import {
  type AckEvent,
  type CongestionControl,
  type CongestionOptions,
  initialWindow,
  type LossEvent,
} from "./congestion.ts";
import { DelayBrake } from "./delay_brake.ts";
import { HyStart } from "./hystart.ts";

/**
 * NewReno's state: cwnd, ssthresh and the recovery point. The connection
 * drives it through {@linkcode CongestionControl}'s events; the public steps
 * below (`onAck`, `enterRecovery`, ...) are the RFC rules one by one.
 */
export class NewReno implements CongestionControl {
  /** Sender maximum segment size (data bytes). */
  readonly mss: number;
  /** Congestion window (bytes). */
  cwnd: number;
  /** Slow-start threshold (bytes); Infinity until the first loss. */
  ssthresh: number = Infinity;
  /** Inside fast recovery. */
  inRecovery = false;
  /** Highest sequence sent when the last reduction happened (exclusive); RFC 6582's "recover". */
  recoverPoint = 0;
  /** Times the window was reduced by fast recovery. */
  recoveries = 0;
  /** Times the window collapsed to one segment after a retransmission timeout. */
  timeouts = 0;
  #maxWindow: number;
  #byteCountLimit: number;
  #bytesAcked = 0;
  /** HyStart++ during the first slow start, then null. */
  #hystart: HyStart | null = new HyStart();
  /** Withholds congestion avoidance's growth while a queue stands on the path. */
  #brake = new DelayBrake();
  /** Round trips' worth of growth the brake withheld (one per cwnd of bytes acknowledged). */
  braked = 0;

  /** Starts in slow start with the RFC 6928 initial window. */
  constructor(options: CongestionOptions) {
    this.mss = options.mss;
    this.#maxWindow = Math.max(options.maxWindow, 2 * options.mss);
    this.#byteCountLimit = Math.max(2 * options.mss, STREAM_ACK_BYTES);
    this.cwnd = Math.min(initialWindow(options.mss), this.#maxWindow);
  }

  /** True while cwnd is below ssthresh. */
  get slowStart(): boolean {
    return this.cwnd < this.ssthresh;
  }

  /**
   * New data was cumulatively acknowledged outside recovery. `limited` says
   * whether the sender was using the window (else it must not grow:
   * an application-limited sender never tested the larger window).
   */
  onAck(acked: number, limited: boolean): void {
    if (this.inRecovery || acked <= 0 || !limited) return;
    if (this.cwnd < this.ssthresh) {
      const divisor = this.#hystart?.growthDivisor ?? 1;
      this.cwnd += Math.floor(Math.min(acked, this.#byteCountLimit) / divisor);
    } else {
      this.#bytesAcked += acked;
      if (this.#bytesAcked >= this.cwnd) {
        this.#bytesAcked -= this.cwnd;
        if (this.#brake.holds(this.cwnd, this.mss)) this.braked++;
        else this.cwnd += this.mss;
      }
    }
    if (this.cwnd > this.#maxWindow) this.cwnd = this.#maxWindow;
  }

  /** Whether a loss seen with the cumulative ACK at `una` may start a new recovery (RFC 6582). */
  canEnterRecovery(una: number): boolean {
    return !this.inRecovery && una >= this.recoverPoint;
  }

  /**
   * A loss was detected: ssthresh = max(FlightSize / 2, 2 SMSS), cwnd =
   * ssthresh; recovery lasts until everything sent so far (`highSeq`,
   * exclusive) is acknowledged.
   */
  enterRecovery(flightSize: number, highSeq: number): void {
    this.#hystart = null;
    this.ssthresh = Math.max(Math.floor(flightSize / 2), 2 * this.mss);
    this.cwnd = this.ssthresh;
    this.inRecovery = true;
    this.recoverPoint = highSeq;
    this.#bytesAcked = 0;
    this.recoveries++;
  }

  /**
   * A full ACK (at or beyond the recovery point) ends recovery with cwnd =
   * ssthresh (RFC 6582 3.2 step 3, second option). The first option,
   * min(ssthresh, FlightSize + SMSS), exists against the burst the second
   * could send at once; the sender paces (`pacer.ts`), so there is none,
   * and a paced flight is below cwnd by design: the first option would
   * halve the window a second time.
   */
  exitRecovery(): void {
    this.inRecovery = false;
    this.cwnd = this.ssthresh;
  }

  /**
   * The retransmission timer expired: ssthresh = max(FlightSize / 2, 2 SMSS),
   * cwnd = one segment (the loss window), and no fast recovery until
   * everything sent so far is acknowledged.
   */
  onTimeout(flightSize: number, highSeq: number): void {
    this.#hystart = null;
    this.ssthresh = Math.max(Math.floor(flightSize / 2), 2 * this.mss);
    this.cwnd = this.mss;
    this.inRecovery = false;
    this.recoverPoint = highSeq;
    this.#bytesAcked = 0;
    this.timeouts++;
  }

  /** Restart after an idle period longer than the RTO: at most the initial window (RFC 5681 4.1). */
  onIdleRestart(): void {
    this.cwnd = Math.min(this.cwnd, initialWindow(this.mss));
  }

  /**
   * HyStart++ ends slow start with ssthresh = cwnd when the round trip grew
   * (RFC 9406 section 4.3); cwnd is left as it is.
   */
  endSlowStart(): void {
    this.#hystart = null;
    this.ssthresh = this.cwnd;
  }

  /**
   * A full ACK ends recovery first, so that the same ACK may grow the new
   * window; in the first slow start HyStart++ sees the ACK before it grows cwnd.
   */
  onAckReceived(ack: AckEvent): void {
    this.#brake.onAck(ack.una, ack.highSeq, ack.rtt);
    if (this.inRecovery && ack.una >= this.recoverPoint) this.exitRecovery();
    const hystart = this.#hystart;
    if (hystart !== null && !this.inRecovery && this.slowStart) {
      if (hystart.onAck(ack.una, ack.highSeq, ack.rtt) === "exit") this.endSlowStart();
    }
    this.onAck(ack.acked, ack.limited);
  }

  /** At most one reduction per window of data (RFC 6582's recovery point). */
  onLossDetected(loss: LossEvent): boolean {
    if (!this.canEnterRecovery(loss.una)) return false;
    this.enterRecovery(loss.flight, loss.highSeq);
    return true;
  }

  /** RFC 5681 (4): the loss window. */
  onRetransmissionTimeout(loss: LossEvent): void {
    this.onTimeout(loss.flight, loss.highSeq);
  }
}
