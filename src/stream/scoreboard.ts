/**
 * The sender's record of every segment sent and not yet cumulatively
 * acknowledged: which ones the receiver SACKed, which are deemed lost, and
 * how many bytes are really in flight (RFC 6675's "pipe").
 *
 * Loss detection, each step O(1) amortised per segment:
 * - forward acknowledgement: a segment sent once is lost when SACKed data
 *   reaches `DupThresh` segments (in bytes) beyond it — RFC 6675's IsLost
 *   measured from the highest SACKed byte;
 * - three duplicate ACKs mark the first segment lost (RFC 5681);
 * - time-based, after RACK (RFC 8985): a segment (original or
 *   retransmission) is lost once a segment sent after it was delivered and
 *   it is overdue by a reordering window: now >= sent + RACK.rtt + reoWnd.
 *   This finds lost retransmissions and losses in small windows, where the
 *   two rules above never trigger; the caller arms a timer for the earliest
 *   segment not yet overdue;
 * - a retransmission timeout marks everything not SACKed lost.
 *
 * Receivers never renege on SACKed data (`ReceiveBuffer`), so SACK marks
 * survive a timeout.
 *
 * @module
 */

/** One segment as sent: sequence range `[start, end)` (a FIN counts one). */
export interface TxSegment {
  /** First sequence number. */
  start: number;
  /** One past the last sequence number. */
  end: number;
  /** Carries the FIN (and no data). */
  fin: boolean;
  /** Time of the latest transmission. */
  sentAt: number;
  /** The receiver reported it in a SACK block. */
  sacked: boolean;
  /** Deemed lost and not retransmitted since. */
  lost: boolean;
  /** Sent more than once: its ACK cannot time a round trip (Karn). */
  retransmitted: boolean;
  /** Position in the board since it was created. */
  index: number;
}

/** What one acknowledgement changed, filled by the board. */
export interface AckResult {
  /** Bytes newly acknowledged cumulatively that had not been SACKed. */
  acked: number;
  /** Bytes newly SACKed. */
  sacked: number;
  /**
   * Latest send time among newly acknowledged segments that time a round
   * trip unambiguously, or -1: sent once and never deemed lost (Karn), and
   * a cumulative ACK counts only if it acknowledges no retransmission (it
   * may then answer the retransmission, not the older segments it covers).
   */
  newest: number;
}

/** The unacknowledged segments of one connection, oldest first. */
export class Scoreboard {
  #segs: TxSegment[] = [];
  #head = 0;
  #base = 0;
  #next = 0;
  #pipe = 0;
  #sackedBytes = 0;
  #lostCount = 0;
  #fack = 0;
  #lossScan = 0;
  #rackScan = 0;
  #rexmit = 0;
  #rackTime = -1;
  #rackRtt = 0;
  #retxInFlight = new Set<TxSegment>();

  /** Bytes sent and neither SACKed nor deemed lost (RFC 6675 "pipe"). */
  get pipe(): number {
    return this.#pipe;
  }

  /** Segments waiting for cumulative acknowledgement. */
  get length(): number {
    return this.#segs.length - this.#head;
  }

  /** Segments deemed lost and not yet retransmitted. */
  get lostCount(): number {
    return this.#lostCount;
  }

  /** Bytes SACKed above the cumulative ACK. */
  get sackedBytes(): number {
    return this.#sackedBytes;
  }

  /** End of the highest SACKed segment (forward acknowledgement), 0 when none. */
  get fack(): number {
    return this.#fack;
  }

  /** The oldest unacknowledged segment. */
  first(): TxSegment | undefined {
    return this.#segs[this.#head];
  }

