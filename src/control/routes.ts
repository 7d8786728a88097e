/**
 * The control API's routes: each maps one CLI command onto the node. Input
 * is checked here, once, so every caller (CLI or agent) gets the same errors;
 * a feature (daemon/features/) does the work and returns a domain value, and
 * views.ts shapes that into the route's JSON.
 *
 * @module
 */
import { API_VERSION, VERSION } from "../constants.ts";
import type { Node } from "../daemon/node.ts";
import type { ApiRequest, Routes } from "./server.ts";
import { bridge } from "./stream_socket.ts";
import { batchEnvelopes, bytesField, messageData, outgoingMessage, queryInt } from "./fields.ts";
import { openApiDocument } from "./openapi.ts";
import * as C from "./contract/mod.ts";
import * as V from "./views.ts";
import { asPilotError, errorBody, invalid, PilotError } from "../errors.ts";
import type { Connection } from "../stream/mod.ts";
import { log } from "../daemon/log.ts";

/**
 * `e` as the API reports it (see asPilotError); a bug of ours is also logged
 * with its stack, since its hint says "see the daemon log".
 */
function reported(route: string, e: unknown): PilotError {
  const err = asPilotError(e);
  if (err.code === "internal") {
    log(`${route}: ${err.message}`, {
      level: "error",
      event: "api.error",
      code: "internal",
      fields: { route, stack: e instanceof Error ? e.stack : undefined },
    });
  }
  return err;
}

/** Heartbeat interval of follow streams (ms); a query may shorten it. */
export const HEARTBEAT_MS = 15_000;
/** The shortest heartbeat interval a query may ask for (ms). */
const MIN_HEARTBEAT_MS = 100;

function heartbeatOf(q: URLSearchParams): number {
  return Math.max(MIN_HEARTBEAT_MS, queryInt(q, "heartbeat_ms", HEARTBEAT_MS, HEARTBEAT_MS));
}

/**
 * Waits for `next()` or until a heartbeat is due; yields a heartbeat line in
 * the latter case so readers can tell a quiet stream from a dead one.
 */
async function* waitOrHeartbeat(
  next: (signal: AbortSignal) => Promise<void>,
  cursor: number,
  heartbeatMs: number,
  signal: AbortSignal,
): AsyncGenerator<unknown> {
  // The wait gets its own signal, so a heartbeat leaves no waiter behind.
  const ac = new AbortController();
  const onAbort = () => ac.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(() => ac.abort(), heartbeatMs);
  await next(ac.signal).catch(() => {});
  const beat = ac.signal.aborted;
  clearTimeout(timer);
  ac.abort();
  signal.removeEventListener("abort", onAbort);
  if (beat && !signal.aborted) {
    yield { type: "heartbeat", seq: cursor, time: new Date().toISOString() };
  }
}

/** An NDJSON streaming response fed by `lines`, ended when the client goes away. */
export function ndjson(
  signal: AbortSignal,
  lines: (signal: AbortSignal) => AsyncGenerator<unknown>,
): Response {
  const encoder = new TextEncoder();
  const ac = new AbortController();
  signal.addEventListener("abort", () => ac.abort(), { once: true });
  const it = lines(ac.signal);
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await it.next();
      if (done) controller.close();
      else controller.enqueue(encoder.encode(JSON.stringify(value) + "\n"));
    },
    cancel() {
      ac.abort();
    },
  });
  return new Response(body, { headers: { "content-type": "application/x-ndjson" } });
}

/**
 * Upgrades to a WebSocket at once, then checks the request and opens the
 * stream: any failure arrives as the API's error object in a text frame,
 * then close code 4006 (a WebSocket client cannot read an HTTP error body).
 */
