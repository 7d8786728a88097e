/**
 * The two sides of one Noise_XX handshake over UDP. Each side caches the
 * exact frames it sent, so a retransmission resends the same bytes and never
 * re-encrypts from the same cipher state.
 *
 * @module
 */
import { MAX_FINAL_FAILURES, PROLOGUE } from "../constants.ts";
import type { Endpoint } from "../discovery/endpoint.ts";
import type { Address } from "../identity/address.ts";
import { constantTimeEqual, utf8 } from "../bytes.ts";
import {
  encodeFrame,
  type HandshakeFinalFrame,
  type HandshakeInitFrame,
  type HandshakeRespFrame,
  MAC_SIZE,
  MSG1_NOISE_SIZE,
} from "../wire/frames.ts";
import { decodeHandshakePayload } from "../wire/handshake_payload.ts";
import { computeMac1, computeMac2 } from "./cookie.ts";
import type { X25519KeyPair } from "./crypto.ts";
import { HandshakeState } from "./noise.ts";
import {
  HandshakeFailure,
  PayloadCheck,
  type PeerIdentity,
  verifyPeerPayload,
} from "./peer_identity.ts";
import { Session } from "./session.ts";

/** A message 3 that {@linkcode ResponderHandshake.complete} left unchecked because its caller could not pay for it. */
export class WorkShed extends Error {
  /** Creates the error. */
  constructor() {
    super("Message 3 shed before identity verification: the handshake work budget is spent");
    this.name = "WorkShed";
  }
}
/** Our side's identity as the handshake needs it. */
export interface LocalHandshakeIdentity {
  /** Static X25519 key pair Noise uses. */
  staticKey: X25519KeyPair;
  /** Our encoded handshake payload (identity, binding, self-description). */
  payload: Uint8Array;
}

/** Who the initiator expects to reach; checked before message 3 is sent. */
export interface Expected {
  /** The peer's full Ed25519 key. */
  publicKey?: Uint8Array;
  /** The peer's address (a name: any key holding it with a valid stamp passes). */
  address?: Address;
  /** The hostname its signed self-description must claim. */
  hostname?: string;
}

const PROLOGUE_BYTES = utf8(PROLOGUE);
const MSG1_PADDING = new Uint8Array(MSG1_NOISE_SIZE - 32);
const ZERO_MAC = new Uint8Array(MAC_SIZE);

/** The initiator's half: message 1 out, message 2 in, message 3 out. */
export class InitiatorHandshake {
  /** Our index for the session it will create. */
  readonly localIndex: number;
  /** Where message 1 goes. */
  readonly endpoint: Endpoint;
  /** Who we expect at the other end. */
  readonly expected: Expected;
  /** Monotonic time the attempt began (ms). */
  readonly startedAt: number;
  /** Monotonic time message 1 was last sent (ms). */
  lastSentAt: number = -Infinity;
  /** Set once message 2 was processed (successfully or not): the state is spent. */
  spent = false;

  #hs: HandshakeState;
  #frame: Uint8Array;
  #cookie: Uint8Array | undefined;
  #payload: Uint8Array;

  private constructor(
    payload: Uint8Array,
    localIndex: number,
    endpoint: Endpoint,
    expected: Expected,
    now: number,
    hs: HandshakeState,
    frame: Uint8Array,
  ) {
    this.localIndex = localIndex;
    this.endpoint = endpoint;
    this.expected = expected;
    this.startedAt = now;
    this.#hs = hs;
    this.#frame = frame;
    this.#payload = payload;
  }

