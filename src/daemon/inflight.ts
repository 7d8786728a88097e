/**
 * Admission of received datagrams into processing: how many, and how many
 * bytes, may be in flight at once (each may wait for a decryption or a
 * handshake computation), in all and from strangers (anything but a trusted
 * peer's current endpoint). Past a cap a datagram is dropped, and the caller
 * counts it, instead of queuing memory.
 *
 * @module
 */
import {
  MAX_INFLIGHT_DATAGRAM_BYTES,
  MAX_INFLIGHT_DATAGRAMS,
  MAX_INFLIGHT_STRANGER_BYTES,
  MAX_INFLIGHT_STRANGER_DATAGRAMS,
} from "../constants.ts";

/** The caps of {@linkcode InflightDatagrams}. */
export interface InflightLimits {
  /** Datagrams in flight at most. */
  count: number;
  /** Their bytes at most. */
  bytes: number;
  /** Of those, datagrams from strangers at most. */
  strangerCount: number;
  /** Their bytes at most. */
  strangerBytes: number;
}

/** The daemon's caps (constants.ts). */
export const INFLIGHT_LIMITS: InflightLimits = {
  count: MAX_INFLIGHT_DATAGRAMS,
  bytes: MAX_INFLIGHT_DATAGRAM_BYTES,
  strangerCount: MAX_INFLIGHT_STRANGER_DATAGRAMS,
  strangerBytes: MAX_INFLIGHT_STRANGER_BYTES,
};

/** Counts datagrams in processing against count and byte caps. */
export class InflightDatagrams {
  #limits: InflightLimits;
  #count = 0;
  #bytes = 0;
  #strangerCount = 0;
  #strangerBytes = 0;

  /** Admission under `limits` (the daemon's by default). */
  constructor(limits: InflightLimits = INFLIGHT_LIMITS) {
    this.#limits = limits;
  }

  /**
   * Takes a datagram of `size` bytes into processing, or returns false when
   * that would pass a cap; each true is followed by one `release` of the same.
   */
  admit(size: number, stranger: boolean): boolean {
    const l = this.#limits;
    if (this.#count >= l.count || this.#bytes + size > l.bytes) return false;
    if (
      stranger &&
      (this.#strangerCount >= l.strangerCount || this.#strangerBytes + size > l.strangerBytes)
    ) {
      return false;
    }
    this.#count++;
    this.#bytes += size;
    if (stranger) {
      this.#strangerCount++;
      this.#strangerBytes += size;
    }
    return true;
  }

  /** A datagram admitted with these arguments is done. */
  release(size: number, stranger: boolean): void {
    this.#count--;
    this.#bytes -= size;
    if (stranger) {
      this.#strangerCount--;
      this.#strangerBytes -= size;
    }
  }

  /** Datagrams and bytes in processing now. */
  get load(): { count: number; bytes: number; strangerCount: number; strangerBytes: number } {
    return {
      count: this.#count,
      bytes: this.#bytes,
      strangerCount: this.#strangerCount,
      strangerBytes: this.#strangerBytes,
    };
  }
}
