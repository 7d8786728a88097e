/**
 * Ages for people, as `pilot peers` and `pilot status` print them: one short
 * unit (`45s`, `12m`, `3h`, `2d`) that keeps table columns narrow.
 *
 * @module
 */

/**
 * A duration as one short unit, rounded down.
 *
 * @example
 * ```ts
 * import { shortAge } from "./time_ago.ts";
 * shortAge(90_000); // "1m"
 * ```
 */
export function shortAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/**
 * How long ago an ISO time was (`12s ago`), or `-` for none or an unreadable
 * one; a time ahead of `now` (another clock) counts as now.
 *
 * @example
 * ```ts
 * import { ago } from "./time_ago.ts";
 * ago("2026-12-03T09:00:00.000Z", Date.parse("2026-12-03T09:02:30.000Z")); // "2m ago"
 * ```
 */
export function ago(iso: string | null | undefined, now: number = Date.now()): string {
  const t = typeof iso === "string" ? Date.parse(iso) : NaN;
  return Number.isNaN(t) ? "-" : `${shortAge(now - t)} ago`;
}
