/**
 * The trust service on virtual port 444, the only port an untrusted peer
 * reaches. It carries signed requests, accepts, rejects and revokes (see
 * src/wire/trust_message.ts), each repeated until acknowledged and processed
 * once. Messages sent over a live session are bound to its handshake hash,
 * so they need no clock; a request whose signer is not the session's peer is
 * refused.
 *
 * Anyone with a session reaches this port, so datagrams first pass the
 * cheap checks and the bounded queue of {@linkcode TrustAdmission}; only
 * then is a signature verified. Decisions about one key run one at a time
 * ({@linkcode KeyedLock}); local commands take only their key's turn, never
 * a place behind the network's queue.
 *
 * @module
 */
import {
  MAX_PENDING_PER_SOURCE,
  MAX_PENDING_REQUESTS,
  OUTGOING_REQUEST_TTL_MS,
  PORT_TRUST,
  REJECT_SUPPRESS_MS,
} from "../constants.ts";
import { PilotError } from "../errors.ts";
import { type PeerRef, peerRef, refOf } from "../session/peer_ref.ts";
import type { PeerIdentity } from "../session/peer_identity.ts";
import { randomBytes } from "../session/crypto.ts";
import {
  checkTrustMessage,
  decodeTrustMessage,
  replayKey,
  type SignedTrustMessage,
  signTrustMessage,
  type TrustMessage,
  TrustMessageError,
} from "../wire/trust_message.ts";
import { encodeTrustPacket } from "../wire/trust_packet.ts";
import { KeyedLock } from "./keyed_lock.ts";
import { RetryUntilAnswered } from "./retry_until_answered.ts";
import type { DatagramContext, PortService } from "./port_service.ts";
import { TrustAdmission } from "./trust_admission.ts";
import { TrustOutbox } from "./trust_outbox.ts";
import {
  type FlowBook,
  type OutboxItem,
  type PendingRequest,
  TRUST_DROP_REASONS,
  type TrustAck,
  type TrustAnswer,
  type TrustBook,
  type TrustDropReason,
  type TrustEntry,
} from "./trust_types.ts";

/** What the trust service needs from the node. */
export interface TrustServiceOptions {
  /** Our Ed25519 seed (signs trust messages). */
  seed: Uint8Array;
  /** Our Ed25519 key. */
  publicKey: Uint8Array;
  /** Our address stamp. */
  stamp: Uint8Array;
  /** Our hostname, or null. */
  hostname: string | null;
  /** The trust store. */
  trust: TrustBook;
  /** Pending, outgoing, outbox, suppression, replay cache. */
  flow: FlowBook;
  /** Sends a port-444 datagram to a peer over its current session; false without one. */
  send(peerKeyHex: string, payload: Uint8Array): Promise<boolean>;
  /** The handshake hash of the peer's current session. */
  binding(peerKeyHex: string): Uint8Array | undefined;
  /** Where the peer was last reached (IP:PORT), if known. */
  endpointOf?(peerKeyHex: string): string | undefined;
  /**
   * Opens a session to a peer expecting its full key, for an undelivered
   * answer ({@linkcode TrustService.retryOutbox}); without it, answers wait
   * for the peer to connect.
   */
  reconnect?(peerKeyHex: string, endpoint: string): Promise<void>;
  /** Whether a peer is pre-authorised (approved at once). */
  autoApprove(peer: PeerIdentity): boolean;
  /** Publishes an event. */
  publish(
    type: "trust.requested" | "trust.approved" | "trust.rejected" | "trust.revoked",
    data: Record<string, unknown>,
  ): void;
  /** Called after trust in a key was removed (close its sessions). */
  onUntrusted(peerKeyHex: string): void;
  /**
   * Leaves a trust message signed for offline delivery at the peer's
   * mailbox (issue 10): true when a mailbox took it. Without it, answers to
   * a peer with no session wait for one.
   */
  leaveOffline?(peerKeyHex: string, signed: Uint8Array, ttlMs: number): Promise<boolean>;
  /** Wall clock in ms (default Date.now). */
  now?: () => number;
  /** Monotonic clock in ms for rate limits and retry backoff (default `performance.now`). */
  monotonic?: () => number;
  /** Random number in [0, 1) for retry jitter (default `Math.random`). */
  random?: () => number;
}

