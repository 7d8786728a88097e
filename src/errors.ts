/**
 * The one error type callers must tell apart: every failure that reaches a
 * user (CLI or API) is a {@linkcode PilotError} with a code from the published
 * table, a one-line message and a hint. Anything else is a bug.
 *
 * @module
 */

/** Error codes of the control API and CLI (DESIGN.md, "Control API"). */
export const ERROR_CODES = {
  invalid_argument: { http: 400, exit: 2, retryable: false },
  unauthorized: { http: 401, exit: 1, retryable: false },
  not_found: { http: 404, exit: 1, retryable: false },
  not_trusted: { http: 403, exit: 4, retryable: false },
  pending_approval: { http: 409, exit: 4, retryable: false },
  rejected: { http: 403, exit: 4, retryable: false },
  key_changed: { http: 409, exit: 4, retryable: false },
  conflict: { http: 409, exit: 1, retryable: false },
  not_running: { http: 503, exit: 3, retryable: false },
  already_running: { http: 409, exit: 1, retryable: false },
  unreachable: { http: 504, exit: 5, retryable: true },
  timeout: { http: 504, exit: 5, retryable: true },
  rate_limited: { http: 429, exit: 5, retryable: true },
  too_large: { http: 413, exit: 1, retryable: false },
  clock_skew: { http: 409, exit: 1, retryable: false },
  version_mismatch: { http: 409, exit: 1, retryable: false },
  internal: { http: 500, exit: 1, retryable: false },
  task_failed: { http: 409, exit: 1, retryable: false },
} as const;

/** One of the published error codes. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** Returns true when `code` is a published error code. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(ERROR_CODES, code);
}

/** A user-facing failure: code, one-line message, hint. */
export class PilotError extends Error {
  /** The published error code. */
  readonly code: ErrorCode;
  /** What the user can do about it (one line, may be empty). */
  readonly hint: string;
  /** Id of the API request that failed, when a daemon answered. */
  requestId: string | undefined;

  /** Creates an error with a code, a one-line message and a hint. */
  constructor(code: ErrorCode, message: string, hint = "", requestId?: string) {
    super(message);
    this.name = "PilotError";
    this.code = code;
    this.hint = hint;
    this.requestId = requestId;
  }

  /** Whether retrying the same call may succeed. */
  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  /** HTTP status mirroring the code. */
  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }

  /** Process exit code mirroring the code. */
  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }
}

/** Shorthand for an `invalid_argument` error. */
export function invalid(message: string, hint = ""): PilotError {
  return new PilotError("invalid_argument", message, hint);
}

/**
 * `e` as the API reports it: a PilotError as it is, anything else (a bug of
 * ours) as `internal` with its message.
 */
export function asPilotError(e: unknown): PilotError {
  if (e instanceof PilotError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new PilotError("internal", `Internal error: ${message}`, "see the daemon log");
}

/** The error body of the API, also printed by the CLI with `--json`. */
export function errorBody(err: PilotError): Record<string, unknown> {
  return {
    status: "error",
    code: err.code,
    message: err.message,
    hint: err.hint,
    retryable: err.retryable,
    request_id: err.requestId ?? crypto.randomUUID(),
  };
}

/**
 * The error for a peer that did not answer, worded for a person: who (the
 * name the user gave, or its hostname or address), where it was tried, and
 * what to check. Every "no answer" a user sees is made here.
 *
 * @example
 * ```ts
 * import { noAnswer } from "./errors.ts";
 * noAnswer("timeout", "worker-2", "127.0.0.1:7441").message;
 * // "worker-2 (127.0.0.1:7441) did not answer: is its daemon running and is UDP reachable?"
 * ```
 */
export function noAnswer(
  code: "unreachable" | "timeout",
  name: string,
  endpoint: string | null,
  hint = "retrying is safe; `pilot peers` shows the path to it",
): PilotError {
  const where = endpoint === null || endpoint === name ? "" : ` (${endpoint})`;
  return new PilotError(
    code,
    `${name}${where} did not answer: is its daemon running and is UDP reachable?`,
    hint,
  );
}