function streamSocket(
  req: ApiRequest,
  open: (
    signal: AbortSignal,
    say: (msg: Record<string, unknown>) => void,
  ) => Promise<{ conn: Connection; hello: Record<string, unknown> }>,
): Response {
  requireUpgrade(req);
  const { socket, response } = req.upgrade();
  const ac = new AbortController();
  socket.addEventListener("close", () => ac.abort(), { once: true });
  socket.addEventListener("open", () => {
    const say = (msg: Record<string, unknown>) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(msg));
    };
    open(ac.signal, say).then(({ conn, hello }) => {
      if (socket.readyState !== WebSocket.OPEN) {
        conn.reset("control client went away");
        return;
      }
      bridge(socket, conn, hello, req.query.get("flow") === "credit");
    }, (e) => {
      const err = reported("stream socket", e);
      if (socket.readyState !== WebSocket.OPEN) return;
      socket.send(JSON.stringify(errorBody(err)));
      socket.close(4006, err.code);
    });
  }, { once: true });
  return response;
}

function requireUpgrade(req: ApiRequest): void {
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    throw invalid("This route is a WebSocket", "open it with a WebSocket client (see docs/API.md)");
  }
}

/**
 * A long-poll read: the page at once when it has entries, else after waiting
 * up to `waitMs` for one; running out of time is `timedOut`, not an error.
 */
async function longPoll<P>(
  read: () => P,
  hasEntries: (page: P) => boolean,
  wait: (signal: AbortSignal) => Promise<void>,
  waitMs: number,
  signal: AbortSignal,
): Promise<{ page: P; timedOut: boolean }> {
  const page = read();
  if (hasEntries(page) || waitMs === 0) return { page, timedOut: false };
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), waitMs);
  const onAbort = () => ac.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  await wait(ac.signal).catch(() => {});
  clearTimeout(timer);
  signal.removeEventListener("abort", onAbort);
  const later = read();
  return { page: later, timedOut: !hasEntries(later) };
}