  /** Builds message 1, with mac1 when the peer's key (`mac1Key`) is known. */
  static async start(options: {
    local: LocalHandshakeIdentity;
    localIndex: number;
    endpoint: Endpoint;
    expected: Expected;
    mac1Key: Uint8Array | undefined;
    now: number;
  }): Promise<InitiatorHandshake> {
    const hs = await HandshakeState.create({
      pattern: "XX",
      initiator: true,
      prologue: PROLOGUE_BYTES,
      s: options.local.staticKey,
    });
    // Message 1 carries only padding, so it is never smaller than message 2:
    // the responder cannot be used to amplify traffic.
    const noise = await hs.writeMessage(MSG1_PADDING);
    const init: HandshakeInitFrame = {
      type: "init",
      senderIndex: options.localIndex,
      noise,
      mac1: ZERO_MAC,
      mac2: ZERO_MAC,
    };
    const frame = encodeFrame(init);
    frame.set(await computeMac1(frame, options.mac1Key), frame.length - 2 * MAC_SIZE);
    return new InitiatorHandshake(
      options.local.payload,
      options.localIndex,
      options.endpoint,
      options.expected,
      options.now,
      hs,
      frame,
    );
  }

  /** The unpredictable value a cookie reply must echo: our ephemeral key's first 16 bytes. */
  get echo(): Uint8Array {
    return this.#frame.subarray(5, 5 + MAC_SIZE);
  }

