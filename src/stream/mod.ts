/**
 * Reliable streams on virtual ports: a TCP-like transport that runs inside
 * the encrypted tunnel, one {@linkcode StreamMux} per peer.
 *
 * ## Layering and wiring
 *
 * `stream/` sits above `session/` and below `services/`, and does no I/O of
 * its own: it is pure and clock-injected, so the whole protocol is tested
 * over a simulated link (`tests/_sim_link.ts`). The daemon wires it:
 *
 * ```ts ignore
 * const mux = new StreamMux({
 *   send: (p) => void sessions.send(peerKeyHex, { kind: "stream", ...p }),
 *   now: () => performance.now(),
 *   mss: mssFor(MAX_DATAGRAM),          // larger only where the path is loopback
 *   wake: (at) => rearmTimer(at, () => mux.tick()),
 * });
 * // in deliver(): packets of kind "stream" from that peer
 * mux.receive(packet);                  // { srcPort, dstPort, payload }
 * mux.listen(PORT_MESSAGES, (conn) => serve(conn));
 * const conn = await mux.connect(PORT_ECHO);
 * ```
 *
 * One mux per peer key (not per session: it outlives rekeys), so a slow or
 * silent peer only ever fills its own caps. The session layer's trust gate
 * runs before `receive()`. `mux.close(reason)` ends everything when the peer
 * is untrusted or gone.
 *
 * ## Segment (payload of an inner packet of kind 0x02)
 *
 * Ports live in the inner header; a connection is identified by
 * (peer key, local port, remote port, conn id), and conn ids are unique
 * within a mux (the opener picks a random non-zero u32).
 *
 * | offset | size | field    | meaning                                                    |
 * |-------:|-----:|----------|------------------------------------------------------------|
 * | 0      | 1    | flags    | SYN 0x01, ACK 0x02, FIN 0x04, RST 0x08, PROBE 0x10         |
 * | 1      | 1    | nsack    | SACK blocks that follow, 0–4 (only with ACK)               |
 * | 2      | 4    | conn id  | chosen by the opener                                       |
 * | 6      | 8    | seq      | u64 byte offset of the first data byte (or SYN/FIN)        |
 * | 14     | 8    | ack      | u64 cumulative: next offset expected (0 without ACK)       |
 * | 22     | 4    | window   | bytes accepted beyond ack (beyond offset 1 on a SYN)       |
 * | 26     | 8×n  | sack     | n × (u32 start − ack, u32 end − ack), 0 < start < end      |
 * | …      | rest | data     | stream bytes; SYN: u32 MSS; RST: UTF-8 reason ≤ 128 bytes  |
 *
 * Sequence numbers are u64 byte offsets that never wrap (no wraparound
 * arithmetic, no PAWS); decoders refuse values above 2^53 − 1 so they stay
 * exact numbers. The SYN takes offset 0, data starts at 1, the FIN takes
 * the offset after the last byte. Conn ids and authenticated peers replace
 * random initial sequence numbers: nobody off-path can inject segments.
 * There is no timestamp option: RTT is measured per ACK from the send time
 * of the newest newly acknowledged segment that was sent exactly once
 * (Karn's algorithm), skipping cumulative ACKs that also cover a
 * retransmission and ACKs that ride on a probe or a retransmission (the
 * peer's timer, not our data, sent those). PROBE (no data) asks for an
 * immediate ACK: zero-window probes and keepalives. Data segments carry no
 * SACK blocks; pure ACKs carry up to 4, so a data segment is at most
 * MSS + 26 bytes. Worked examples: `tests/stream_segment_test.ts`.
 *
 * ## Connection
 *
 * - Open: SYN → SYN|ACK → ACK (RFC 9293's three-way handshake; no
 *   simultaneous open). SYN and SYN|ACK carry each side's MSS and receive
 *   window; both are retransmitted with RTO backoff until
 *   `connectTimeoutMs`. `connect()` resolves, and a listener's `onAccept`
 *   runs, once the handshake completes.
 * - Transfer: sliding window limited by min(cwnd, peer's window, the
 *   mux's `maxFlight`); ACK once `STREAM_ACK_BYTES` or two of the largest
 *   segments arrived in order (stretch ACKs for small segments, every second
 *   large one), else after `delayedAckMs` (1 ms), at once for
 *   out-of-order data, gap fills, FIN and PROBE. Nagle (RFC 896) for short tails unless
 *   `noDelay`.
 * - RTO: RFC 6298 (SRTT, RTTVAR, K = 4, G = 1 ms, min 200 ms configurable,
 *   max 60 s, doubling backoff, Karn).
 * - Loss recovery: SACK (RFC 2018) scoreboard with RFC 6675's pipe; a
 *   segment is lost when SACKed data lies 3 segments beyond it or after 3
 *   duplicate ACKs (fast retransmit, without waiting for the RTO), or, as
 *   RACK (RFC 8985) has it, once a segment sent after it was delivered and
 *   it is overdue by RTT + SRTT/4 (a timer covers the wait): this finds
 *   lost retransmissions and losses in windows too small for 3 duplicate
 *   ACKs. Only missing ranges are retransmitted. An RTO marks every
 *   un-SACKed segment lost (receivers never renege); retransmitting the
 *   oldest segment restarts the RTO timer.
 * - Congestion control: **NewReno** (RFC 5681, RFC 6582), cwnd in bytes,
 *   initial window per RFC 6928, slow start with byte counting (RFC 3465,
 *   L = max(2 SMSS, `STREAM_ACK_BYTES`)), congestion avoidance +1 SMSS per cwnd acknowledged, fast
 *   recovery: ssthresh = cwnd = max(FlightSize / 2, 2 SMSS) once per window
 *   (the recovery point), exit at a full ACK with cwnd = ssthresh, RTO:
 *   cwnd = 1 SMSS. cwnd only grows while the sender is cwnd-limited (or
 *   paced), and falls back to the initial window after an idle RTO, and
 *   congestion avoidance holds it while a queue stands on the path (the
 *   delay brake, `delay_brake.ts`). Other algorithms plug in through the
 *   mux's `congestion` option
 *   ({@linkcode CongestionControl}).
 * - Pacing (`pacer.ts`): once an RTT is known, segments leave at
 *   2 × cwnd / srtt in slow start and 1.25 × cwnd / srtt after, in bursts
 *   of what that rate earns in 4 ms.
 * - Flow control: the receive window is what the capped receive buffer
 *   still admits; the right edge never moves left and grows in steps of at
 *   least min(window / 2, MSS) (receiver SWS avoidance). Auto-tuning: a
 *   connection's window starts at its `reserve` and doubles (up to
 *   `receiveBuffer`) whenever more than a quarter of it is unread or a
 *   whole window arrived within `windowGrowthMs` (a bulk transfer), so idle
 *   streams and streams of requests hold little of the peer's budget. A
 *   zero window arms the
 *   persist timer: PROBEs at RTO × 2^n up to `persistMaxMs` (keepalives
 *   pause meanwhile).
 * - Keepalive and idle: a PROBE after `keepaliveMs` without a segment from
 *   the peer, reset with reason "idle timeout" after `idleTimeoutMs`.
 * - Close: `close()` half-closes (FIN after all written data); reading goes
 *   on until the peer's FIN (read() → null). States and transitions as RFC
 *   9293 (FIN-WAIT-1/2, CLOSE-WAIT, CLOSING, LAST-ACK). The side that closes
 *   first spends `timeWaitMs` (2 × MSL, 30 s) in TIME_WAIT acknowledging
 *   late FINs; at most `maxTimeWait` per peer (the oldest ends early).
 * - Reset: `reset(reason)` sends RST with the reason and fails pending
 *   operations with {@linkcode StreamError} (`reset`; `refused` when it
 *   answers a SYN; `timeout` for connect/idle; `limit` for our caps).
 *
 * ## Memory
 *
 * Per connection: at most `sendBuffer` bytes written and unacknowledged
 * (`write()` resolves only when there is room), at most `receiveBuffer`
 * bytes received and unread (the window), at most `maxOutOfOrder` held
 * segments. Per peer and direction: every connection's first `reserve`
 * bytes are its own, anything beyond comes from a shared `peerBuffer`
 * budget, so a peer costs at most `peerBuffer + reserve × maxConnections`
 * per direction. A SYN beyond `maxConnections` is answered with RST
 * ("too many connections").
 *
 * ## Copies
 *
 * `write()` keeps a reference to the caller's bytes (no copy); each segment
 * is encoded once from views of them, into slabs shared by many segments
 * (no allocation per segment). Received data is handed to the reader as
 * views of the decrypted segments, except a piece that would keep alive a
 * datagram much larger than itself (a retransmission that overlaps data
 * already received, say): that piece is copied, so received bytes pin
 * about what the window counts (`PIN_SLACK` in `receive_buffer.ts`).
 * Per-segment work is O(1) amortised (SACK lookups are O(log n)). `send`
 * errors count as losses.
 *
 * ## Files
 *
 * - `mux.ts`: one peer's connections, listeners and caps.
 * - `connection.ts`: one stream's state machine and public API;
 *   `state.ts`: its states, transition table and diagram;
 *   `deadlines.ts`: its timers.
 * - `sender.ts` and `receiver.ts`: the two directions of a connection.
 * - `congestion.ts`: the congestion-control interface; `new_reno.ts`: NewReno
 *   (with `hystart.ts` and `delay_brake.ts`, which count round trips with `rtt_rounds.ts`).
 * - `send_buffer.ts`, `receive_buffer.ts`, `scoreboard.ts`, `rto.ts`,
 *   `budget.ts`: the pieces the halves are made of.
 * - `options.ts` (caps and timers), `mss.ts`, `error.ts`.
 *
 * @module
 */

export { Budget } from "./budget.ts";
export {
  type AckEvent,
  type CongestionControl,
  type CongestionFactory,
  type CongestionOptions,
  initialWindow,
  type LossEvent,
} from "./congestion.ts";
export { NewReno } from "./new_reno.ts";
export { Connection, type ConnectionStats } from "./connection.ts";
export { StreamError, type StreamErrorCode } from "./error.ts";
export { mssFor, STREAM_OVERHEAD } from "./mss.ts";
export {
  type ConnectOptions,
  type ListenOptions,
  StreamMux,
  type StreamMuxOptions,
  type StreamMuxStats,
  type StreamPacket,
} from "./mux.ts";
export {
  DEFAULT_LIMITS,
  DEFAULT_STREAM_TIMERS,
  resolveLimits,
  resolveTimers,
  type StreamLimits,
  type StreamTimers,
} from "./options.ts";
export { RtoEstimator, type RtoOptions } from "./rto.ts";
export { assertTransition, type ConnectionState, TRANSITIONS } from "./state.ts";
export type { SackBlock, StreamSegment } from "../wire/stream_segment.ts";
