/**
 * The typed TypeScript client of a Pilot node's control API (`exports`
 * `./client`; docs/API.md). It finds the daemon from a home, reads its
 * token (and reads it again when the daemon answers `unauthorized`: it may
 * have restarted), and offers one typed method per route, named after the
 * route's path (`POST /v1/tasks/submit` is `api.tasksSubmit`), plus async
 * iterators for the NDJSON streams and WebSocket streams as a
 * `ReadableStream`/`WritableStream` pair. It is the CLI's own client
 * (`control/client.ts`'s ControlClient, which it extends), so both speak
 * the API the same way.
 *
 * ```ts ignore
 * import { PilotClient } from "@pilot/pilot/client";
 * const pilot = await PilotClient.open();            // PILOT_HOME or ~/.pilot
 * const sent = await pilot.api.send({ peer: "data-processor-node", data: { command: "run" }, type: "json" });
 * for await (const e of pilot.events({ timeoutMs: 60_000 })) console.log(e);
 * ```
 *
 * Every method throws `PilotError` (`code`, `message`, `hint`) for an error
 * answer. Every input is checked by the daemon exactly as for the CLI.
 *
 * @module
 */
import { type CallOptions, ControlClient, type ControlFile } from "../control/client.ts";
import { TYPED_ROUTES } from "../control/contract/mod.ts";
import type { FieldSpec } from "../control/contract/spec.ts";
import type { Infer } from "../control/schema.ts";
import { resolveHome } from "../daemon/home.ts";
import { PilotError } from "../errors.ts";

export { PilotError } from "../errors.ts";

type Value<F> = F extends { type: "string" } ? string
  : F extends { type: "boolean" } ? boolean
  : F extends { type: "integer" | "number" } ? number
  : F extends { type: "strings" } ? string[]
  : unknown;

/** The argument of a route's method: required fields required, the rest optional. */
export type Args<I> =
  & { [K in keyof I as I[K] extends { required: true } ? K : never]: Value<I[K]> }
  & { [K in keyof I as I[K] extends { required: true } ? never : K]?: Value<I[K]> };

