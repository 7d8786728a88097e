/**
 * The control API as an OpenAPI 3.1 document, built from the route contracts
 * (`contract/`) and the error table, the same sources `pilot help --json`
 * publishes, so the three cannot drift. `GET /v1/openapi.json` serves it
 * without a token.
 *
 * @module
 */
import { API_VERSION, VERSION } from "../constants.ts";
import { ERROR_CODES, type ErrorCode } from "../errors.ts";
import {
  ERROR_BODY,
  type FieldSpec,
  LISTEN,
  OPENAPI,
  ROUTES,
  type RouteSpec,
  SEND,
  STREAM,
} from "./contract/mod.ts";
import { anyOf, int, obj, oneOf, type Schema } from "./schema.ts";
import { TOKEN_FREE } from "./server.ts";

/** A JSON object of the document. */
type Json = Record<string, unknown>;

/** The routes that upgrade to a WebSocket (routes.ts `streamSocket`); `lines` are their text frames. */
const WEBSOCKET: ReadonlySet<string> = new Set([STREAM.route, LISTEN.route]);

/** Boolean inputs that turn a route's answer into NDJSON when true. */
const STREAM_SWITCHES = ["follow", "progress"] as const;

/** Request headers a route reads besides its fields. */
const HEADERS: Readonly<Record<string, readonly Json[]>> = {
  [SEND.route]: [{
    name: "Idempotency-Key",
    in: "header",
    description: "the message id, as the `id` field gives it (give it once, or both equal)",
    schema: { type: "string" },
  }],
};

/** The text frames a client may send on a stream's WebSocket (stream_socket.ts). */
const CLIENT_FRAMES = anyOf(
  obj({ type: oneOf("credit"), bytes: int }),
  obj({ type: oneOf("fin") }),
);

/** Close codes of a stream's WebSocket (stream_socket.ts, docs/API.md §6). */
const CLOSE_CODES = {
  "1000": "both directions finished; every byte was delivered",
  "4000": "the stream was reset; the reason says why",
  "4001": "timeout: the peer stopped answering",
  "4002": "refused",
  "4003": "a limit was hit: a stream cap, or the client sent past its credit",
  "4004": "the stream closed otherwise",
  "4005": "the client broke the protocol",
  "4006": "the request failed before a stream opened; the error object came just before",
};

const ERROR_REF = { $ref: "#/components/schemas/Error" };

/** The error codes by HTTP status, statuses ascending, codes in table order. */
function codesByStatus(): [number, ErrorCode[]][] {
  const by = new Map<number, ErrorCode[]>();
  for (const [code, e] of Object.entries(ERROR_CODES) as [ErrorCode, { http: number }][]) {
    by.set(e.http, [...(by.get(e.http) ?? []), code]);
  }
  return [...by].sort(([a], [b]) => a - b);
}

/** The JSON Schema of one input field: type, default, bounds, allowed values. */
function fieldSchema(f: FieldSpec): Json {
  const bounds = {
    ...(f.min === undefined ? {} : { minimum: f.min }),
    ...(f.max === undefined ? {} : { maximum: f.max }),
  };
  const typed: Json = f.type === "string"
    ? {
      type: "string",
      ...(f.required ? { minLength: 1 } : {}),
      ...(f.values === undefined ? {} : { enum: [...f.values] }),
    }
    : f.type === "integer" || f.type === "number"
    ? { type: f.type, ...bounds }
    : f.type === "boolean"
    ? { type: "boolean" }
    : f.type === "strings"
    ? { type: "array", items: { type: "string" }, minItems: 1 }
    : {};
  return { ...typed, ...(f.default === undefined ? {} : { default: f.default }) };
}

function okEnvelope(data: Schema): Json {
  return {
    type: "object",
    properties: { status: { enum: ["ok"] }, data },
    required: ["status", "data"],
  };
}

/** How the route answers: JSON, NDJSON when a switch is on, NDJSON only, or a WebSocket. */
function kindOf(r: RouteSpec): "json" | "switch" | "ndjson" | "websocket" | "document" {
  if (r.route === OPENAPI.route) return "document";
  if (WEBSOCKET.has(r.route)) return "websocket";
  if (r.lines === undefined) return "json";
  return switchOf(r) === undefined ? "ndjson" : "switch";
}

function switchOf(r: RouteSpec): string | undefined {
  return STREAM_SWITCHES.find((s) => r.input[s]?.type === "boolean");
}

function describe(r: RouteSpec): string {
  const token = TOKEN_FREE.has(r.route) ? " Needs no token." : "";
  switch (kindOf(r)) {
    case "document":
      return `This document, not wrapped in the envelope.${token}`;
    case "json":
      return `Answers \`{"status":"ok","data":…}\`.${token}`;
    case "switch":
      return `Answers \`{"status":"ok","data":…}\`; with \`${switchOf(r)}=true\` it answers ` +
        "NDJSON (`application/x-ndjson`): one JSON object per line, each matching the " +
        "line schema, never wrapped in the envelope. Errors found before the stream " +
        "starts are ordinary error answers.";
    case "ndjson":
      return "Answers NDJSON (`application/x-ndjson`): one JSON object per line, each " +
        "matching the line schema, never wrapped in the envelope. Errors found before " +
        "the stream starts are ordinary error answers.";
    case "websocket":
      return "A WebSocket upgrade (`Upgrade: websocket`, with the bearer token; a plain GET " +
        "is `invalid_argument`). The WebSocket carries one reliable stream: binary frames " +
        "are its bytes in order, text frames are the JSON objects of `x-websocket`. A " +
        "request that fails before the stream opens sends the error object as a text " +
        "frame, then closes with 4006. See docs/API.md §6.";
  }
}

