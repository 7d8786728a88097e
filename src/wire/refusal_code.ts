/**
 * The codes a receiver gives for refusing a message or a file: the `detail`
 * of a refused RECEIPT (docs/PROTOCOL.md §9.2, §9.3, §9.4). They are wire
 * values, so they live here; `services/refusal.ts` throws them.
 *
 * @module
 */

/** Every refusal code, in no particular order. */
export const REFUSAL_CODES = [
  "invalid_argument",
  "too_large",
  "rate_limited",
  "conflict",
  "disk_full",
  "io_error",
  "not_running",
  "cancelled",
  "size_mismatch",
  "hash_mismatch",
  "internal",
] as const;

/** Why a receiver refused a message or a file. */
export type RefusalCode = typeof REFUSAL_CODES[number];

const KNOWN: ReadonlySet<string> = new Set(REFUSAL_CODES);

/** Whether `s` is one of {@linkcode REFUSAL_CODES}. */
export function isRefusalCode(s: unknown): s is RefusalCode {
  return typeof s === "string" && KNOWN.has(s);
}
