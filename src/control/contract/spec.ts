/**
 * The shape of a route's contract: its method and path, the input fields it
 * takes (type, default, bounds) and the schema of its `data`. The route
 * checks its input with `parseInput`, the CLI builds its flags and defaults
 * from the same fields, and `pilot help --json` publishes both, so the three
 * cannot drift.
 *
 * @module
 */
import { invalid } from "../../errors.ts";
import type { Schema } from "../schema.ts";

/** A route key as the server's table spells it, e.g. `POST /v1/send`. */
export type RouteKey = `${"GET" | "POST"} /v1/${string}`;

/** What a field holds. `json` is any JSON value; `strings` a non-empty list of strings. */
export type FieldType = "string" | "boolean" | "integer" | "number" | "strings" | "json";

/** One input field of a route (a body field, or a query parameter of a GET). */
export interface FieldSpec {
  /** Value type. */
  readonly type: FieldType;
  /** One line for the docs and `help --json`. */
  readonly description: string;
  /** Must be given (a string must then be non-empty). */
  readonly required?: true;
  /** Value used when the field is absent. */
  readonly default?: string | number | boolean;
  /** Smallest number allowed. */
  readonly min?: number;
  /** Largest number allowed. */
  readonly max?: number;
  /** The only strings allowed. */
  readonly values?: readonly string[];
}

/** A route's contract. */
export interface RouteSpec {
  /** Method and path. */
  readonly route: RouteKey;
  /** Input fields by name. */
  readonly input: Readonly<Record<string, FieldSpec>>;
  /** Schema of `data` in the answer (of each line for `subscribe`, which only streams). */
  readonly output: Schema;
  /**
   * Schema of each line when the route streams: an NDJSON line (`follow`,
   * `progress`, `subscribe`) or a JSON text frame of a WebSocket route.
   * Absent when the route never streams.
   */
  readonly lines?: Schema;
}

type Value<F> = F extends { type: "string" } ? string
  : F extends { type: "boolean" } ? boolean
  : F extends { type: "integer" | "number" } ? number
  : F extends { type: "strings" } ? string[]
  : unknown;

type Present<I> = {
  [K in keyof I]: I[K] extends { required: true } | { default: unknown } ? K : never;
}[keyof I];

/** The typed input a route receives once `parseInput` accepted it (defaults applied). */
export type Input<I> =
  & { [K in Present<I>]: Value<I[K]> }
  & { [K in Exclude<keyof I, Present<I>>]?: Value<I[K]> };

/** Declares a route's contract, keeping its literal types for `Input` and `Infer`. */
export function route<const R extends RouteSpec>(spec: R): R {
  return spec;
}

function bounds(name: string, what: string, f: FieldSpec, where: string): string {
  const range = f.min !== undefined && f.max !== undefined
    ? ` from ${f.min} to ${f.max}`
    : f.min !== undefined
    ? ` of at least ${f.min}`
    : f.max !== undefined
    ? ` of at most ${f.max}`
    : "";
  return `${where} "${name}" must be ${what}${range}`;
}

function checkNumber(name: string, f: FieldSpec, v: number, where: string): number {
  const whole = f.type === "integer";
  if (
    !Number.isFinite(v) || (whole && !Number.isSafeInteger(v)) ||
    (f.min !== undefined && v < f.min) || (f.max !== undefined && v > f.max)
  ) {
    throw invalid(bounds(name, whole ? "a whole number" : "a number", f, where));
  }
  return v;
}

function fromQuery(name: string, f: FieldSpec, text: string): unknown {
  switch (f.type) {
    case "boolean":
      if (text === "true" || text === "false") return text === "true";
      throw invalid(`Query parameter "${name}" must be true or false`);
    case "integer":
    case "number":
      if (!/^-?\d+(\.\d+)?$/.test(text)) {
        throw invalid(
          bounds(name, f.type === "integer" ? "a whole number" : "a number", f, "Query parameter"),
        );
      }
      return Number(text);
    default:
      return text;
  }
}

function check(name: string, f: FieldSpec, v: unknown, where: string): unknown {
  switch (f.type) {
    case "string":
      if (typeof v !== "string" || (f.required && v === "")) {
        throw invalid(`${where} "${name}" must be a ${f.required ? "non-empty " : ""}string`);
      }
      if (f.values !== undefined && !f.values.includes(v)) {
        throw invalid(
          `${where} "${name}" must be ${f.values.map((x) => `"${x}"`).join(" or ")}`,
        );
      }
      return v;
    case "boolean":
      if (typeof v !== "boolean") throw invalid(`${where} "${name}" must be true or false`);
      return v;
    case "integer":
    case "number":
      if (typeof v !== "number") {
        throw invalid(bounds(name, f.type === "integer" ? "a whole number" : "a number", f, where));
      }
      return checkNumber(name, f, v, where);
    case "strings":
      if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === "string")) {
        throw invalid(`${where} "${name}" must be a non-empty list of strings`);
      }
      return v;
    case "json":
      return v;
  }
}

/**
 * Checks a route's input against its fields: required ones must be there,
 * defaults fill the rest, and every bound is checked. A POST route reads its
 * JSON body, where an unknown field is refused by name; a GET route reads its
 * query, where parameters of the transport (`flow`, `heartbeat_ms`) may also
 * appear.
 */
export function parseInput<R extends RouteSpec>(
  spec: R,
  source: unknown,
): Input<R["input"]> {
  const isQuery = source instanceof URLSearchParams;
  const where = isQuery ? "Query parameter" : "Field";
  let given: Record<string, unknown>;
  if (isQuery) {
    given = {};
    for (const [k, v] of source) if (v !== "") given[k] = v;
  } else if (source === undefined) {
    given = {};
  } else if (typeof source !== "object" || source === null || Array.isArray(source)) {
    throw invalid("Request body must be a JSON object");
  } else {
    given = source as Record<string, unknown>;
  }
  if (!isQuery) {
    // A misspelt field would otherwise be ignored and its default used in silence.
    for (const k of Object.keys(given)) {
      if (!Object.hasOwn(spec.input, k)) {
        throw invalid(
          `Unknown field "${k}" for ${spec.route}`,
          `known fields: ${Object.keys(spec.input).join(", ") || "none"}`,
        );
      }
    }
  }
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(spec.input)) {
    let v = given[name];
    if (v === undefined) {
      if (f.required) throw invalid(`${where} "${name}" is required`);
      if (f.default !== undefined) out[name] = f.default;
      continue;
    }
    if (isQuery) v = fromQuery(name, f, v as string);
    out[name] = check(name, f, v, where);
  }
  return out as Input<R["input"]>;
}
