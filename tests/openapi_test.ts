/**
 * The OpenAPI document of the control API: valid OpenAPI 3.1 by a maintained
 * validator, listing exactly the routes the server's table answers (and a
 * real daemon answers), built from the route contracts, and served by
 * `GET /v1/openapi.json` without a token.
 */
import assert from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { API_VERSION, VERSION } from "../src/constants.ts";
import * as C from "../src/control/contract/mod.ts";
import { openApiDocument } from "../src/control/openapi.ts";
import { nodeRoutes } from "../src/control/routes.ts";
import { TOKEN_FREE } from "../src/control/server.ts";
import type { Node } from "../src/daemon/node.ts";
import { ERROR_CODES } from "../src/errors.ts";
import { startNode, type TestNode } from "./_daemon_harness.ts";

// deno-lint-ignore no-explicit-any
type Doc = any;

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/** Every operation of a document, keyed as the server's table spells routes (`GET /v1/info`). */
function operations(doc: Doc): Map<string, Doc> {
  const ops = new Map<string, Doc>();
  for (const [path, item] of Object.entries(doc.paths as Record<string, Doc>)) {
    for (const m of METHODS) {
      if (item[m] !== undefined) ops.set(`${m.toUpperCase()} ${path}`, item[m]);
    }
  }
  return ops;
}

/** The routes `nodeRoutes` builds: the table the server dispatches on. */
function servedRoutes(): Set<string> {
  const fake = { features: {}, ctx: {} } as unknown as Node;
  return new Set(Object.keys(nodeRoutes(fake, () => {})));
}

Deno.test("openApiDocument() is a valid OpenAPI 3.1 document", async () => {
  const validator = new Validator();
  const result = await validator.validate(openApiDocument());
  assert.equal(validator.version, "3.1");
  assert.deepEqual(result.errors ?? [], [], JSON.stringify(result.errors, null, 1));
  assert.equal(result.valid, true);
  // The validator would see a broken document: the check above can fail.
  const broken = openApiDocument() as Doc;
  broken.paths["/v1/send"].post.responses["200"].description = 7;
  assert.equal((await new Validator().validate(broken)).valid, false);
});

Deno.test("the document lists exactly the routes the server's route table answers", () => {
  const documented = new Set(operations(openApiDocument()).keys());
  const served = servedRoutes();
  assert.deepEqual(
    [...served].filter((r) => !documented.has(r)),
    [],
    "every served route is documented",
  );
  assert.deepEqual(
    [...documented].filter((r) => !served.has(r)),
    [],
    "every documented route is served",
  );
});

Deno.test("a POST route's body schema carries its contract's types, defaults, bounds and required fields", () => {
  const send = operations(openApiDocument()).get(C.SEND.route);
  const body = send.requestBody.content["application/json"].schema;
  assert.equal(send.requestBody.required, true);
  assert.deepEqual(body.required, ["peer", "data"]);
  assert.equal(body.additionalProperties, false, "unknown fields are refused");
  assert.deepEqual(Object.keys(body.properties), Object.keys(C.SEND.input));
  assert.deepEqual(body.properties.timeout_ms, {
    type: "integer",
    minimum: C.SEND.input.timeout_ms.min,
    maximum: C.SEND.input.timeout_ms.max,
    default: C.SEND.input.timeout_ms.default,
    description: C.SEND.input.timeout_ms.description,
  });
  assert.deepEqual(body.properties.type.enum, C.SEND.input.type.values);
  assert.deepEqual(
    send.parameters.map((p: Doc) => `${p.in} ${p.name}`),
    ["header Idempotency-Key"],
  );
  const ok = send.responses["200"].content["application/json"].schema;
  assert.deepEqual(ok.properties.data, C.SEND.output, "data is the route's output schema");
  assert.deepEqual(ok.required, ["status", "data"]);
  const shutdown = operations(openApiDocument()).get(C.SHUTDOWN.route);
  assert.equal(shutdown.requestBody.required, false, "a route without required fields");
});