function parameters(r: RouteSpec): Json[] {
  const query = r.route.startsWith("GET ")
    ? Object.entries(r.input).map(([name, f]) => ({
      name,
      in: "query",
      ...(f.required ? { required: true } : {}),
      description: f.description,
      schema: fieldSchema(f),
    }))
    : [];
  return [...query, ...(HEADERS[r.route] ?? [])];
}

function requestBody(r: RouteSpec): Json {
  const fields = Object.entries(r.input);
  const required = fields.filter(([, f]) => f.required).map(([name]) => name);
  return {
    required: required.length > 0,
    content: {
      "application/json": {
        schema: {
          type: "object",
          properties: Object.fromEntries(
            fields.map(([name, f]) => [name, { ...fieldSchema(f), description: f.description }]),
          ),
          ...(required.length > 0 ? { required } : {}),
          // The route refuses a field it does not define, by name.
          additionalProperties: false,
        },
      },
    },
  };
}

function success(r: RouteSpec): [string, Json] {
  const lines = r.lines ?? r.output;
  switch (kindOf(r)) {
    case "document":
      return ["200", {
        description: "the OpenAPI 3.1 document",
        content: { "application/json": { schema: r.output } },
      }];
    case "json":
      return ["200", {
        description: "ok",
        content: { "application/json": { schema: okEnvelope(r.output) } },
      }];
    case "switch":
      return ["200", {
        description: `ok; NDJSON lines with \`${switchOf(r)}=true\``,
        content: {
          "application/json": { schema: okEnvelope(r.output) },
          "application/x-ndjson": { schema: lines },
        },
      }];
    case "ndjson":
      return ["200", {
        description: "NDJSON lines",
        content: { "application/x-ndjson": { schema: lines } },
      }];
    case "websocket":
      return ["101", { description: "switching to the WebSocket" }];
  }
}

function operation(r: RouteSpec): Json {
  const [method, path] = r.route.split(" ") as [string, string];
  const statuses = TOKEN_FREE.has(r.route) ? [401, 500] : codesByStatus().map(([s]) => s);
  const params = parameters(r);
  return {
    operationId: `${method.toLowerCase()}_${path.slice("/v1/".length).replace(/\W+/g, "_")}`,
    description: describe(r),
    ...(TOKEN_FREE.has(r.route) ? { security: [] } : {}),
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(method === "POST" ? { requestBody: requestBody(r) } : {}),
    responses: Object.fromEntries([
      success(r),
      ...statuses.map((s) => [String(s), { $ref: `#/components/responses/error_${s}` }]),
    ]),
    ...(kindOf(r) === "websocket"
      ? {
        "x-websocket": {
          open: r.output,
          server_frames: r.lines,
          client_frames: CLIENT_FRAMES,
          binary: "stream bytes, in order, both ways; frame boundaries mean nothing",
          close_codes: CLOSE_CODES,
        },
      }
      : {}),
  };
}

/**
 * The control API as an OpenAPI 3.1.0 document: every route of `ROUTES`
 * with its query parameters or JSON body (types, defaults, bounds), its
 * answer (the `{status:"ok",data}` envelope around the route's schema, NDJSON
 * lines, or a WebSocket's frames under `x-websocket`), the error answers by
 * HTTP status with their codes, and the bearer scheme. The same value at
 * every call: keys in a fixed order, a fresh object each time.
 *
 * @example
 * ```ts
 * import { openApiDocument } from "./openapi.ts";
 * const doc = openApiDocument() as { paths: Record<string, unknown> };
 * Object.keys(doc.paths).includes("/v1/send"); // true
 * ```
 */
export function openApiDocument(): Json {
  const paths: Record<string, Json> = {};
  for (const r of ROUTES) {
    const [method, path] = r.route.split(" ") as [string, string];
    paths[path] = { ...paths[path], [method.toLowerCase()]: operation(r) };
  }
  const responses = Object.fromEntries(
    codesByStatus().map(([status, codes]) => [
      `error_${status}`,
      {
        description: codes.map((c) =>
          `\`${c}\` (exit ${ERROR_CODES[c].exit}${ERROR_CODES[c].retryable ? ", retryable" : ""})`
        ).join(", "),
        content: {
          "application/json": {
            schema: {
              allOf: [ERROR_REF, { type: "object", properties: { code: { enum: codes } } }],
            },
          },
        },
      },
    ]),
  );
  const doc = {
    openapi: "3.1.0",
    info: {
      title: "Pilot control API",
      version: VERSION,
      description: `The local HTTP API of a Pilot node, version ${API_VERSION} (\`/v1/…\`; ` +
        "changes within a version are additive: ignore fields you do not know). The daemon " +
        "listens on 127.0.0.1; HOME/control.json holds its `url` and `token`. Every answer " +
        'is `{"status":"ok","data":…}` or the error object `{"status":"error","code",' +
        '"message","hint","retryable","request_id"}` with the HTTP status of its code; branch ' +
        "on `code`, never on `message`. Text from peers (reasons, hostnames, message data) " +
        "is untrusted input. `pilot help --json` is the command catalog built from the same " +
        "contracts; docs/API.md explains each route.",
      "x-api-version": API_VERSION,
    },
    servers: [{ url: "/", description: "the daemon that served this document" }],
    security: [{ bearer: [] }],
    paths,
    components: {
      schemas: { Error: ERROR_BODY },
      responses,
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "The `token` of HOME/control.json (64 hex digits, new at every daemon " +
            "start), as `Authorization: Bearer TOKEN`. `Host` must be the loopback name and " +
            "port of `url`, and an `Origin`, if sent, the API's own.",
        },
      },
    },
  };
  // A deep copy: the contracts' schema objects are shared and must stay untouched.
  return JSON.parse(JSON.stringify(doc));
}
