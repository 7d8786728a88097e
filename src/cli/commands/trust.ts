/**
 * The trust flow: `handshake`, `pending`, `approve`, `reject`, `trust`,
 * `untrust`. Reasons and hostnames come from peers: printed escaped.
 *
 * @module
 */
import { PilotClient } from "../../client/mod.ts";
import {
  APPROVE,
  HANDSHAKE,
  PENDING,
  REJECT,
  TRUST,
  UNTRUST,
} from "../../control/contract/trust.ts";
import type { RouteKey } from "../../control/contract/spec.ts";
import type { Infer } from "../../control/schema.ts";
import { command, type CommandContext, type CommandSpec } from "../command.ts";
import {
  durationFlag,
  KNOWN_PEER_ARG,
  numberFlag,
  optionalString,
  PEER_ARG,
  withoutDefault,
} from "../flags.ts";
import { invalid } from "../../errors.ts";
import { keyValues, table } from "../output.ts";
import { peerText } from "../peer_text.ts";

const TIMEOUT_FLAG = {
  timeout: durationFlag(HANDSHAKE.input.timeout_ms, "give up after this long"),
};

async function post(ctx: CommandContext, key: RouteKey, body: Record<string, unknown>) {
  const timeoutMs = numberFlag(ctx, "timeout");
  const client = await PilotClient.open(ctx.home);
  return await client.call("POST", key.slice("POST ".length), {
    body: { ...body, timeout_ms: timeoutMs },
    timeoutMs: timeoutMs + 5_000,
  });
}

function who(p: { address: string; hostname: string | null } | null): string {
  if (p === null) return "-";
  const host = p.hostname ? ` (${peerText(p.hostname)})` : "";
  return `${p.address}${host}`;
}

const handshake = command({
  name: "handshake",
  routes: [HANDSHAKE.route],
  summary: "ask a peer to trust this node (a signed request on its port 444)",
  args: [PEER_ARG],
  flags: {
    reason: {
      type: "string",
      value: "TEXT",
      description: "why (shown to the peer; at most 1 KiB)",
    },
    wait: { type: "boolean", description: "wait until the peer approves or rejects" },
    "expect-fingerprint": {
      type: "string",
      value: "FP",
      description: "refuse, sending nothing, unless the peer that answers has this fingerprint",
    },
    ...TIMEOUT_FLAG,
    queue: {
      type: "boolean",
      description: "if the peer cannot be reached now, keep the request and ask again",
    },
    ttl: withoutDefault(
      durationFlag(HANDSHAKE.input.ttl_ms, "how long a queued request is asked again (24h)"),
    ),
  },
  output: HANDSHAKE.output,
  errors: [
    "not_running",
    "unreachable",
    "timeout",
    "key_changed",
    "conflict",
    "not_found",
    "rejected",
    "rate_limited",
    "too_large",
  ],
  run: (ctx) => {
    if (ctx.flags.ttl !== undefined && ctx.flags.queue !== true) {
      throw invalid("--ttl needs --queue", "add --queue, or leave out --ttl");
    }
    return post(ctx, HANDSHAKE.route, {
      peer: ctx.args.peer,
      reason: optionalString(ctx, "reason") ?? "",
      wait: ctx.flags.wait === true,
      expect_fingerprint: optionalString(ctx, "expect-fingerprint") ?? "",
      ...(ctx.flags.queue === true ? { queue: true } : {}),
      ...(ctx.flags.ttl !== undefined ? { ttl_ms: numberFlag(ctx, "ttl") } : {}),
    });
  },
  human: (o) => {
    const yours = ["yours", `${o.own_fingerprint} — give it to the peer`] as [string, string];
    if (o.peer === null) {
      return keyValues([
        ["status", `queued: the peer is not reachable now; asked again until ${o.expires_at}`],
        yours,
      ]);
    }
    const peer = o.peer;
    const lines: Record<string, string> = {
      queued: `queued: ${who(peer)} is not reachable now; a sealed copy waits at its mailbox ` +
        `(${o.mailbox}); asked again until ${o.expires_at}`,
      pending: `request sent to ${who(peer)}; waiting for approval`,
      trusted: `${who(peer)} trusts this node; trust is mutual`,
    };
    const line = lines[o.status] ?? o.status;
    return keyValues([
      ["status", line + (o.timed_out ? " (timed out waiting)" : "")],
      [
        "peer",
        `${peer.fingerprint} — check it with the peer's owner` +
        (o.first_contact ? " (first contact: compare it with the peer's `pilot info`)" : ""),
      ],
      yours,
    ]);
  },
});

