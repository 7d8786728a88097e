/**
 * Flags built from a route's input fields, so a flag's default and bounds
 * are the API's, and reading the values the parser filled in.
 *
 * @module
 */
import type { FieldSpec } from "../control/contract/spec.ts";
import { PEER_FIELD } from "../control/contract/common.ts";
import type { ArgSpec, CommandContext, FlagSpec } from "./command.ts";
import { formatDuration } from "./parse.ts";

/**
 * A duration flag for a `…_ms` field: its default and bounds. With
 * `unlimited`, the command renews its waits, so the flag has no upper bound
 * and takes `0` or `none` for no limit.
 */
export function durationFlag(
  field: FieldSpec,
  description: string,
  options: { unlimited?: boolean; defaultWith?: { flag: string; value: string } } = {},
): FlagSpec {
  return {
    type: "duration",
    description,
    ...(typeof field.default === "number" ? { default: formatDuration(field.default) } : {}),
    ...(field.min !== undefined ? { min: field.min } : {}),
    ...(options.unlimited
      ? { unlimited: true }
      : field.max !== undefined
      ? { max: field.max }
      : {}),
    ...(options.defaultWith ? { defaultWith: options.defaultWith } : {}),
  };
}

/** An integer flag for an integer field: its default and bounds. */
export function integerFlag(field: FieldSpec, value: string, description: string): FlagSpec {
  return {
    type: "integer",
    value,
    description,
    ...(typeof field.default === "number" ? { default: String(field.default) } : {}),
    ...(field.min !== undefined ? { min: field.min } : {}),
    ...(field.max !== undefined ? { max: field.max } : {}),
  };
}

/** A number flag's value; the parser has applied its default. */
export function numberFlag(ctx: CommandContext, name: string): number {
  const v = ctx.flags[name];
  if (typeof v !== "number") throw new TypeError(`Flag --${name} has no number (no default?)`);
  return v;
}

/** A number flag's value, or undefined when absent and without default. */
export function optionalNumber(ctx: CommandContext, name: string): number | undefined {
  const v = ctx.flags[name];
  return typeof v === "number" ? v : undefined;
}

/** A string flag's value, or undefined when absent. */
export function optionalString(ctx: CommandContext, name: string): string | undefined {
  const v = ctx.flags[name];
  return typeof v === "string" ? v : undefined;
}

/** A flag as given, with no default filled in (so that giving it can be told apart). */
export function withoutDefault(spec: FlagSpec): FlagSpec {
  const { default: _, ...rest } = spec;
  return rest;
}

/** The peer argument of every command that reaches a peer: any way of naming one. */
export const PEER_ARG: ArgSpec = {
  name: "peer",
  description: PEER_FIELD.description,
  required: true,
};

/** The peer argument of a command about a peer already known here (a request, a trust). */
export const KNOWN_PEER_ARG: ArgSpec = {
  name: "peer",
  description: "address, hostname, fingerprint or key",
  required: true,
};