/** Options of {@linkcode TrustService.request}. */
export interface RequestOptions {
  /**
   * The user named this exact key (as key, fingerprint or address), so a
   * request from it crossing ours may approve itself. Default false: a name
   * anyone can claim (a hostname) never approves anything by itself.
   */
  pinned?: boolean;
}

/** How a local trust operation ended. */
export interface TrustOutcome {
  /** Where the relationship stands now. */
  status: "pending" | "trusted" | "rejected" | "untrusted";
  /** Whether this call changed anything. */
  changed: boolean;
  /** Whether the peer acknowledged (false: queued for later delivery). */
  delivered: boolean;
}

/** The trust service. */
export class TrustService implements PortService {
  /** Port 444. */
  readonly port: number = PORT_TRUST;
  /** Service name. */
  readonly name = "trust";
  /** Datagrams dropped or refused, by reason (every reason listed, from 0). */
  readonly drops: Record<TrustDropReason, number> = Object.fromEntries(
    TRUST_DROP_REASONS.map((r) => [r, 0]),
  ) as Record<TrustDropReason, number>;
  #o: TrustServiceOptions;
  #now: () => number;
  #acks = new RetryUntilAnswered<TrustAck>();
  #locks = new KeyedLock();
  #admission: TrustAdmission;
  #outbox: TrustOutbox;

