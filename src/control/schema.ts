/**
 * A small JSON-schema subset describing each route's `data`. The schemas are
 * typed: `Infer<typeof SEND_RESULT>` is the TypeScript type of that data, so
 * a route and its published schema cannot disagree silently. `pilot help
 * --json` publishes them and the tests check real output against them.
 *
 * @module
 */

/** A literal an enum may hold. */
export type Literal = string | number | boolean;

/** A schema node (a subset of JSON Schema). */
export type Schema =
  | { readonly type: "string" | "number" | "integer" | "boolean" | "null" }
  | { readonly type: "array"; readonly items: Schema }
  | {
    readonly type: "object";
    readonly properties: Readonly<Record<string, Schema>>;
    readonly required: readonly string[];
  }
  | { readonly type: "object"; readonly additionalProperties: Schema }
  | { readonly anyOf: readonly Schema[] }
  | { readonly enum: readonly Literal[] }
  | { readonly description: string };

/** The TypeScript type of values that match schema `S`. */
export type Infer<S> = S extends { type: "string" } ? string
  : S extends { type: "number" | "integer" } ? number
  : S extends { type: "boolean" } ? boolean
  : S extends { type: "null" } ? null
  : S extends { type: "array"; items: infer I } ? Infer<I>[]
  : S extends { type: "object"; additionalProperties: infer V } ? Record<string, Infer<V>>
  : S extends { type: "object"; properties: infer P; required: readonly (infer R)[] } ?
      & { [K in Extract<keyof P, R>]: Infer<P[K]> }
      & { [K in Exclude<keyof P, R>]?: Infer<P[K]> }
  : S extends { anyOf: readonly (infer A)[] } ? Infer<A>
  : S extends { enum: readonly (infer E)[] } ? E
  : unknown;

/** A string. */
export const str: { readonly type: "string" } = { type: "string" };
/** A number. */
export const num: { readonly type: "number" } = { type: "number" };
/** An integer. */
export const int: { readonly type: "integer" } = { type: "integer" };
/** A boolean. */
export const bool: { readonly type: "boolean" } = { type: "boolean" };

/** Any JSON value (a schema with no type, only a description). */
export const anyJson: { readonly description: string } = { description: "any JSON value" };

/** An array of `items`. */
export function arr<I extends Schema>(items: I): { readonly type: "array"; readonly items: I } {
  return { type: "array", items };
}

/** An object whose listed properties are all required, plus `optional` ones that may be absent. */
export function obj<
  P extends Record<string, Schema>,
  O extends Record<string, Schema> = Record<never, never>,
>(
  properties: P,
  optional?: O,
): {
  readonly type: "object";
  readonly properties: P & O;
  readonly required: (keyof P & string)[];
} {
  return {
    type: "object",
    properties: { ...properties, ...optional } as P & O,
    required: Object.keys(properties) as (keyof P & string)[],
  };
}

/**
 * A map from any key to values of `values` (JSON Schema's `additionalProperties`),
 * for objects whose keys are data, such as counters by reason.
 *
 * @example
 * ```ts
 * import { int, record, validate } from "./schema.ts";
 * validate(record(int), { no_service: 0, overloaded: 2 }); // []
 * ```
 */
export function record<V extends Schema>(
  values: V,
): { readonly type: "object"; readonly additionalProperties: V } {
  return { type: "object", additionalProperties: values };
}

/** `s` or null. */
export function nullable<S extends Schema>(
  s: S,
): { readonly anyOf: readonly [S, { type: "null" }] } {
  return { anyOf: [s, { type: "null" }] };
}

/** One of the given schemas. */
export function anyOf<const A extends readonly Schema[]>(...schemas: A): { readonly anyOf: A } {
  return { anyOf: schemas };
}

/** One of the given literal values. */
export function oneOf<const V extends readonly Literal[]>(...values: V): { readonly enum: V } {
  return { enum: values };
}

/** Options of {@linkcode validate}. */
export interface ValidateOptions {
  /**
   * Also report fields an object schema does not list (its `properties`),
   * so a value cannot carry more than its schema documents. Clients ignore
   * unknown fields; the tests use this to keep the schemas complete.
   */
  closed?: boolean;
}

/**
 * Returns the ways `value` does not match `schema` (empty when it matches).
 *
 * @example
 * ```ts
 * import { int, obj, validate } from "./schema.ts";
 * validate(obj({ n: int }), { n: 1, extra: true }); // []
 * validate(obj({ n: int }), { n: 1, extra: true }, { closed: true }); // ["$.extra: not in the schema"]
 * ```
 */
export function validate(schema: Schema, value: unknown, options: ValidateOptions = {}): string[] {
  return check(schema, value, "$", options.closed ?? false);
}

function check(schema: Schema, value: unknown, path: string, closed: boolean): string[] {
  if ("anyOf" in schema) {
    return schema.anyOf.some((s) => check(s, value, path, closed).length === 0)
      ? []
      : [`${path}: matches none of the allowed shapes`];
  }
  if ("enum" in schema) {
    return schema.enum.includes(value as Literal)
      ? []
      : [`${path}: ${JSON.stringify(value)} not in enum`];
  }
  if (!("type" in schema)) return [];
  switch (schema.type) {
    case "null":
      return value === null ? [] : [`${path}: expected null`];
    case "string":
      return typeof value === "string" ? [] : [`${path}: expected string`];
    case "number":
      return typeof value === "number" ? [] : [`${path}: expected number`];
    case "boolean":
      return typeof value === "boolean" ? [] : [`${path}: expected boolean`];
    case "integer":
      return Number.isInteger(value) ? [] : [`${path}: expected integer`];
    case "array":
      if (!Array.isArray(value)) return [`${path}: expected array`];
      return value.flatMap((v, i) => check(schema.items, v, `${path}[${i}]`, closed));
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return [`${path}: expected object`];
      }
      const o = value as Record<string, unknown>;
      if ("additionalProperties" in schema) {
        return Object.entries(o).flatMap(([k, v]) =>
          check(schema.additionalProperties, v, `${path}.${k}`, closed)
        );
      }
      const errors = schema.required.filter((k) => !(k in o)).map((k) => `${path}.${k}: missing`);
      for (const [k, s] of Object.entries(schema.properties)) {
        if (k in o) errors.push(...check(s, o[k], `${path}.${k}`, closed));
      }
      if (closed) {
        for (const k of Object.keys(o)) {
          if (!Object.hasOwn(schema.properties, k)) errors.push(`${path}.${k}: not in the schema`);
        }
      }
      return errors;
    }
  }
}
