/**
 * Caps and timers of the stream layer, with their defaults from
 * `constants.ts`. Timers may be shortened (tests), never lengthened past the
 * protocol's; caps may be raised or lowered by the daemon.
 *
 * @module
 */

import {
  STREAM_CONNECT_TIMEOUT_MS,
  STREAM_DELAYED_ACK_MS,
  STREAM_IDLE_TIMEOUT_MS,
  STREAM_INITIAL_RTO_MS,
  STREAM_KEEPALIVE_MS,
  STREAM_MAX_CONNECTIONS,
  STREAM_MAX_OUT_OF_ORDER,
  STREAM_MAX_RTO_MS,
  STREAM_MAX_TIME_WAIT,
  STREAM_MIN_RTO_MS,
  STREAM_PEER_BUFFER,
  STREAM_PERSIST_MAX_MS,
  STREAM_RECEIVE_BUFFER,
  STREAM_RESERVE_BUFFER,
  STREAM_SEND_BUFFER,
  STREAM_TIME_WAIT_MS,
  STREAM_WINDOW_GROWTH_MS,
} from "../constants.ts";
import { MAX_WINDOW } from "../wire/stream_segment.ts";

/** Memory and connection caps of one peer's streams. */
export interface StreamLimits {
  /** Bytes a connection holds for sending (written, unacknowledged). */
  sendBuffer: number;
  /** Bytes a connection holds for its reader: its largest receive window. */
  receiveBuffer: number;
  /** Bytes per connection and direction that never wait for the shared budget. */
  reserve: number;
  /** Shared bytes per direction for all of the peer's connections, beyond their reserves. */
  peerBuffer: number;
  /** Connections (not counting TIME_WAIT) at once. */
  maxConnections: number;
  /** TIME_WAIT connections kept; beyond, the oldest ends early. */
  maxTimeWait: number;
  /** Out-of-order segments held per connection. */
  maxOutOfOrder: number;
}

/** Timers of the stream layer (ms). */
export interface StreamTimers {
  /** RTO before the first RTT sample. */
  initialRtoMs: number;
  /** Lower bound of the RTO. */
  minRtoMs: number;
  /** Upper bound of the RTO and its backoff. */
  maxRtoMs: number;
  /** Longest delay of an ACK for a lone segment. */
  delayedAckMs: number;
  /** A keepalive probe after this long without a segment from the peer. */
  keepaliveMs: number;
  /** Reset after this long without a segment from the peer. */
  idleTimeoutMs: number;
  /** How long a closed connection absorbs late segments. */
  timeWaitMs: number;
  /** connect() gives up after this long. */
  connectTimeoutMs: number;
  /** Longest interval between zero-window probes. */
  persistMaxMs: number;
  /** A receive window doubles when a whole window arrived within this long (a bulk transfer). */
  windowGrowthMs: number;
}

/** The protocol's caps. */
export const DEFAULT_LIMITS: Readonly<StreamLimits> = {
  sendBuffer: STREAM_SEND_BUFFER,
  receiveBuffer: STREAM_RECEIVE_BUFFER,
  reserve: STREAM_RESERVE_BUFFER,
  peerBuffer: STREAM_PEER_BUFFER,
  maxConnections: STREAM_MAX_CONNECTIONS,
  maxTimeWait: STREAM_MAX_TIME_WAIT,
  maxOutOfOrder: STREAM_MAX_OUT_OF_ORDER,
};

/** The protocol's timers. */
export const DEFAULT_STREAM_TIMERS: Readonly<StreamTimers> = {
  initialRtoMs: STREAM_INITIAL_RTO_MS,
  minRtoMs: STREAM_MIN_RTO_MS,
  maxRtoMs: STREAM_MAX_RTO_MS,
  delayedAckMs: STREAM_DELAYED_ACK_MS,
  keepaliveMs: STREAM_KEEPALIVE_MS,
  idleTimeoutMs: STREAM_IDLE_TIMEOUT_MS,
  timeWaitMs: STREAM_TIME_WAIT_MS,
  connectTimeoutMs: STREAM_CONNECT_TIMEOUT_MS,
  persistMaxMs: STREAM_PERSIST_MAX_MS,
  windowGrowthMs: STREAM_WINDOW_GROWTH_MS,
};

/** Fills in default caps; throws `RangeError` for a cap that is not a positive integer. */
export function resolveLimits(partial: Partial<StreamLimits> = {}): StreamLimits {
  const out = { ...DEFAULT_LIMITS, ...partial };
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isSafeInteger(v) || v <= 0) {
      throw new RangeError(`Invalid stream limit ${k} ${v}: expected a positive integer`);
    }
  }
  if (out.receiveBuffer > MAX_WINDOW) {
    throw new RangeError(
      `Invalid stream limit receiveBuffer ${out.receiveBuffer}: expected at most ${MAX_WINDOW}`,
    );
  }
  return out;
}

/** Fills in default timers, each at most its default; throws `RangeError` for a non-positive one. */
export function resolveTimers(partial: Partial<StreamTimers> = {}): StreamTimers {
  const out = { ...DEFAULT_STREAM_TIMERS };
  for (const [k, v] of Object.entries(partial) as [keyof StreamTimers, number][]) {
    if (v === undefined) continue;
    if (!(typeof v === "number" && v > 0 && Number.isFinite(v))) {
      throw new RangeError(`Invalid stream timer ${k} ${v}: expected a positive number of ms`);
    }
    out[k] = Math.min(v, DEFAULT_STREAM_TIMERS[k]);
  }
  if (out.minRtoMs > out.maxRtoMs) out.minRtoMs = out.maxRtoMs;
  return out;
}