  /** Creates the service. */
  constructor(options: TrustServiceOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    const monotonic = options.monotonic ?? (() => performance.now());
    this.#admission = new TrustAdmission({
      localKey: options.publicKey,
      locks: this.#locks,
      drop: (reason) => this.drops[reason]++,
      onAck: (id, ack) => this.#acks.answer(id, ack),
      isKnown: (key) =>
        options.trust.has(key) || options.flow.outgoingTo(key)?.status === "pending",
      pendingHash: (key) => options.flow.pendingFrom(key)?.request_hash,
      process: (message, ctx) => this.#receive(message, ctx),
      monotonic,
    });
    this.#outbox = new TrustOutbox({
      flow: options.flow,
      binding: (key) => options.binding(key),
      endpointOf: (key) => options.endpointOf?.(key),
      // Without a way to reconnect, answers wait for the peer to connect.
      reconnect: (key, endpoint) => options.reconnect?.(key, endpoint) ?? Promise.resolve(),
      exchange: (item, timeoutMs) => this.#exchangeAnswer(item, timeoutMs),
      ...(options.leaveOffline === undefined ? {} : { leave: (item) => this.#leaveAnswer(item) }),
      now: this.#now,
      monotonic,
      ...(options.random === undefined ? {} : { random: options.random }),
    });
  }

  /** The same counters as {@linkcode drops} (the name `pilot info` has shown them under). */
  get refused(): Record<TrustDropReason, number> {
    return this.drops;
  }

  /** Messages waiting in the verification queue. */
  get queued(): number {
    return this.#admission.queued;
  }

  /** Messages being verified or processed now. */
  get processing(): number {
    return this.#admission.processing;
  }

  #refuse(reason: TrustDropReason, detail: string = reason): TrustAck {
    this.drops[reason]++;
    return { status: "refused", detail };
  }

  /** Handles one port-444 datagram (through the checks and queue of {@linkcode TrustAdmission}). */
  onDatagram(packet: { payload: Uint8Array }, ctx: DatagramContext): Promise<void> {
    return this.#admission.onDatagram(packet.payload, ctx);
  }

  async #receive(bytes: Uint8Array, ctx: DatagramContext): Promise<TrustAnswer> {
    let signed: SignedTrustMessage;
    try {
      signed = await decodeTrustMessage(bytes);
    } catch (e) {
      return this.#refuse(e instanceof TrustMessageError ? e.reason : "malformed");
    }
    const check = checkTrustMessage(signed, {
      localKey: this.#o.publicKey,
      sessionPeerKey: ctx.peer.publicKey,
      sessionBinding: ctx.binding,
      now: this.#now(),
    });
    if (!check.ok) return this.#refuse(check.code);
    return await this.#process(signed, ctx.peer);
  }

  /**
   * Handles a trust message carried offline (no session: a later mailbox).
   * It must carry an expiry; a persisted cache of (sender, nonce) refuses
   * repeats.
   */
  processOffline(bytes: Uint8Array, sender: PeerIdentity): Promise<TrustAck> {
    return this.#locks.run(sender.keyHex, async () => {
      let signed: SignedTrustMessage;
      try {
        signed = await decodeTrustMessage(bytes);
      } catch (e) {
        return this.#refuse(e instanceof TrustMessageError ? e.reason : "malformed");
      }
      const now = this.#now();
      const check = checkTrustMessage(signed, { localKey: this.#o.publicKey, now });
      if (!check.ok) return this.#refuse(check.code);
      if (signed.message.fromKey.toHex() !== sender.keyHex) return this.#refuse("wrong_sender");
      let fresh: boolean;
      try {
        fresh = await this.#o.flow.rememberOffline(replayKey(signed), signed.message.expires, now);
      } catch (e) {
        if (e instanceof PilotError && e.code === "rate_limited") {
          return this.#refuse("rate_limited");
        }
        throw e;
      }
      if (!fresh) return this.#refuse("replayed");
      const { after, ...ack } = await this.#process(signed, sender);
      // No session carries an acknowledgement here: act at once.
      after?.();
      return ack;
    });
  }

  async #process(signed: SignedTrustMessage, peer: PeerIdentity): Promise<TrustAnswer> {
    const m = signed.message;
    const key = peer.keyHex;
    switch (m.kind) {
      case "request":
        return await this.#onRequest(signed, peer);
      case "accept": {
        const out = this.#o.flow.outgoingTo(key);
        const ref = m.requestHash!.toHex();
        if (this.#o.trust.has(key)) {
          await this.#addAcceptHash(key, signed.hash.toHex());
          return { status: "recorded", detail: "" };
        }
        if (out === undefined || !out.hashes.includes(ref)) return this.#refuse("unknown_request");
        // Their request to us (if it crossed ours) is settled by this trust too.
        await this.#o.flow.removePending(key);
        await this.#trust(peerRef(peer), true, [signed.hash.toHex()]);
        await this.#o.flow.putOutgoing({ ...out, status: "approved" });
        this.#o.publish("trust.approved", { peer: peerRef(peer), direction: "incoming" });
        return { status: "recorded", detail: "" };
      }
      case "reject": {
        const out = this.#o.flow.outgoingTo(key);
        if (out === undefined || !out.hashes.includes(m.requestHash!.toHex())) {
          return this.#refuse("unknown_request");
        }
        if (out.status !== "rejected") {
          await this.#o.flow.putOutgoing({
            ...out,
            status: "rejected",
            reject_reason: m.reason ?? "",
          });
          this.#o.publish("trust.rejected", {
            peer: peerRef(peer),
            direction: "incoming",
            reason: m.reason ?? "",
          });
        }
        return { status: "recorded", detail: "" };
      }
      case "revoke": {
        const entry = this.#o.trust.get(key);
        if (entry === undefined) return { status: "recorded", detail: "" };
        if (!(entry.accept_hashes ?? []).includes(m.acceptHash!.toHex())) {
          return this.#refuse("unknown_accept");
        }
        await this.#o.trust.remove(key);
        await this.#o.flow.removeOutgoing(key);
        this.#o.publish("trust.revoked", { peer: peerRef(peer), direction: "incoming" });
        // Close the sessions only once the acknowledgement has gone out on them.
        return { status: "recorded", detail: "", after: () => this.#o.onUntrusted(key) };
      }
    }
  }

  async #onRequest(signed: SignedTrustMessage, peer: PeerIdentity): Promise<TrustAck> {
    const key = peer.keyHex;
    const now = this.#now();
    const m = signed.message;
    if (this.#o.trust.has(key)) {
      // Trusted already (our accept may have been lost): accept this request too.
      await this.#queueAnswer(key, "accept", signed.hash.toHex(), "");
      return { status: "approved", detail: "already trusted" };
    }
    if (this.#o.flow.suppressedUntil(key, now) > 0) {
      return { status: "rejected", detail: "suppressed" };
    }
    const out = this.#o.flow.outgoingTo(key);
    // Only a request to the exact key the user named approves one crossing it:
    // a hostname could have led ours to an impostor that now asks back.
    const crossing = out !== undefined && out.status === "pending" && out.expires_at > now &&
      out.pinned === true;
    if (crossing || this.#o.autoApprove(peer)) {
      await this.#approveRequest(peer, signed.hash.toHex(), crossing ? "crossing" : "auto_approve");
      return { status: "approved", detail: crossing ? "crossing" : "auto_approve" };
    }
    const existing = this.#o.flow.pendingFrom(key);
    const source = sourceOf(this.#o.endpointOf?.(key)) ?? existing?.source;
    if (existing === undefined) {
      // Checked and stored without an await between: the caps hold under concurrency.
      if (this.#o.flow.pending.length >= MAX_PENDING_REQUESTS) {
        return this.#refuse("pending_full", "rate_limited");
      }
      if (
        source !== undefined &&
        this.#o.flow.pending.filter((p) => p.source === source).length >= MAX_PENDING_PER_SOURCE
      ) {
        return this.#refuse("source_full", "rate_limited");
      }
    }
    const pending: PendingRequest = {
      public_key: key,
      stamp: m.fromStamp.toHex(),
      address: peer.address,
      hostname: peer.hostname === "" ? null : peer.hostname,
      fingerprint: peer.fingerprint,
      reason: m.reason ?? "",
      received_at: new Date(now).toISOString(),
      request_hash: signed.hash.toHex(),
      ...(source === undefined ? {} : { source }),
    };
    await this.#o.flow.putPending(pending);
    if (existing === undefined) {
      this.#o.publish("trust.requested", { peer: peerRef(peer), reason: pending.reason });
    }
    return { status: "pending", detail: "" };
  }

  async #approveRequest(peer: PeerIdentity, requestHash: string, via: string): Promise<void> {
    await this.#trust(peerRef(peer), true, []);
    await this.#o.flow.removePending(peer.keyHex);
    const out = this.#o.flow.outgoingTo(peer.keyHex);
    if (out !== undefined) await this.#o.flow.putOutgoing({ ...out, status: "approved" });
    await this.#queueAnswer(peer.keyHex, "accept", requestHash, "");
    this.#o.publish("trust.approved", { peer: peerRef(peer), direction: "outgoing", via });
  }

  async #trust(peer: PeerRef, mutual: boolean, hashes: string[]): Promise<void> {
    const old = this.#o.trust.get(peer.public_key);
    const entry: TrustEntry = {
      // What the entry already knew (the static key's serial floor, where the
      // peer was last seen) stays; trust only grows here.
      ...old,
      public_key: peer.public_key,
      address: peer.address,
      hostname: peer.hostname,
      since: old?.since ?? new Date(this.#now()).toISOString(),
      mutual: mutual || (old?.mutual ?? false),
      accept_hashes: [...new Set([...(old?.accept_hashes ?? []), ...hashes])].slice(-8),
    };
    await this.#o.trust.put(entry);
    // A revoke still queued from an earlier relationship must not cancel this one.
    await this.#outbox.drop(peer.public_key, "revoke");
  }

  async #addAcceptHash(key: string, hash: string): Promise<void> {
    const old = this.#o.trust.get(key);
    if (old === undefined || old.accept_hashes?.includes(hash)) return;
    await this.#o.trust.put({
      ...old,
      mutual: true,
      accept_hashes: [...(old.accept_hashes ?? []), hash].slice(-8),
    });
  }

  async #queueAnswer(key: string, kind: OutboxItem["kind"], ref: string, reason: string) {
    await this.#outbox.enqueue(key, { kind, ref_hash: ref, reason });
    // Deliver in the background; the caller reports "queued" if it has not landed.
    this.flush(key).catch(() => {});
  }

  /** Signs one queued answer for the peer's session and sends it until acknowledged. */
  async #exchangeAnswer(item: OutboxItem, timeoutMs: number): Promise<boolean> {
    const ack = await this.#exchange(
      item.public_key,
      answerFields(item),
      timeoutMs,
      item.kind === "accept"
        ? (s) => this.#addAcceptHash(item.public_key, s.hash.toHex())
        : undefined,
    );
    return ack !== undefined;
  }

  /** Signs one queued answer for offline delivery and leaves it at the peer's mailbox. */
  async #leaveAnswer(item: OutboxItem): Promise<boolean> {
    const ttlMs = Math.max(1, item.expires_at - this.#now());
    const signed = await this.#signOffline(item.public_key, answerFields(item), ttlMs);
    if (item.kind === "accept") await this.#addAcceptHash(item.public_key, signed.hash.toHex());
    return await this.#o.leaveOffline!(item.public_key, signed.bytes, ttlMs).catch(() => false);
  }

  /** Signs a trust message for offline delivery: bound to no session, expiring after `ttlMs`. */
  #signOffline(
    key: string,
    fields: MessageFields,
    ttlMs: number,
  ): Promise<SignedTrustMessage> {
    const now = this.#now();
    return signTrustMessage(this.#o.seed, {
      ...fields,
      fromStamp: this.#o.stamp,
      toKey: Uint8Array.fromHex(key),
      nonce: randomBytes(16),
      created: now,
      expires: now + ttlMs,
      binding: new Uint8Array(32),
    } as Omit<TrustMessage, "fromKey">);
  }

  /**
   * A trust request for a peer that is offline, to leave at its mailbox:
   * recorded as our outgoing request (so its accept is recognised, whichever
   * way it comes back) and signed for offline delivery, expiring after
   * `ttlMs`. Returns its bytes.
   */
  offlineRequest(peer: PeerRef, reason: string, ttlMs: number): Promise<Uint8Array> {
    return this.#locks.run(peer.public_key, async () => {
      const key = peer.public_key;
      const now = this.#now();
      const prior = this.#o.flow.outgoingTo(key);
      const repeat = prior !== undefined && prior.expires_at > now && prior.status === "pending";
      const signed = await this.#signOffline(
        key,
        { kind: "request", hostname: this.#o.hostname ?? "", reason },
        ttlMs,
      );
      await this.#o.flow.putOutgoing({
        public_key: key,
        address: peer.address,
        hostname: peer.hostname,
        reason,
        created_at: repeat ? prior.created_at : new Date(now).toISOString(),
        expires_at: now + OUTGOING_REQUEST_TTL_MS,
        status: "pending",
        hashes: [...(repeat ? prior.hashes : []), signed.hash.toHex()].slice(-16),
        pinned: repeat && prior.pinned === true,
      });
      return signed.bytes;
    });
  }

  /** Signs with the binding of the peer's current session and exchanges until acknowledged. */
  async #exchange(
    key: string,
    fields: MessageFields,
    timeoutMs: number,
    onSigned?: (s: SignedTrustMessage) => Promise<void>,
  ): Promise<TrustAck | undefined> {
    const requestId = randomBytes(8);
    const nonce = randomBytes(16);
    let signedFor: Uint8Array | undefined;
    let packet: Uint8Array | undefined;
    return await this.#acks.run(requestId.toHex(), async () => {
      const binding = this.#o.binding(key);
      if (binding === undefined) return;
      if (signedFor === undefined || signedFor.toHex() !== binding.toHex()) {
        // Re-signed per session: the signature binds the session it travels on.
        const signed = await signTrustMessage(this.#o.seed, {
          ...fields,
          fromStamp: this.#o.stamp,
          toKey: Uint8Array.fromHex(key),
          nonce,
          created: this.#now(),
          expires: 0,
          binding,
        } as Omit<TrustMessage, "fromKey">);
        await onSigned?.(signed);
        signedFor = binding;
        packet = encodeTrustPacket({ op: "message", requestId, message: signed.bytes });
      }
      await this.#o.send(key, packet!);
    }, timeoutMs);
  }

  /**
   * Sends a trust request to a peer with a live session; returns where it
   * stands. Pass `pinned` when the user named the peer's exact key.
   */
  async request(
    peer: PeerIdentity,
    reason: string,
    timeoutMs: number,
    options: RequestOptions = {},
  ): Promise<TrustOutcome> {
    const key = peer.keyHex;
    if (this.#o.trust.has(key) && this.#o.trust.get(key)!.mutual) {
      return { status: "trusted", changed: false, delivered: true };
    }
    const now = this.#now();
    const deadline = Date.now() + timeoutMs;
    const prior = this.#o.flow.outgoingTo(key);
    const live = prior !== undefined && prior.expires_at > now;
    const repeat = live && prior.status === "pending";
    // A repeat without a reason keeps the one already sent.
    const why = repeat && reason === "" ? prior.reason : reason;
    await this.#o.flow.putOutgoing({
      public_key: key,
      address: peer.address,
      hostname: peer.hostname === "" ? null : peer.hostname,
      reason: why,
      created_at: repeat ? prior.created_at : new Date(now).toISOString(),
      expires_at: now + OUTGOING_REQUEST_TTL_MS,
      status: "pending",
      hashes: repeat ? prior.hashes : [],
      // Once the user named the exact key, a repeat by name keeps it pinned.
      pinned: (options.pinned ?? false) || (repeat && prior.pinned === true),
    });
    let ack: TrustAck | undefined;
    for (;;) {
      ack = await this.#exchange(
        key,
        { kind: "request", hostname: this.#o.hostname ?? "", reason: why },
        Math.max(1, deadline - Date.now()),
        async (s) => {
          const out = this.#o.flow.outgoingTo(key)!;
          await this.#o.flow.putOutgoing({
            ...out,
            hashes: [...out.hashes, s.hash.toHex()].slice(-16),
          });
        },
      );
      // Signed for a session that was replaced meanwhile (a rekey): sign again.
      if (ack?.status !== "refused" || ack.detail !== "wrong_binding") break;
      if (Date.now() >= deadline) break;
    }
    if (ack === undefined) {
      throw new PilotError(
        "timeout",
        `${peer.address} did not acknowledge the trust request in time`,
        "retry: repeating a handshake is safe",
      );
    }
    if (ack.status === "refused") {
      const code = ack.detail === "rate_limited" || ack.detail === "clock_skew"
        ? ack.detail
        : ack.detail === "wrong_binding"
        ? "timeout"
        : "rejected";
      throw new PilotError(
        code,
        `${peer.address} refused the trust request (${ack.detail})`,
        code === "rate_limited" ? "it has too many requests waiting; retry later" : "",
      );
    }
    if (ack.status === "rejected") {
      const out = this.#o.flow.outgoingTo(key)!;
      // The ack says only "suppressed": the reason is the one its reject gave, if that came.
      const reason = prior?.status === "rejected" ? prior.reject_reason ?? "" : "";
      await this.#o.flow.putOutgoing({ ...out, status: "rejected", reject_reason: reason });
      const wasRejected = live && prior.status === "rejected";
      return { status: "rejected", changed: !wasRejected, delivered: true };
    }
    if (ack.status === "approved") return { status: "trusted", changed: true, delivered: true };
    return { status: "pending", changed: !repeat, delivered: true };
  }

  /** Approves a pending request from `key`. */
  approve(key: string, timeoutMs: number): Promise<TrustOutcome> {
    return this.#locks.run(key, async () => {
      const p = this.#o.flow.pendingFrom(key);
      if (p === undefined) {
        if (this.#o.trust.has(key)) {
          return { status: "trusted" as const, changed: false, delivered: true };
        }
        throw new PilotError(
          "not_found",
          "No pending request from that peer",
          "see `pilot pending`",
        );
      }
      await this.#trust(refOf(p), true, []);
      await this.#o.flow.removePending(key);
      await this.#outbox.enqueue(key, { kind: "accept", ref_hash: p.request_hash, reason: "" });
      this.#o.publish("trust.approved", {
        peer: refOf(p),
        direction: "outgoing",
        via: "approve",
      });
      return { status: "trusted" as const, changed: true, delivered: false };
    }).then(async (r) => ({
      ...r,
      delivered: r.changed ? await this.flush(key, timeoutMs) : true,
    }));
  }

  /** Rejects a pending request from `key`, suppressing that key for a while. */
  reject(key: string, reason: string, timeoutMs: number): Promise<TrustOutcome> {
    return this.#locks.run(key, async () => {
      const p = this.#o.flow.pendingFrom(key);
      const now = this.#now();
      await this.#o.flow.suppress(key, now + REJECT_SUPPRESS_MS);
      if (p === undefined) return { status: "rejected" as const, changed: false, delivered: true };
      await this.#o.flow.removePending(key);
      await this.#outbox.enqueue(key, { kind: "reject", ref_hash: p.request_hash, reason });
      this.#o.publish("trust.rejected", { peer: refOf(p), direction: "outgoing", reason });
      return { status: "rejected" as const, changed: true, delivered: false };
    }).then(async (r) => ({
      ...r,
      delivered: r.changed ? await this.flush(key, timeoutMs) : true,
    }));
  }

  /** Removes trust in `key` at once and tells the peer (revoke). */
  untrust(key: string, timeoutMs: number): Promise<TrustOutcome> {
    return this.#locks.run(key, async () => {
      const entry = this.#o.trust.get(key);
      if (entry === undefined) {
        return { status: "untrusted" as const, changed: false, delivered: true };
      }
      await this.#o.trust.remove(key);
      await this.#o.flow.removeOutgoing(key);
      // An accept not yet delivered would make the peer trust us after we stopped.
      await this.#outbox.drop(key, "accept");
      const accept = entry.accept_hashes?.at(-1);
      if (accept !== undefined) {
        await this.#outbox.enqueue(key, { kind: "revoke", ref_hash: accept, reason: "" });
      }
      const peer = refOf(entry);
      this.#o.publish("trust.revoked", { peer, direction: "outgoing" });
      return { status: "untrusted" as const, changed: true, delivered: accept === undefined };
    }).then(async (r) => {
      const delivered = r.changed && !r.delivered ? await this.flush(key, timeoutMs) : r.delivered;
      if (r.changed) this.#o.onUntrusted(key);
      return { ...r, delivered };
    });
  }

  /**
   * One round of active retries, for the node's timer (every
   * `OUTBOX_RETRY_MS`): each peer with undelivered answers whose backoff is
   * over is reconnected (when `reconnect` was given and its endpoint is
   * known) and sent them. A peer that does not answer is tried less and
   * less often and, after `OUTBOX_ACTIVE_RETRY_MS`, no more: its answers
   * stay queued for {@linkcode peerUp}.
   */
  retryOutbox(): Promise<void> {
    return this.#outbox.retry();
  }

  /**
   * Call when a session with `key` comes up: active retries to it start
   * over, and its undelivered answers go out now.
   */
  peerUp(key: string): Promise<boolean> {
    return this.#outbox.peerUp(key);
  }

  /** Whether active retries to `key` have stopped (its answers wait for {@linkcode peerUp}). */
  retriesStopped(key: string): boolean {
    return this.#outbox.retriesStopped(key);
  }

  /**
   * Delivers queued answers to `key` (or everyone) over live sessions.
   * Returns true when nothing for `key` is left queued.
   */
  flush(key?: string, timeoutMs = 5_000): Promise<boolean> {
    return this.#outbox.flush(key, timeoutMs);
  }
}

/** What a caller chooses of a trust message: the signer fills in the rest. */
type MessageFields = Omit<
  TrustMessage,
  "fromKey" | "binding" | "nonce" | "created" | "expires" | "fromStamp" | "toKey"
>;
/** The fields of a queued answer's trust message (what it names, and a reject's reason). */
function answerFields(item: OutboxItem): MessageFields {
  const ref = Uint8Array.fromHex(item.ref_hash);
  return item.kind === "revoke"
    ? { kind: "revoke", acceptHash: ref }
    : item.kind === "accept"
    ? { kind: "accept", requestHash: ref }
    : { kind: "reject", requestHash: ref, reason: item.reason };
}

/** The IP of an `IP:PORT` or `[IPv6]:PORT` endpoint, or undefined. */
function sourceOf(endpoint: string | undefined): string | undefined {
  if (endpoint === undefined) return undefined;
  const colon = endpoint.lastIndexOf(":");
  return colon > 0 ? endpoint.slice(0, colon).replace(/^\[(.*)\]$/, "$1") : undefined;
}
