/**
 * The one error type of the stream layer; callers tell failures apart by
 * `code` (the daemon maps them to WebSocket close codes and API errors).
 *
 * @module
 */

/** Why a stream operation failed. */
export type StreamErrorCode =
  /** The peer refused the connection (no listener, or its cap). */
  | "refused"
  /** The connection was reset, by either side. */
  | "reset"
  /** No answer: connect timeout or idle timeout. */
  | "timeout"
  /** A local cap (connections per peer) refused the operation. */
  | "limit"
  /** The operation came after the connection or its direction was closed. */
  | "closed";

/** A failed stream operation. */
export class StreamError extends Error {
  /** Machine-readable cause. */
  readonly code: StreamErrorCode;
  /** The reason text (from the peer's RST when `remote`). */
  readonly reason: string;
  /** Whether the peer caused it (an RST it sent). */
  readonly remote: boolean;

  /** Creates a stream error; the message quotes the reason. */
  constructor(code: StreamErrorCode, reason: string, remote = false) {
    super(
      remote
        ? `Stream ${code} by the peer: ${JSON.stringify(reason)}`
        : `Stream ${code}: ${reason}`,
    );
    this.name = "StreamError";
    this.code = code;
    this.reason = reason;
    this.remote = remote;
  }
}