/** Builds the route table for a node; `shutdown` stops the daemon. */
export function nodeRoutes(
  node: Node,
  shutdown: () => void,
  controlStats: () => unknown = () => null,
): Routes {
  const { trust, messages, files, diagnostics, ports, pubsub, peers, find, webhooks } =
    node.features;
  const { tunnels } = node.features;
  return {
    "GET /v1/health": () =>
      Promise.resolve({ ok: true, pid: Deno.pid, version: VERSION, api_version: API_VERSION }),
    "GET /v1/openapi.json": () =>
      Promise.resolve(
        Response.json(openApiDocument(), {
          headers: { "x-pilot-version": VERSION, "x-pilot-api-version": String(API_VERSION) },
        }),
      ),
    "GET /v1/info": () =>
      Promise.resolve(
        V.infoView(diagnostics.info(), {
          control: controlStats(),
          pid: Deno.pid,
          version: VERSION,
          memory: Deno.memoryUsage(),
        }),
      ),
    "GET /v1/peers": () => Promise.resolve(V.peersView(diagnostics.peers())),
    "GET /v1/peer/list": () => Promise.resolve(V.peerListView(peers.list())),
    "POST /v1/peer/add": async (req) => {
      const b = C.parseInput(C.PEER_ADD, req.body);
      return V.peerAddView(await peers.add(b.name, b.endpoint, b.save));
    },
    "POST /v1/peer/remove": async (req) => {
      const b = C.parseInput(C.PEER_REMOVE, req.body);
      return V.peerRemoveView(await peers.remove(b.name, b.save));
    },
    "GET /v1/webhooks": () =>
      Promise.resolve(V.webhookListView(webhooks.list(), webhooks.allowRemote)),
    "POST /v1/webhooks/add": async (req) => {
      const b = C.parseInput(C.WEBHOOK_ADD, req.body);
      return V.webhookChangeView(await webhooks.add(b.url, b.events, b.secret));
    },
    "POST /v1/webhooks/remove": async (req) => {
      const b = C.parseInput(C.WEBHOOK_REMOVE, req.body);
      return V.webhookChangeView(await webhooks.remove(b.url));
    },
    "GET /v1/find": async (req) => {
      const { peer, timeout_ms: timeoutMs } = C.parseInput(C.FIND, req.query);
      return V.findView(peer, await find.find(peer, timeoutMs));
    },
    "POST /v1/connect": async (req) => {
      const b = C.parseInput(C.CONNECT, req.body);
      return V.connectView(await diagnostics.connect(b.peer, b.timeout_ms));
    },
    "POST /v1/handshake": async (req) => {
      const b = C.parseInput(C.HANDSHAKE, req.body);
      return V.handshakeView(
        await trust.handshake(b.peer, b.reason, b.timeout_ms, {
          wait: b.wait,
          expectFingerprint: b.expect_fingerprint,
          queue: b.queue,
          ttlMs: b.ttl_ms,
        }),
      );
    },
    "GET /v1/pending": () => Promise.resolve(V.pendingView(trust.pending())),
    "POST /v1/approve": async (req) => {
      const b = C.parseInput(C.APPROVE, req.body);
      return V.decisionView(await trust.approve(b.peer, b.timeout_ms));
    },
    "POST /v1/reject": async (req) => {
      const b = C.parseInput(C.REJECT, req.body);
      return V.decisionView(await trust.reject(b.peer, b.reason, b.timeout_ms));
    },
    "GET /v1/trust": () => Promise.resolve(V.trustView(trust.trusted())),
    "POST /v1/untrust": async (req) => {
      const b = C.parseInput(C.UNTRUST, req.body);
      return V.untrustView(await trust.untrust(b.peer, b.timeout_ms));
    },
    "GET /v1/events": (req) => {
      const { after, limit, follow } = C.parseInput(C.EVENTS, req.query);
      if (!follow) {
        const events = node.ctx.events.since(after, limit);
        return Promise.resolve(V.eventsView(events, events.at(-1)?.seq ?? after));
      }
      const heartbeatMs = heartbeatOf(req.query);
      return Promise.resolve(ndjson(req.signal, async function* (signal) {
        let cursor = after;
        while (!signal.aborted) {
          for (const e of node.ctx.events.since(cursor, limit)) {
            cursor = e.seq;
            yield e;
          }
          yield* waitOrHeartbeat((s) => node.ctx.events.next(s), cursor, heartbeatMs, signal);
        }
      }));
    },
    "POST /v1/send": async (req) => {
      const b = C.parseInput(C.SEND, req.body);
      const headerId = req.headers.get("idempotency-key") ?? "";
      if (headerId !== "" && b.id !== "" && headerId !== b.id) {
        throw invalid("Idempotency-Key and id differ", "give the message id once");
      }
      const message = outgoingMessage({ ...b, id: headerId || b.id });
      return V.sendView(
        await messages.send(b.peer, message, b.timeout_ms, { queue: b.queue, ttlMs: b.ttl_ms }),
      );
    },
    "POST /v1/send-batch": async (req) => {
      const b = C.parseInput(C.SEND_BATCH, req.body);
      if (req.headers.get("idempotency-key") !== null) {
        throw invalid(
          "Idempotency-Key names one message, not a batch",
          'give each message of the batch its own "id"',
        );
      }
      const envelopes = batchEnvelopes(b.messages);
      const options = { queue: b.queue, ttlMs: b.ttl_ms };
      // All at once: they pipeline on the peer's one message stream, and
      // each settles on its own receipt (or error), as separate sends would.
      const settled = await Promise.allSettled(
        envelopes.map((e) => messages.sendEnvelope(b.peer, e, b.timeout_ms, options)),
      );
      return V.sendBatchView(
        settled.map((r) =>
          r.status === "fulfilled" ? r : { ...r, reason: reported("POST /v1/send-batch", r.reason) }
        ),
      );
    },
    "GET /v1/outbox": () => Promise.resolve(V.outboxView(messages.outbox())),
    "POST /v1/tasks/submit": async (req) => {
      const b = C.parseInput(C.TASK_SUBMIT, req.body);
      return V.taskView(
        await node.features.tasks.submit(b.peer, {
          type: b.type,
          data: messageData(b.type, b.data),
          id: b.id,
          deadlineMs: b.deadline_ms ?? null,
        }, b.timeout_ms),
      );
    },
    "GET /v1/tasks": async (req) => {
      const q = C.parseInput(C.TASK_LIST, req.query);
      const tasks = await node.features.tasks.list({
        role: q.role as "worker" | "submitter",
        ...(q.state === undefined ? {} : { state: q.state as C.TaskStateName }),
        waitMs: q.wait,
        limit: q.limit,
      });
      return { tasks: tasks.map(V.taskView) };
    },
    "POST /v1/tasks/accept": async (req) => {
      const b = C.parseInput(C.TASK_ACCEPT, req.body);
      return V.taskView(await node.features.tasks.accept(b.id, b.from));
    },
    "POST /v1/tasks/decline": async (req) => {
      const b = C.parseInput(C.TASK_DECLINE, req.body);
      return V.taskView(await node.features.tasks.decline(b.id, b.reason, b.from));
    },
    "POST /v1/tasks/progress": async (req) => {
      const b = C.parseInput(C.TASK_PROGRESS, req.body);
      return V.taskView(
        await node.features.tasks.progress(b.id, b.type, messageData(b.type, b.data), b.from),
      );
    },
    "POST /v1/tasks/result": async (req) => {
      const b = C.parseInput(C.TASK_RESULT, req.body);
      if ((b.data === undefined) === (b.error === undefined)) {
        throw invalid("Give exactly one of data and error", "a result, or why the task failed");
      }
      const outcome = b.error !== undefined
        ? { error: b.error }
        : { type: b.type, data: messageData(b.type, b.data) };
      return V.taskView(await node.features.tasks.result(b.id, outcome, b.from));
    },
    "GET /v1/tasks/status": async (req) => {
      const q = C.parseInput(C.TASK_STATUS, req.query);
      return V.taskView(await node.features.tasks.status(q.id, q.from));
    },
    "GET /v1/tasks/wait": async (req) => {
      const q = C.parseInput(C.TASK_WAIT, req.query);
      return V.taskView(await node.features.tasks.wait(q.id, q.timeout_ms, q.from));
    },
    "POST /v1/outbox/cancel": async (req) => {
      const b = C.parseInput(C.OUTBOX_CANCEL, req.body);
      return { cancelled: await messages.outboxCancel(b.id, b.to) };
    },
    "GET /v1/inbox": async (req) => {
      const q = req.query;
      const { after, limit, from, wait, follow } = C.parseInput(C.INBOX, q);
      const fromKey = from ? messages.senderKey(from) : undefined;
      const filter = fromKey === undefined ? {} : { fromKey };
      if (follow) {
        const heartbeatMs = heartbeatOf(q);
        return ndjson(req.signal, async function* (signal) {
          let cursor = after;
          while (!signal.aborted) {
            const page = node.inbox.list({ after: cursor, limit, ...filter });
            for (const m of page.messages) yield V.messageView(m);
            cursor = page.next;
            yield* waitOrHeartbeat(
              (s) => node.inbox.waitFor(cursor, s, filter),
              cursor,
              heartbeatMs,
              signal,
            );
          }
        });
      }
      const { page, timedOut } = await longPoll(
        () => node.inbox.list({ after, limit, ...filter }),
        (p) => p.messages.length > 0,
        (signal) => node.inbox.waitFor(after, signal, filter),
        wait,
        req.signal,
      );
      return V.inboxView(page, timedOut);
    },
    "POST /v1/inbox/ack": async (req) => {
      const { ids, from } = C.parseInput(C.INBOX_ACK, req.body);
      // Ids are chosen per sender: "from" scopes them (an address, hostname, fingerprint or key).
      const fromKey = from === "" ? undefined : messages.senderKey(from);
      return V.removedView(await messages.inboxAck(ids, fromKey));
    },
    "POST /v1/inbox/clear": async (req) => {
      const b = C.parseInput(C.INBOX_CLEAR, req.body);
      return V.removedView(await messages.inboxClear(b.up_to));
    },
    "POST /v1/ping": async (req) => {
      const b = C.parseInput(C.PING, req.body);
      return V.pingView(await diagnostics.ping(b.peer, b.count, b.interval_ms, b.timeout_ms));
    },
    "POST /v1/dgram": async (req) => {
      const b = C.parseInput(C.DGRAM, req.body);
      const data = bytesField(b.data, b.encoding);
      return V.dgramView(await ports.dgram(b.peer, b.port, data, b.timeout_ms));
    },
    "GET /v1/recv": async (req) => {
      const { port, count, follow, timeout_ms: timeoutMs } = C.parseInput(C.RECV, req.query);
      const binding = node.ctx.datagrams.userPorts.bind(port, (p) => ports.isServicePort(p));
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), timeoutMs);
      req.signal.addEventListener("abort", () => ac.abort(), { once: true });
      if (follow) {
        return ndjson(req.signal, async function* (signal) {
          try {
            let left = count;
            while (left > 0 && !signal.aborted && !ac.signal.aborted) {
              for (const d of await binding.take(left, ac.signal)) {
                left--;
                yield d;
              }
            }
          } finally {
            clearTimeout(timer);
            node.ctx.datagrams.userPorts.release(binding);
          }
        });
      }
      try {
        const datagrams = [];
        while (datagrams.length < count && !ac.signal.aborted) {
          datagrams.push(...await binding.take(count - datagrams.length, ac.signal));
        }
        return V.recvView({
          port,
          datagrams,
          timedOut: datagrams.length < count,
          overflowed: binding.overflowed,
        });
      } finally {
        clearTimeout(timer);
        node.ctx.datagrams.userPorts.release(binding);
      }
    },
    "POST /v1/bench": async (req) => {
      const b = C.parseInput(C.BENCH, req.body);
      if (!(b.size_mb > 0)) throw invalid('Field "size_mb" must be a number from 0 to 4096');
      const bytes = Math.round(b.size_mb * 1024 * 1024);
      return V.benchView(await diagnostics.bench(b.peer, bytes, b.timeout_ms));
    },
    "POST /v1/publish": async (req) => {
      const b = C.parseInput(C.PUBLISH, req.body);
      const data = bytesField(b.data, b.encoding);
      return V.publishView(await pubsub.publish(b.peer, b.topic, data, b.timeout_ms));
    },
    "GET /v1/subscribe": async (req) => {
      const q = req.query;
      const { peer, pattern, count, timeout_ms: timeoutMs } = C.parseInput(C.SUBSCRIBE, q);
      // Opening and subscribing come first: their refusals are ordinary JSON errors.
      const feed = await pubsub.subscribe(peer, pattern, timeoutMs);
      const heartbeatMs = heartbeatOf(q);
      return ndjson(req.signal, async function* (signal) {
        for await (const n of feed(count, heartbeatMs, signal)) yield V.subscribeLineView(n);
      });
    },
    "POST /v1/send-file": async (req) => {
      const { peer, path, progress, timeout_ms: timeoutMs } = C.parseInput(C.SEND_FILE, req.body);
      if (!progress) return V.sendFileView(await files.sendFile(peer, path, timeoutMs));
      // Progress lines while the file goes out, then the result (or the error) line.
      return ndjson(req.signal, async function* () {
        const lines: unknown[] = [];
        let wake: (() => void) | undefined;
        let last = 0;
        const done = files.sendFile(peer, path, timeoutMs, (sent, size) => {
          if (sent !== size && performance.now() - last < 200) return;
          last = performance.now();
          lines.push({ kind: "progress", sent, size });
          wake?.();
        }).then(
          (data) => ({ kind: "result", ...V.sendFileView(data) }),
          (e) => ({
            kind: "error",
            ...errorBody(reported("POST /v1/send-file", e)),
          }),
        );
        let end: unknown;
        done.then((r) => {
          end = r;
          wake?.();
        });
        while (end === undefined || lines.length > 0) {
          const line = lines.shift();
          if (line !== undefined) {
            yield line;
            continue;
          }
          await new Promise<void>((r) => wake = r);
        }
        yield end;
      });
    },
    "GET /v1/received": async (req) => {
      const { after, limit, from, wait } = C.parseInput(C.RECEIVED, req.query);
      const filter = from ? { fromKey: messages.senderKey(from) } : {};
      const { page, timedOut } = await longPoll(
        () => node.receivedFiles.list({ after, limit, ...filter }),
        (p) => p.files.length > 0,
        (signal) => node.receivedFiles.waitFor(after, signal, filter),
        wait,
        req.signal,
      );
      return V.receivedView(page, timedOut);
    },
    "POST /v1/received/ack": async (req) => {
      const { ids, from } = C.parseInput(C.RECEIVED_ACK, req.body);
      const scope = from === "" ? {} : { fromKey: messages.senderKey(from) };
      return V.removedView(await node.receivedFiles.ack(ids, scope));
    },
    "POST /v1/received/clear": async (req) => {
      const b = C.parseInput(C.RECEIVED_CLEAR, req.body);
      return V.removedView(await node.receivedFiles.clear(b.up_to));
    },
    "POST /v1/call": async (req) => {
      const b = C.parseInput(C.CALL, req.body);
      const answer = await messages.call(b.peer, {
        type: b.type,
        data: messageData(b.type, b.data),
        id: b.id,
      }, b.timeout_ms);
      return V.callView(answer);
    },
    "POST /v1/reply": async (req) => {
      const b = C.parseInput(C.REPLY, req.body);
      return V.sendView(
        await messages.reply(
          b.id,
          { type: b.type, data: messageData(b.type, b.data), id: "" },
          b.timeout_ms,
          b.from === "" ? undefined : messages.senderKey(b.from),
        ),
      );
    },
    "GET /v1/connections": () => Promise.resolve(V.connectionsView(ports.connections())),
    "GET /v1/stream": (req) =>
      Promise.resolve(streamSocket(req, async () => {
        const { peer, port, timeout_ms: timeoutMs } = C.parseInput(C.STREAM, req.query);
        const opened = await ports.openStream(peer, port, timeoutMs);
        return { conn: opened.conn, hello: V.streamHelloView(opened, port) };
      })),
    "GET /v1/listen": (req) =>
      Promise.resolve(streamSocket(req, async (signal, say) => {
        const { port, timeout_ms: timeoutMs } = C.parseInput(C.LISTEN, req.query);
        // An exposed port is the tunnel's; while this waits, the port cannot be exposed.
        using _client = tunnels.apiListen(port);
        const ac = new AbortController();
        const timer = setTimeout(() => ac.abort(), timeoutMs);
        signal.addEventListener("abort", () => ac.abort(), { once: true });
        try {
          const reserved = (p: number) => ports.isServicePort(p);
          // Registered before it is announced: a peer may connect as soon as
          // the client reads "listening".
          node.ctx.streams.listen(port, reserved);
          say({ type: "listening", port });
          const incoming = await node.ctx.streams.accept(port, ac.signal, reserved);
          node.ctx.streams.handedOver(port);
          return { conn: incoming.conn, hello: V.listenHelloView(incoming, port) };
        } finally {
          clearTimeout(timer);
        }
      })),
    "GET /v1/tunnels": () => Promise.resolve(V.tunnelsView(tunnels.list())),
    "POST /v1/expose": async (req) => {
      const b = C.parseInput(C.EXPOSE, req.body);
      return V.exposeView(await tunnels.expose(b.target, b.vport, b.allow ?? [], b.save));
    },
    "POST /v1/unexpose": async (req) => {
      const b = C.parseInput(C.UNEXPOSE, req.body);
      return V.unexposeView(await tunnels.unexpose(b.vport, b.save));
    },
    "POST /v1/forward": async (req) => {
      const b = C.parseInput(C.FORWARD, req.body);
      return V.forwardView(
        await tunnels.forward(b.local_port, b.peer, b.vport, b.timeout_ms, b.save),
      );
    },
    "POST /v1/unforward": async (req) => {
      const b = C.parseInput(C.UNFORWARD, req.body);
      return V.unforwardView(await tunnels.unforward(b.local_port, b.save));
    },
    "GET /v1/rendezvous": () => {
      if (node.rendezvous === undefined) {
        throw new PilotError(
          "not_found",
          "This node is not a rendezvous",
          "run one with `pilot rendezvous` (or `pilot rendezvous start`)",
        );
      }
      return Promise.resolve(V.rendezvousView(node.rendezvous.status()));
    },
    "POST /v1/shutdown": () => {
      setTimeout(shutdown, 0);
      return Promise.resolve({ stopped: true });
    },
  };
}
