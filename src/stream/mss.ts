/**
 * Maximum segment size: how much stream data fits one datagram after every
 * layer's overhead.
 *
 * @module
 */

import { DATA_HEADER_SIZE, MAX_DATA_FRAME_SIZE, TAG_SIZE } from "../wire/frames.ts";
import { INNER_HEADER_SIZE } from "../wire/inner.ts";
import { SEGMENT_HEADER_SIZE } from "../wire/stream_segment.ts";

/** Bytes every stream segment adds around its data on the way to UDP. */
export const STREAM_OVERHEAD: number = DATA_HEADER_SIZE + TAG_SIZE + INNER_HEADER_SIZE +
  SEGMENT_HEADER_SIZE;

/**
 * The MSS (data bytes per segment) that keeps every data-carrying datagram
 * within `udpPayloadLimit` bytes: the outer data header, the AEAD tag, the
 * inner header and the segment header are subtracted. Data segments never
 * carry SACK blocks, so they need no room for them; pure ACKs carry at most
 * 32 bytes of SACK blocks and no data, far below the limit.
 *
 * @example
 * ```ts
 * import { mssFor } from "./mss.ts";
 * mssFor(1400); // 1328
 * ```
 */
export function mssFor(udpPayloadLimit: number): number {
  const limit = Math.min(udpPayloadLimit, MAX_DATA_FRAME_SIZE);
  const mss = limit - STREAM_OVERHEAD;
  if (!Number.isInteger(udpPayloadLimit) || mss < 64) {
    throw new RangeError(
      `Invalid UDP payload limit ${udpPayloadLimit}: expected an integer of at least ${
        STREAM_OVERHEAD + 64
      }`,
    );
  }
  return mss;
}
