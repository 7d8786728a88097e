/**
 * The bench's targets, as data: each figure's bound, either a number or a
 * multiple of another figure of the same run. Each measurement module
 * exports the targets of its own figures; `bench.ts` merges them and prints,
 * for every target, whether the run met it (null: not measured).
 *
 * @module
 */
import type { Figures } from "./_common.ts";

/** One figure's bound. */
export type Target =
  /** At least this much. */
  | { min: number }
  /** At most this much. */
  | { max: number }
  /** At least `times` × the figure `of` (of the same run). */
  | { min_times: number; of: string }
  /** At most `times` × the figure `of` (of the same run). */
  | { max_times: number; of: string };

/** Targets by figure name. */
export type Targets = Record<string, Target>;

function number(figures: Figures, name: string): number | null {
  const v = figures[name];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** Whether each target is met by `figures`; null when the figure (or the one it is relative to) is missing. */
export function metOf(targets: Targets, figures: Figures): Record<string, boolean | null> {
  const met: Record<string, boolean | null> = {};
  for (const [name, t] of Object.entries(targets)) {
    const v = number(figures, name);
    if ("of" in t) {
      const base = number(figures, t.of);
      met[name] = v === null || base === null
        ? null
        : "min_times" in t
        ? v >= t.min_times * base
        : v <= t.max_times * base;
    } else {
      met[name] = v === null ? null : "min" in t ? v >= t.min : v <= t.max;
    }
  }
  return met;
}