Deno.test("a GET route's inputs are query parameters; follow streams are NDJSON with their line schema", () => {
  const ops = operations(openApiDocument());
  const inbox = ops.get(C.INBOX.route);
  assert.equal(inbox.requestBody, undefined);
  assert.deepEqual(inbox.parameters.map((p: Doc) => p.name), Object.keys(C.INBOX.input));
  assert.ok(inbox.parameters.every((p: Doc) => p.in === "query"));
  const limit = inbox.parameters.find((p: Doc) => p.name === "limit");
  assert.deepEqual(limit.schema, {
    type: "integer",
    minimum: C.INBOX.input.limit.min,
    maximum: C.INBOX.input.limit.max,
    default: C.INBOX.input.limit.default,
  });
  const find = ops.get(C.FIND.route).parameters.find((p: Doc) => p.name === "peer");
  assert.equal(find.required, true);
  assert.deepEqual(inbox.responses["200"].content["application/x-ndjson"].schema, C.INBOX.lines);
  assert.ok(inbox.responses["200"].content["application/json"], "without follow: the envelope");
  const subscribe = ops.get(C.SUBSCRIBE.route).responses["200"].content;
  assert.deepEqual(Object.keys(subscribe), ["application/x-ndjson"], "subscribe only streams");
  const sendFile = ops.get(C.SEND_FILE.route).responses["200"].content;
  assert.deepEqual(sendFile["application/x-ndjson"].schema, C.SEND_FILE.lines);
  const streaming = [...ops].filter(([, op]) =>
    op.responses["200"]?.content?.["application/x-ndjson"] !== undefined
  ).map(([r]) => r);
  assert.deepEqual(
    streaming.sort(),
    C.ROUTES.filter((r) =>
      r.lines !== undefined && r.route !== C.STREAM.route &&
      r.route !== C.LISTEN.route
    ).map((r) => r.route).sort(),
    "every route with lines but the WebSockets answers NDJSON",
  );
});

Deno.test("the WebSocket routes answer 101 and describe their frames under x-websocket", () => {
  const ops = operations(openApiDocument());
  for (const spec of [C.STREAM, C.LISTEN]) {
    const op = ops.get(spec.route);
    assert.equal(op.responses["200"], undefined, spec.route);
    assert.ok(op.responses["101"], spec.route);
    assert.match(op.description, /WebSocket upgrade/);
    assert.deepEqual(op["x-websocket"].open, spec.output);
    assert.deepEqual(op["x-websocket"].server_frames, spec.lines);
    assert.ok(op["x-websocket"].close_codes["4006"]);
  }
  const others = [...ops].filter(([, op]) => op["x-websocket"] !== undefined).map(([r]) => r);
  assert.deepEqual(others.sort(), [C.LISTEN.route, C.STREAM.route].sort());
});

Deno.test("every error code is documented under its HTTP status with the error envelope", () => {
  const doc = openApiDocument() as Doc;
  const listed = new Map<string, string>();
  for (const [name, response] of Object.entries(doc.components.responses as Record<string, Doc>)) {
    const schema = response.content["application/json"].schema;
    assert.deepEqual(schema.allOf[0], { $ref: "#/components/schemas/Error" });
    for (const code of schema.allOf[1].properties.code.enum) listed.set(code, name);
  }
  for (const [code, e] of Object.entries(ERROR_CODES)) {
    assert.equal(listed.get(code), `error_${e.http}`, code);
  }
  assert.deepEqual(doc.components.schemas.Error, C.ERROR_BODY);
  for (const [route, op] of operations(doc)) {
    for (const [status, r] of Object.entries(op.responses as Record<string, Doc>)) {
      if (r.$ref !== undefined) assert.equal(r.$ref, `#/components/responses/error_${status}`);
    }
    if (!TOKEN_FREE.has(route)) {
      const statuses = new Set(Object.values(ERROR_CODES).map((e) => String(e.http)));
      for (const s of statuses) assert.ok(op.responses[s], `${route} lists ${s}`);
    }
  }
});

Deno.test("the bearer scheme guards every route but the token-free ones; info names the versions", () => {
  const doc = openApiDocument() as Doc;
  assert.deepEqual(doc.security, [{ bearer: [] }]);
  assert.equal(doc.components.securitySchemes.bearer.type, "http");
  assert.equal(doc.components.securitySchemes.bearer.scheme, "bearer");
  assert.match(doc.components.securitySchemes.bearer.description, /control\.json/);
  const open = [...operations(doc)].filter(([, op]) => op.security !== undefined);
  assert.deepEqual(open.map(([r]) => r).sort(), [...TOKEN_FREE].sort());
  for (const [, op] of open) assert.deepEqual(op.security, []);
  assert.equal(doc.openapi, "3.1.0");
  assert.equal(doc.info.version, VERSION);
  assert.equal(doc.info["x-api-version"], API_VERSION);
});

Deno.test("openApiDocument() gives the same document at every call, however its answer is changed", () => {
  const first = openApiDocument() as Doc;
  const text = JSON.stringify(first);
  first.paths["/v1/send"].post.requestBody.content["application/json"].schema.required.push("x");
  first.components.schemas.Error.required.push("x");
  assert.equal(JSON.stringify(openApiDocument()), text);
});