  #at(index: number): TxSegment | undefined {
    return this.#segs[index - this.#base];
  }

  /** Records a first transmission of `[start, end)` at `now`. */
  add(start: number, end: number, fin: boolean, now: number): TxSegment {
    const seg: TxSegment = {
      start,
      end,
      fin,
      sentAt: now,
      sacked: false,
      lost: false,
      retransmitted: false,
      index: this.#next++,
    };
    this.#segs.push(seg);
    this.#pipe += end - start;
    return seg;
  }

  /** Newest send time of a segment that may time this ACK, or -1. */
  #timing(seg: TxSegment): number {
    if (seg.retransmitted) {
      this.#retxInFlight.delete(seg);
      return -1;
    }
    return seg.lost ? -1 : seg.sentAt;
  }

  /**
   * RACK's clock: the newest send time among segments delivered by this ACK
   * and sent once (`newest`, from {@linkcode AckResult}), and its RTT.
   */
  delivered(newest: number, now: number): void {
    if (newest > this.#rackTime) {
      this.#rackTime = newest;
      this.#rackRtt = now - newest;
    }
  }

  /** Cumulative acknowledgement of everything below `ack`. */
  ackTo(ack: number, out: AckResult): void {
    let newest = -1;
    let ambiguous = false;
    while (this.#head < this.#segs.length) {
      const seg = this.#segs[this.#head]!;
      if (seg.start >= ack) break;
      if (seg.end > ack) {
        // The receiver took part of it (its window cut the segment).
        const part = ack - seg.start;
        if (seg.sacked) {
          this.#sackedBytes -= part;
        } else {
          out.acked += part;
          if (!seg.lost) this.#pipe -= part;
        }
        seg.start = ack;
        break;
      }
      const len = seg.end - seg.start;
      if (seg.sacked) {
        this.#sackedBytes -= len;
      } else {
        out.acked += len;
        if (seg.retransmitted) ambiguous = true;
        const t = this.#timing(seg);
        if (t > newest) newest = t;
        if (seg.lost) this.#lostCount--;
        else this.#pipe -= len;
      }
      this.#head++;
    }
    if (!ambiguous && newest > out.newest) out.newest = newest;
    if (this.#head === this.#segs.length) {
      this.#base += this.#head;
      this.#segs.length = 0;
      this.#head = 0;
      this.#fack = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#segs.length) {
      this.#segs.splice(0, this.#head);
      this.#base += this.#head;
      this.#head = 0;
    }
  }

  /** Index (into #segs) of the first segment starting at or after `seq`. */
  #lowerBound(seq: number): number {
    let lo = this.#head;
    let hi = this.#segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#segs[mid]!.start < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** A SACK block `[start, end)`: marks every segment it fully covers. */
  sack(start: number, end: number, out: AckResult): void {
    if (end <= start) return;
    for (let i = this.#lowerBound(start); i < this.#segs.length; i++) {
      const seg = this.#segs[i]!;
      if (seg.end > end) break;
      if (seg.sacked) continue;
      const len = seg.end - seg.start;
      seg.sacked = true;
      this.#sackedBytes += len;
      out.sacked += len;
      const t = this.#timing(seg);
      if (t > out.newest) out.newest = t;
      if (seg.lost) {
        seg.lost = false;
        this.#lostCount--;
      } else {
        this.#pipe -= len;
      }
      if (seg.end > this.#fack) this.#fack = seg.end;
    }
  }

  #markLost(seg: TxSegment): void {
    if (seg.sacked || seg.lost) return;
    seg.lost = true;
    this.#pipe -= seg.end - seg.start;
    this.#lostCount++;
    this.#retxInFlight.delete(seg);
    if (seg.index < this.#rexmit) this.#rexmit = seg.index;
  }

  /**
   * Applies the loss rules: forward acknowledgement with `threshold` bytes,
   * the first segment when `dupAcks` reached 3, and RACK with a reordering
   * window of `reorderMs` at time `now`. Returns when the earliest segment
   * that is not yet overdue will be (Infinity: none).
   */
  detectLosses(threshold: number, dupAcks: number, reorderMs: number, now: number): number {
    const end = this.#base + this.#segs.length;
    let i = Math.max(this.#lossScan, this.#base + this.#head);
    for (; i < end; i++) {
      const seg = this.#at(i)!;
      if (seg.end + threshold > this.#fack) break;
      if (!seg.retransmitted) this.#markLost(seg);
    }
    this.#lossScan = i;
    if (dupAcks >= 3) {
      const first = this.first();
      if (first !== undefined && !first.retransmitted) this.#markLost(first);
    }
    let next = Infinity;
    if (this.#rackTime < 0) return next;
    const wait = this.#rackRtt + reorderMs;
    // First transmissions are in send order, so one pointer walks them.
    i = Math.max(this.#rackScan, this.#base + this.#head);
    for (; i < end; i++) {
      const seg = this.#at(i)!;
      if (seg.sacked || seg.lost || seg.retransmitted) continue;
      if (seg.sentAt >= this.#rackTime) break;
      const due = seg.sentAt + wait;
      if (now < due) {
        next = due;
        break;
      }
      this.#markLost(seg);
    }
    this.#rackScan = i;
    for (const seg of this.#retxInFlight) {
      if (seg.sentAt >= this.#rackTime) continue;
      const due = seg.sentAt + wait;
      if (now >= due) this.#markLost(seg);
      else if (due < next) next = due;
    }
    return next;
  }

  /** Retransmission timeout: everything not SACKed is lost. */
  markAllLost(): void {
    for (let i = this.#head; i < this.#segs.length; i++) this.#markLost(this.#segs[i]!);
    this.#retxInFlight.clear();
  }

  /** The lowest segment deemed lost, or undefined. */
  nextLost(): TxSegment | undefined {
    if (this.#lostCount === 0) return undefined;
    let i = Math.max(this.#rexmit, this.#base + this.#head);
    const end = this.#base + this.#segs.length;
    for (; i < end; i++) {
      const seg = this.#at(i)!;
      if (seg.lost) {
        this.#rexmit = i;
        return seg;
      }
    }
    this.#rexmit = i;
    return undefined;
  }

  /** Records a retransmission of a lost segment at `now`. */
  retransmitted(seg: TxSegment, now: number): void {
    if (seg.lost) {
      seg.lost = false;
      this.#lostCount--;
      this.#pipe += seg.end - seg.start;
    }
    seg.retransmitted = true;
    seg.sentAt = now;
    this.#retxInFlight.add(seg);
    if (this.#rexmit === seg.index) this.#rexmit = seg.index + 1;
  }

  /** Forgets everything (reset). */
  clear(): void {
    this.#base += this.#segs.length;
    this.#segs.length = 0;
    this.#head = 0;
    this.#pipe = 0;
    this.#sackedBytes = 0;
    this.#lostCount = 0;
    this.#fack = 0;
    this.#retxInFlight.clear();
  }
}
