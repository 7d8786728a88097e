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
import { InFlightCap } from "../session/in_flight.ts";

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

/** Counts datagrams in processing against count and byte caps, in all and from strangers. */
export class InflightDatagrams {
  #all: InFlightCap;
  #strangers: InFlightCap;

  /** Admission under `limits` (the daemon's by default). */
  constructor(limits: InflightLimits = INFLIGHT_LIMITS) {
    this.#all = new InFlightCap(limits.count, limits.bytes);
    this.#strangers = new InFlightCap(limits.strangerCount, limits.strangerBytes);
  }

  /**
   * Takes a datagram of `size` bytes into processing, or returns false when
   * that would pass a cap; each true is followed by one `release` of the same.
   */
  admit(size: number, stranger: boolean): boolean {
    if (!this.#all.fits(size) || (stranger && !this.#strangers.fits(size))) return false;
    this.#all.take(size);
    if (stranger) this.#strangers.take(size);
    return true;
  }

  /** A datagram admitted with these arguments is done. */
  release(size: number, stranger: boolean): void {
    this.#all.give(size);
    if (stranger) this.#strangers.give(size);
  }

  /** Datagrams and bytes in processing now. */
  get load(): { count: number; bytes: number; strangerCount: number; strangerBytes: number } {
    return {
      count: this.#all.count,
      bytes: this.#all.bytes,
      strangerCount: this.#strangers.count,
      strangerBytes: this.#strangers.bytes,
    };
  }
}