/**
 * One HTTP/1.1 request over TCP; answers its status and JSON, or null when
 * none came within `waitMs` (a long read still waiting).
 */
async function rawRequest(
  url: string,
  request: { method: string; path: string; headers: Record<string, string>; body: string },
  waitMs = 5_000,
): Promise<{ status: number; json: Doc } | null> {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  const timer = setTimeout(() => conn.close(), waitMs);
  try {
    const lines = [
      `${request.method} ${request.path} HTTP/1.1`,
      `host: ${u.host}`,
      "connection: close",
      "content-type: application/json",
      `content-length: ${new TextEncoder().encode(request.body).length}`,
      ...Object.entries(request.headers).map(([k, v]) => `${k}: ${v}`),
    ].join("\r\n");
    await conn.write(new TextEncoder().encode(`${lines}\r\n\r\n${request.body}`));
    const bytes = new Uint8Array(await new Response(conn.readable).arrayBuffer());
    if (bytes.length === 0) return null;
    const latin = (b: Uint8Array) => String.fromCharCode(...b);
    const at = latin(bytes.subarray(0, 8192)).indexOf("\r\n\r\n");
    const head = latin(bytes.subarray(0, at));
    const status = Number(head.slice(9, 12));
    let body = bytes.subarray(at + 4);
    if (/\r\ntransfer-encoding: chunked/i.test(head)) {
      // Chunk sizes count bytes: walk the bytes, not decoded text.
      const parts: Uint8Array[] = [];
      for (;;) {
        const eol = latin(body.subarray(0, 16)).indexOf("\r\n");
        const size = parseInt(latin(body.subarray(0, eol)), 16);
        if (!(size > 0)) break;
        parts.push(body.subarray(eol + 2, eol + 2 + size));
        body = body.subarray(eol + 4 + size);
      }
      body = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
      let offset = 0;
      for (const part of parts) {
        body.set(part, offset);
        offset += part.length;
      }
    }
    return { status, json: JSON.parse(new TextDecoder().decode(body)) };
  } catch (e) {
    if (e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return null;
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

async function withNode(fn: (node: TestNode, url: string, token: string) => Promise<void>) {
  const node = await startNode();
  try {
    const { url, token } = await node.controlFile();
    await fn(node, url, token);
  } finally {
    await node.stop();
  }
}

Deno.test("a running daemon answers every documented route and no other", async () => {
  await withNode(async (_node, url, token) => {
    const headers = { authorization: `Bearer ${token}` };
    // A POST body that is not JSON is refused once the route is found, before its handler
    // runs (so shutdown stays a probe); a GET carries no body, and its handler only reads.
    const probe = (route: string) => {
      const [method, path] = route.split(" ") as [string, string];
      return rawRequest(url, { method, path, headers, body: method === "POST" ? "{not json" : "" });
    };
    const noRoute = (r: { status: number; json: Doc } | null) =>
      r !== null && r.status === 404 && /^No route/.test(r.json.message);
    for (const route of operations(openApiDocument()).keys()) {
      const r = await probe(route);
      assert.ok(!noRoute(r), `${route} is served: ${JSON.stringify(r?.json)}`);
      if (route.startsWith("POST ")) {
        assert.equal(r?.status, 400, `${route}: ${JSON.stringify(r?.json)}`);
        assert.match(r.json.message, /not valid JSON/, route);
      }
    }
    for (const route of ["GET /v1/nothing-here", "POST /v1/info", "POST /v1/openapi.json"]) {
      assert.ok(noRoute(await probe(route)), `${route} is not served`);
    }
  });
});

Deno.test("GET /v1/openapi.json serves the document without a token, and POST needs one", async () => {
  await withNode(async (_node, url) => {
    const res = await fetch(`${url}/v1/openapi.json`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(await res.json(), openApiDocument(), "the document itself, no envelope");

    const evil = await fetch(`${url}/v1/openapi.json`, {
      headers: { origin: "http://evil.example" },
    });
    assert.equal(evil.status, 401, "Origin is checked even without a token");
    assert.equal((await evil.json()).code, "unauthorized");

    const post = await fetch(`${url}/v1/openapi.json`, { method: "POST" });
    assert.equal(post.status, 401, "only GET is token-free");
    assert.equal((await post.json()).code, "unauthorized");
    const info = await fetch(`${url}/v1/info`);
    assert.equal(info.status, 401, "other routes still need the token");
    await info.body?.cancel();
  });
});