const pending = command({
  name: "pending",
  routes: [PENDING.route],
  summary: "list trust requests waiting for approve or reject",
  args: [],
  flags: {},
  output: PENDING.output,
  errors: ["not_running"],
  run: async (ctx) => await (await PilotClient.open(ctx.home)).call("GET", "/v1/pending"),
  human: ({ pending: list }) => {
    if (list.length === 0) return "no pending requests";
    // One block per request, each line led by our own label: peer text is cut
    // to fit 80 columns, so it can neither wrap nor pose as another request.
    return [
      "Compare each fingerprint with the peer over a trusted channel before approving.",
      "A reason is the peer's own text: it may try to persuade you (or an agent).",
      ...list.flatMap((p) => [
        "",
        `${p.address}  ${p.fingerprint}`,
        `  hostname: ${p.hostname === null ? "-" : peerText(p.hostname)}`,
        `  received: ${p.received_at}`,
        `  reason:   ${p.reason === "" ? "-" : `"${peerText(p.reason)}"`}`,
      ]),
    ].join("\n");
  },
});

function decisionText(o: Infer<typeof APPROVE.output>): string {
  const what = o.status === "trusted" ? "approved" : "rejected";
  const done = o.changed ? what : `already ${what}`;
  const sent = o.delivered ? "the peer was told" : "queued: the peer is told when it is reachable";
  const host = o.peer.hostname ? ` (${peerText(o.peer.hostname)})` : "";
  return `${done} ${o.peer.address} [${o.peer.fingerprint}]${host}; ${sent}`;
}

const approve = command({
  name: "approve",
  routes: [APPROVE.route],
  summary: "approve a pending trust request (trust becomes mutual)",
  args: [KNOWN_PEER_ARG],
  flags: TIMEOUT_FLAG,
  output: APPROVE.output,
  errors: ["not_running", "not_found", "conflict"],
  run: (ctx) => post(ctx, APPROVE.route, { peer: ctx.args.peer }),
  human: decisionText,
});

const reject = command({
  name: "reject",
  routes: [REJECT.route],
  summary: "reject a pending trust request; its key is refused for a while",
  args: [KNOWN_PEER_ARG],
  flags: {
    reason: { type: "string", value: "TEXT", description: "told to the peer (at most 1 KiB)" },
    ...TIMEOUT_FLAG,
  },
  output: REJECT.output,
  errors: ["not_running", "not_found", "conflict", "too_large"],
  run: (ctx) =>
    post(ctx, REJECT.route, {
      peer: ctx.args.peer,
      reason: optionalString(ctx, "reason") ?? "",
    }),
  human: decisionText,
});

const trust = command({
  name: "trust",
  routes: [TRUST.route],
  summary: "list trusted peers",
  args: [],
  flags: {},
  output: TRUST.output,
  errors: ["not_running"],
  run: async (ctx) => await (await PilotClient.open(ctx.home)).call("GET", "/v1/trust"),
  human: ({ trusted: list }) => {
    if (list.length === 0) return "no trusted peers";
    return table(
      ["ADDRESS", "FINGERPRINT", "SINCE", "MUTUAL", "HOSTNAME"],
      list.map((p) => [
        String(p.address),
        String(p.fingerprint),
        String(p.since),
        p.mutual ? "yes" : "no",
        p.hostname === null ? "-" : peerText(p.hostname),
      ]),
    );
  },
});

const untrust = command({
  name: "untrust",
  routes: [UNTRUST.route],
  summary: "stop trusting a peer at once: sessions closed, the peer told",
  args: [KNOWN_PEER_ARG],
  flags: TIMEOUT_FLAG,
  output: UNTRUST.output,
  errors: ["not_running", "not_found", "conflict"],
  run: (ctx) => post(ctx, UNTRUST.route, { peer: ctx.args.peer }),
  human: (o) => {
    if (!o.changed) return "not trusted; nothing to do";
    return `no longer trusting ${who(o.peer)}; ${
      o.delivered ? "the peer was told" : "the peer is told when reachable"
    }`;
  },
});

/** The trust commands. */
export const TRUST_COMMANDS: CommandSpec[] = [handshake, pending, approve, reject, trust, untrust];