type Camel<S extends string> = S extends `${infer H}/${infer T}` ? `${H}${Capitalize<Camel<T>>}`
  : S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}`
  : S extends `${infer H}.${infer T}` ? `${H}${Capitalize<Camel<T>>}`
  : S;

/** The method name of a route: its path after `/v1/`, camel-cased. */
export type MethodName<K extends string> = K extends `${string} /v1/${infer P}` ? Camel<P>
  : never;

type Route = (typeof TYPED_ROUTES)[number];

/** The names of a route's required input fields (never when it has none). */
type RequiredOf<I> = { [K in keyof I]: I[K] extends { required: true } ? K : never }[keyof I];

/** One typed method per route: its input in (optional when nothing is required), its `data` out. */
export type Api = {
  [R in Route as MethodName<R["route"]>]: [RequiredOf<R["input"]>] extends [never]
    ? (input?: Args<R["input"]>, options?: { timeoutMs?: number }) => Promise<Infer<R["output"]>>
    : (input: Args<R["input"]>, options?: { timeoutMs?: number }) => Promise<Infer<R["output"]>>;
};

/** The method name of a route key at run time (what `MethodName` says at compile time). */
export function methodName(route: string): string {
  const path = route.slice(route.indexOf("/v1/") + 4);
  return path.replace(/[/.-]([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The longest wait a call allows itself past its own `timeout_ms` (ms). */
const ANSWER_SLACK_MS = 10_000;

/**
 * A typed client of one node's daemon: the CLI's own client
 * (`ControlClient`: its untyped `call`, NDJSON `lines` and stream sockets),
 * with one typed method per route, iterators and web streams on top.
 */
export class PilotClient extends ControlClient {
  /** One typed method per route. */
  readonly api: Api;

  /** A client of the daemon whose control file is `control` (of `home`, when known). */
  constructor(control: ControlFile, home?: string) {
    super(control, home);
    const api: Record<string, unknown> = {};
    for (const spec of TYPED_ROUTES) {
      api[methodName(spec.route)] = (input: Record<string, unknown> = {}, o = {}) =>
        this.request(spec, input, o);
    }
    this.api = api as Api;
  }

  /**
   * Connects to the daemon of `home` (else `PILOT_HOME`, else `~/.pilot`):
   * `not_running` when none runs there, `version_mismatch` when its API
   * differs from this client's.
   */
  static override async open(home?: string): Promise<PilotClient> {
    const dir = resolveHome(home);
    return new PilotClient(await ControlClient.controlOf(dir), dir);
  }

  /**
   * Calls the route of `spec` with `input`; resolves with its `data`. A
   * route's own `timeout_ms` (or `wait`) is honoured: the call waits that
   * long, and a little more, for the answer.
   */
  async request<R extends Route>(
    spec: R,
    input: Args<R["input"]> | Record<string, unknown>,
    options: { timeoutMs?: number } = {},
  ): Promise<Infer<R["output"]>> {
    const [method, path] = spec.route.split(" ") as [string, string];
    const values = input as Record<string, unknown>;
    const waits = ["timeout_ms", "wait"].map((k) => values[k]).filter((v) =>
      typeof v === "number"
    ) as number[];
    const timeoutMs = options.timeoutMs ??
      Math.max(30_000, ...waits.map((w) => w + ANSWER_SLACK_MS));
    const call: CallOptions = { timeoutMs };
    if (method === "GET") call.query = queryOf(spec, values);
    else call.body = values;
    return await this.call(method, path, call) as Infer<R["output"]>;
  }

  /** The node's events as they happen (and those after `after`), until `timeoutMs` or `signal`. */
  events(options: { after?: number; timeoutMs?: number; signal?: AbortSignal } = {}) {
    return this.#follow("/v1/events", { after: options.after ?? 0, follow: true }, options);
  }

  /** Inbox messages after `after`, then each as it arrives, until `timeoutMs` or `signal`. */
  inbox(options: { after?: number; from?: string; timeoutMs?: number; signal?: AbortSignal } = {}) {
    const query = {
      after: options.after ?? 0,
      follow: true,
      ...(options.from === undefined ? {} : { from: options.from }),
    };
    return this.#follow("/v1/inbox", query, options);
  }

  /** Events published on `topic` at `peer`, as they come, until `timeoutMs` or `signal`. */
  subscribe(
    peer: string,
    topic: string,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ) {
    return this.#follow("/v1/subscribe", { peer, topic }, options);
  }

  /** Heartbeat lines are the stream's own: only the content reaches the caller. */
  async *#follow(
    path: string,
    query: Record<string, string | number | boolean>,
    options: { timeoutMs?: number; signal?: AbortSignal },
  ): AsyncGenerator<Record<string, unknown>> {
    for await (const line of this.lines(path, query, options)) {
      const l = line as Record<string, unknown>;
      if (l.type === "heartbeat") continue;
      yield l;
    }
  }

  /**
   * Opens a stream to a trusted peer's virtual `port` (`pilot connect`):
   * the peer's bytes as a `ReadableStream`, ours as a `WritableStream`
   * (closing it half-closes the stream; aborting it resets it).
   */
  async connect(
    peer: string,
    port: number,
    options: { timeoutMs?: number } = {},
  ): Promise<{ readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> }> {
    const socket = await this.openStream("/v1/stream", {
      peer,
      port,
      ...(options.timeoutMs === undefined ? {} : { timeout_ms: options.timeoutMs }),
    });
    const data = socket.data();
    return {
      readable: new ReadableStream<Uint8Array>({
        async pull(controller) {
          const next = await data.next();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        },
        cancel: () => socket.abort(),
      }),
      writable: new WritableStream<Uint8Array>({
        write: (chunk) => socket.write(chunk),
        close: () => socket.fin(),
        abort: () => socket.abort(),
      }),
    };
  }
}

/** A GET's query from its input: only the route's own fields, as text. */
function queryOf(spec: Route, input: Record<string, unknown>): Record<string, string> {
  const q: Record<string, string> = {};
  for (const [k, v] of Object.entries(input)) {
    const field: FieldSpec | undefined = (spec.input as Record<string, FieldSpec>)[k];
    if (field === undefined) {
      throw new PilotError("invalid_argument", `${spec.route} takes no "${k}"`, "see help --json");
    }
    if (v !== undefined) q[k] = String(v);
  }
  return q;
}
