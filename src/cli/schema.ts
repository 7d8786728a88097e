/**
 * A small JSON-schema subset describing each command's `data`. The command
 * table carries one per command; `pilot help --json` publishes them and the
 * tests check real output against them.
 *
 * @module
 */

/** A schema node (a subset of JSON Schema). */
export type Schema =
  | { type: "string" | "number" | "integer" | "boolean" | "null" }
  | { type: "array"; items: Schema }
  | { type: "object"; properties: Record<string, Schema>; required: string[] }
  | { anyOf: Schema[] }
  | { enum: (string | number | boolean)[] };

/** A string. */
export const str: Schema = { type: "string" };
/** A number. */
export const num: Schema = { type: "number" };
/** An integer. */
export const int: Schema = { type: "integer" };
/** A boolean. */
export const bool: Schema = { type: "boolean" };

/** An array of `items`. */
export function arr(items: Schema): Schema {
  return { type: "array", items };
}

/** An object whose listed properties are all required. */
export function obj(properties: Record<string, Schema>): Schema {
  return { type: "object", properties, required: Object.keys(properties) };
}

/** `s` or null. */
export function nullable(s: Schema): Schema {
  return { anyOf: [s, { type: "null" }] };
}

/** One of the given literal values. */
export function oneOf(...values: (string | number | boolean)[]): Schema {
  return { enum: values };
}

/** Returns the ways `value` does not match `schema` (empty when it matches). */
export function validate(schema: Schema, value: unknown, path = "$"): string[] {
  if ("anyOf" in schema) {
    return schema.anyOf.some((s) => validate(s, value, path).length === 0)
      ? []
      : [`${path}: matches none of the allowed shapes`];
  }
  if ("enum" in schema) {
    return schema.enum.includes(value as string)
      ? []
      : [`${path}: ${JSON.stringify(value)} not in enum`];
  }
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
      return value.flatMap((v, i) => validate(schema.items, v, `${path}[${i}]`));
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        return [`${path}: expected object`];
      }
      const o = value as Record<string, unknown>;
      const errors = schema.required.filter((k) => !(k in o)).map((k) => `${path}.${k}: missing`);
      for (const [k, s] of Object.entries(schema.properties)) {
        if (k in o) errors.push(...validate(s, o[k], `${path}.${k}`));
      }
      return errors;
    }
  }
}