  /**
   * Takes a cookie; returns false when this message 1 already took one. A
   * cookie reply is sent in clear, so anyone who saw message 1 can forge one:
   * acting on each would let them make us resend message 1 (with a useless
   * mac2) as often as they like. One per message 1; the next fresh
   * handshake may take another.
   */
  takeCookie(cookie: Uint8Array): boolean {
    if (this.#cookie !== undefined) return false;
    this.#cookie = Uint8Array.from(cookie);
    return true;
  }

  /** The exact message 1 bytes to (re)send; mac2 is added once a cookie is held. */
  async frame(): Promise<Uint8Array> {
    if (this.#cookie === undefined) return this.#frame;
    const out = Uint8Array.from(this.#frame);
    out.set(await computeMac2(out, this.#cookie), out.length - MAC_SIZE);
    return out;
  }

  /**
   * Processes message 2. The responder's identity is checked against the
   * expectation BEFORE message 3 is written, so an impostor never learns who
   * we are. Returns the session and the exact message 3 bytes.
   */
  async complete(
    resp: HandshakeRespFrame,
    from: Endpoint,
    now: number,
  ): Promise<{ session: Session; final: Uint8Array }> {
    this.spent = true;
    const payload = decodeHandshakePayload(await this.#hs.readMessage(resp.noise));
    const peer = await verifyPeerPayload(payload, this.#hs.remoteStatic!);
    checkExpected(peer, this.expected);
    const noise = await this.#hs.writeMessage(this.#payload);
    const final: HandshakeFinalFrame = {
      type: "final",
      senderIndex: this.localIndex,
      receiverIndex: resp.senderIndex,
      noise,
    };
    const keys = await this.#hs.split();
    const session = Session.create({
      localIndex: this.localIndex,
      remoteIndex: resp.senderIndex,
      initiator: true,
      peer,
      endpoint: from,
      sendKey: keys.initiatorToResponder,
      receiveKey: keys.responderToInitiator,
      handshakeHash: this.#hs.handshakeHash,
      now,
    });
    return { session, final: encodeFrame(final) };
  }
}

function checkExpected(peer: PeerIdentity, expected: Expected): void {
  if (
    expected.publicKey !== undefined && !constantTimeEqual(expected.publicKey, peer.publicKey)
  ) {
    throw new HandshakeFailure(
      "unexpected_key",
      `Peer at the endpoint has key ${peer.fingerprint}, not the expected one`,
    );
  }
  if (expected.address !== undefined && expected.address !== peer.address) {
    throw new HandshakeFailure(
      "unexpected_address",
      `Peer at the endpoint has address ${peer.address}, not ${expected.address}`,
    );
  }
  if (expected.hostname !== undefined && expected.hostname !== peer.hostname) {
    throw new HandshakeFailure(
      "unexpected_hostname",
      `Peer at the endpoint calls itself "${peer.hostname}", not "${expected.hostname}"`,
    );
  }
}

/** The responder's half: message 1 in, message 2 out, message 3 in. */
export class ResponderHandshake {
  /** Our index for the session it will create. */
  readonly localIndex: number;
  /** The initiator's index. */
  readonly remoteIndex: number;
  /** Where message 1 came from. */
  readonly endpoint: Endpoint;
  /** The exact message 2 frame, resent when message 1 is repeated. */
  readonly response: Uint8Array;
  /** The Noise part of message 1, to tell a repeat from a forgery. */
  readonly initNoise: Uint8Array;
  /** Monotonic creation time (ms). */
  readonly createdAt: number;
  /** Set once message 3 made a session: the state is spent. */
  spent = false;
  /** Set while a message 3 is being processed (the session table also sets it while one waits for the work budget). */
  busy = false;
  /** Message 3s that failed so far. */
  failures = 0;

  /** The state after message 2; each message 3 is tried on a fork of it. */
  #afterResp: HandshakeState;
  /** The Noise bytes of message 3s that failed, so a repeat costs no crypto. */
  #failed = new Set<string>();

  private constructor(
    init: HandshakeInitFrame,
    localIndex: number,
    endpoint: Endpoint,
    hs: HandshakeState,
    response: Uint8Array,
    now: number,
  ) {
    this.localIndex = localIndex;
    this.remoteIndex = init.senderIndex;
    this.endpoint = endpoint;
    this.initNoise = Uint8Array.from(init.noise);
    this.response = response;
    this.createdAt = now;
    this.#afterResp = hs;
  }

  /** Reads message 1 and writes message 2. Throws NoiseError on a bad message 1. */
  static async start(options: {
    local: LocalHandshakeIdentity;
    localIndex: number;
    init: HandshakeInitFrame;
    endpoint: Endpoint;
    now: number;
  }): Promise<ResponderHandshake> {
    const hs = await HandshakeState.create({
      pattern: "XX",
      initiator: false,
      prologue: PROLOGUE_BYTES,
      s: options.local.staticKey,
    });
    await hs.readMessage(Uint8Array.from(options.init.noise));
    const noise = await hs.writeMessage(options.local.payload);
    const resp: HandshakeRespFrame = {
      type: "resp",
      senderIndex: options.localIndex,
      receiverIndex: options.init.senderIndex,
      noise,
    };
    return new ResponderHandshake(
      options.init,
      options.localIndex,
      options.endpoint,
      hs,
      encodeFrame(resp),
      options.now,
    );
  }

  /** Whether these exact message 3 bytes failed before (checked before any crypto). */
  failedBefore(final: HandshakeFinalFrame): boolean {
    return this.#failed.has(final.noise.toHex());
  }

  /**
   * Reads message 3, checks the initiator's identity, and creates the
   * session. It works on a fork of the state after message 2, so a message 3
   * that fails leaves the handshake as it was (the genuine one can still
   * complete it) without redoing any Diffie-Hellman.
   */
  async complete(
    final: HandshakeFinalFrame,
    from: Endpoint,
    now: number,
    beforeVerify?: () => Promise<boolean>,
  ): Promise<Session> {
    this.busy = true;
    const hs = this.#afterResp.fork();
    try {
      const payload = decodeHandshakePayload(await hs.readMessage(final.noise));
      // Checking an identity not seen before (its key, two signatures) is
      // the dearest step: the caller may pay for it first, or shed it.
      const check = await PayloadCheck.of(payload, hs.remoteStatic!);
      if (beforeVerify !== undefined && !check.verifiedBefore && !(await beforeVerify())) {
        throw new WorkShed();
      }
      const peer = await check.verify();
      const keys = await hs.split();
      const session = Session.create({
        localIndex: this.localIndex,
        remoteIndex: this.remoteIndex,
        initiator: false,
        peer,
        endpoint: from,
        sendKey: keys.responderToInitiator,
        receiveKey: keys.initiatorToResponder,
        handshakeHash: hs.handshakeHash,
        now,
      });
      this.spent = true;
      return session;
    } catch (e) {
      // Shed for want of budget is not the message's fault: it may come again.
      if (!(e instanceof WorkShed)) {
        this.failures++;
        if (this.#failed.size < MAX_FINAL_FAILURES) this.#failed.add(final.noise.toHex());
      }
      throw e;
    } finally {
      this.busy = false;
    }
  }
}
