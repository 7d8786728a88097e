/**
 * The Noise Protocol Framework handshake (rev. 34) for
 * `Noise_<PATTERN>_25519_AESGCM_SHA256`, generic over the one-way, the
 * interactive fundamental and the deferred patterns. No PSKs and no
 * fallback: Pilot's tunnel uses XX, sealed items for an offline peer will use
 * a one-way pattern (issue 10, docs/design/offline.md), and the other
 * patterns are here so that every published vector can check the same code.
 *
 * @example
 * ```ts
 * import { generateX25519 } from "./crypto.ts";
 * import { HandshakeState } from "./noise.ts";
 *
 * const prologue = new TextEncoder().encode("pilot/1");
 * const alice = await HandshakeState.create({
 *   pattern: "XX", initiator: true, prologue, s: await generateX25519(),
 * });
 * const bob = await HandshakeState.create({
 *   pattern: "XX", initiator: false, prologue, s: await generateX25519(),
 * });
 * await bob.readMessage(await alice.writeMessage());
 * await alice.readMessage(await bob.writeMessage());
 * await bob.readMessage(await alice.writeMessage());
 * const keys = await alice.split();
 * ```
 *
 * @module
 */

import { generateX25519, x25519, type X25519KeyPair } from "./crypto.ts";
import { NoiseError, SymmetricState } from "./_symmetric_state.ts";
import { concat, Reader } from "../bytes.ts";

export { CipherState, hashProtocolName, NoiseError } from "./_symmetric_state.ts";

/**
 * Handshake patterns in the specification's own notation (sections 7.4 and
 * 7.5), so that a reviewer can compare them line by line. Lines before "..."
 * are pre-messages.
 */
const PATTERN_TEXT = {
  N: ["<- s", "...", "-> e, es"],
  K: ["-> s", "<- s", "...", "-> e, es, ss"],
  X: ["<- s", "...", "-> e, es, s, ss"],
  NN: ["-> e", "<- e, ee"],
  NK: ["<- s", "...", "-> e, es", "<- e, ee"],
  NX: ["-> e", "<- e, ee, s, es"],
  XN: ["-> e", "<- e, ee", "-> s, se"],
  XK: ["<- s", "...", "-> e, es", "<- e, ee", "-> s, se"],
  XX: ["-> e", "<- e, ee, s, es", "-> s, se"],
  KN: ["-> s", "...", "-> e", "<- e, ee, se"],
  KK: ["-> s", "<- s", "...", "-> e, es, ss", "<- e, ee, se"],
  KX: ["-> s", "...", "-> e", "<- e, ee, se, s, es"],
  IN: ["-> e, s", "<- e, ee, se"],
  IK: ["<- s", "...", "-> e, es, s, ss", "<- e, ee, se"],
  IX: ["-> e, s", "<- e, ee, se, s, es"],
  NK1: ["<- s", "...", "-> e", "<- e, ee, es"],
  NX1: ["-> e", "<- e, ee, s", "-> es"],
  X1N: ["-> e", "<- e, ee", "-> s", "<- se"],
  X1K: ["<- s", "...", "-> e, es", "<- e, ee", "-> s", "<- se"],
  XK1: ["<- s", "...", "-> e", "<- e, ee, es", "-> s, se"],
  X1K1: ["<- s", "...", "-> e", "<- e, ee, es", "-> s", "<- se"],
  X1X: ["-> e", "<- e, ee, s, es", "-> s", "<- se"],
  XX1: ["-> e", "<- e, ee, s", "-> es, s, se"],
  X1X1: ["-> e", "<- e, ee, s", "-> es, s", "<- se"],
  K1N: ["-> s", "...", "-> e", "<- e, ee", "-> se"],
  K1K: ["-> s", "<- s", "...", "-> e, es", "<- e, ee", "-> se"],
  KK1: ["-> s", "<- s", "...", "-> e", "<- e, ee, se, es"],
  K1K1: ["-> s", "<- s", "...", "-> e", "<- e, ee, es", "-> se"],
  K1X: ["-> s", "...", "-> e", "<- e, ee, s, es", "-> se"],
  KX1: ["-> s", "...", "-> e", "<- e, ee, se, s", "-> es"],
  K1X1: ["-> s", "...", "-> e", "<- e, ee, s", "-> se, es"],
  I1N: ["-> e, s", "<- e, ee", "-> se"],
  I1K: ["<- s", "...", "-> e, es, s", "<- e, ee", "-> se"],
  IK1: ["<- s", "...", "-> e, s", "<- e, ee, se, es"],
  I1K1: ["<- s", "...", "-> e, s", "<- e, ee, es", "-> se"],
  I1X: ["-> e, s", "<- e, ee, s, es", "-> se"],
  IX1: ["-> e, s", "<- e, ee, se, s", "-> es"],
  I1X1: ["-> e, s", "<- e, ee, s", "-> se, es"],
} as const;

/**
 * The one-way patterns (section 7.4): a single message from the initiator,
 * after which only the initiator sends.
 */
export const ONE_WAY_PATTERNS = ["N", "K", "X"] as const;

/** A handshake pattern this module implements, e.g. `"XX"`. */
export type PatternName = keyof typeof PATTERN_TEXT;

/** Every pattern this module implements. */
export const PATTERN_NAMES: readonly PatternName[] = Object.keys(PATTERN_TEXT) as PatternName[];

type Token = "e" | "s" | "ee" | "es" | "se" | "ss";
const TOKENS: readonly string[] = ["e", "s", "ee", "es", "se", "ss"];

interface Pattern {
  /** Whether the responder knows the initiator's static key beforehand. */
  initiatorPreStatic: boolean;
  /** Whether the initiator knows the responder's static key beforehand. */
  responderPreStatic: boolean;
  /** Token lists; even indices are sent by the initiator. */
  messages: Token[][];
  /** Whether each side ever transmits its static key in a message. */
  initiatorSendsStatic: boolean;
  responderSendsStatic: boolean;
}

/** Parses one pattern; a malformed table is a bug, so it throws at import. */
function parsePattern(name: string, lines: readonly string[]): Pattern {
  const split = lines.indexOf("...");
  const pre = split === -1 ? [] : lines.slice(0, split);
  const pattern: Pattern = {
    initiatorPreStatic: pre.includes("-> s"),
    responderPreStatic: pre.includes("<- s"),
    messages: [],
    initiatorSendsStatic: false,
    responderSendsStatic: false,
  };
  if (pre.some((line) => line !== "-> s" && line !== "<- s")) {
    throw new Error(`Pattern ${name}: only static pre-messages are supported`);
  }
  for (const [i, line] of lines.slice(split + 1).entries()) {
    const fromInitiator = i % 2 === 0;
    const arrow = fromInitiator ? "-> " : "<- ";
    if (!line.startsWith(arrow)) throw new Error(`Pattern ${name}: message ${i} must be ${arrow}`);
    const tokens = line.slice(3).split(", ");
    if (!tokens.every((t): t is Token => TOKENS.includes(t))) {
      throw new Error(`Pattern ${name}: unknown token in "${line}"`);
    }
    if (tokens.includes("s")) {
      if (fromInitiator) pattern.initiatorSendsStatic = true;
      else pattern.responderSendsStatic = true;
    }
    pattern.messages.push(tokens);
  }
  return pattern;
}

const PATTERNS = new Map<string, Pattern>(
  Object.entries(PATTERN_TEXT).map(([name, lines]) => [name, parsePattern(name, lines)]),
);

/** Noise's limit on any message, handshake or transport. */
const MAX_MESSAGE = 65535;
const DHLEN = 32;

/** Options of {@linkcode HandshakeState.create}. */
export interface HandshakeOptions {
  /** The handshake pattern, e.g. `"XX"`. */
  pattern: PatternName;
  /** Whether this side sends the first message. */
  initiator: boolean;
  /** Data both sides must agree on; any difference makes the handshake fail. */
  prologue: Uint8Array;
  /** The local static key pair, required when the pattern uses it. */
  s?: X25519KeyPair;
  /** A fixed ephemeral key pair; only test vectors set it, otherwise it is generated. */
  e?: X25519KeyPair;
  /** The remote static public key, exactly when the pattern has it as a pre-message. */
  rs?: Uint8Array;
}

/** Transport keys from {@linkcode HandshakeState.split}, one per direction. */
export interface TransportKeys {
  /** Key k1 of Noise's Split: encrypts messages from the initiator. */
  initiatorToResponder: Uint8Array;
  /** Key k2 of Noise's Split: encrypts messages from the responder. */
  responderToInitiator: Uint8Array;
}

function checkKeyPair(pair: X25519KeyPair, what: string): void {
  if (pair.privateKey.length !== DHLEN || pair.publicKey.length !== DHLEN) {
    throw new TypeError(`Invalid ${what} key pair: expected 32-byte keys`);
  }
}

/**
 * A Noise HandshakeState. Any failure (a message that does not authenticate,
 * has the wrong length, carries a low-order key, or a call out of turn)
 * throws {@linkcode NoiseError} and leaves the state unusable: a handshake is
 * never retried from a half-updated transcript.
 */
export class HandshakeState {
  #protocolName: string;
  #pattern: Pattern;
  #initiator: boolean;
  #symmetric: SymmetricState;
  #s: X25519KeyPair | undefined;
  #e: X25519KeyPair | undefined;
  #rs: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  #index = 0;
  #busy = false;
  #failed = false;

  private constructor(
    protocolName: string,
    pattern: Pattern,
    keys: {
      initiator: boolean;
      s: X25519KeyPair | undefined;
      e: X25519KeyPair | undefined;
      rs: Uint8Array | undefined;
    },
    symmetric: SymmetricState,
  ) {
    this.#protocolName = protocolName;
    this.#pattern = pattern;
    this.#initiator = keys.initiator;
    this.#symmetric = symmetric;
    this.#s = keys.s;
    this.#e = keys.e;
    this.#rs = keys.rs?.slice();
  }

  /**
   * Starts a handshake (Noise's Initialize).
   *
   * @throws {TypeError} when the pattern is unknown or a key the pattern
   * needs is missing (or one it transmits itself is given).
   */
  static async create(options: HandshakeOptions): Promise<HandshakeState> {
    const pattern = PATTERNS.get(options.pattern);
    if (pattern === undefined) {
      throw new TypeError(
        `Unknown Noise pattern "${options.pattern}": expected one of ${PATTERN_NAMES.join(", ")}`,
      );
    }
    const { initiator, s, e, rs } = options;
    const localStatic = initiator
      ? pattern.initiatorPreStatic || pattern.initiatorSendsStatic
      : pattern.responderPreStatic || pattern.responderSendsStatic;
    const remotePreStatic = initiator ? pattern.responderPreStatic : pattern.initiatorPreStatic;
    if (localStatic && s === undefined) {
      throw new TypeError(`Pattern ${options.pattern} needs the local static key pair (s)`);
    }
    if (s !== undefined) checkKeyPair(s, "static");
    if (e !== undefined) checkKeyPair(e, "ephemeral");
    if (remotePreStatic !== (rs !== undefined)) {
      throw new TypeError(
        remotePreStatic
          ? `Pattern ${options.pattern} needs the remote static key (rs) in advance`
          : `Pattern ${options.pattern} transmits the remote static key: do not pass rs`,
      );
    }
    if (rs !== undefined && rs.length !== DHLEN) {
      throw new TypeError(`Invalid remote static key: expected 32 bytes, got ${rs.length}`);
    }

    const protocolName = `Noise_${options.pattern}_25519_AESGCM_SHA256`;
    const symmetric = await SymmetricState.create(protocolName, options.prologue);
    // Pre-messages are hashed initiator's first, whichever side we are.
    const initiatorStatic = initiator ? s?.publicKey : rs;
    const responderStatic = initiator ? rs : s?.publicKey;
    if (pattern.initiatorPreStatic) await symmetric.mixHash(initiatorStatic!);
    if (pattern.responderPreStatic) await symmetric.mixHash(responderStatic!);
    return new HandshakeState(protocolName, pattern, { initiator, s, e, rs }, symmetric);
  }

  /**
   * An independent copy of this state, made without any crypto: a responder
   * forks the state it reached after message 2 for each message 3 it tries,
   * so a forged one spends the copy and never costs the DH work again.
   *
   * @throws {NoiseError} while a message is being processed or after a failure.
   */
  fork(): HandshakeState {
    if (this.#busy || this.#failed) {
      throw new NoiseError("Cannot fork a handshake state that is busy or failed");
    }
    const keys = { initiator: this.#initiator, s: this.#s, e: this.#e, rs: this.#rs };
    const copy = new HandshakeState(
      this.#protocolName,
      this.#pattern,
      keys,
      this.#symmetric.fork(),
    );
    copy.#re = this.#re?.slice();
    copy.#index = this.#index;
    return copy;
  }

  /** The full protocol name, e.g. `Noise_XX_25519_AESGCM_SHA256`. */
  get protocolName(): string {
    return this.#protocolName;
  }

  /** Number of handshake messages written or read so far. */
  get messageIndex(): number {
    return this.#index;
  }

  /** Whether every handshake message has been written or read. */
  get isComplete(): boolean {
    return !this.#failed && this.#index === this.#pattern.messages.length;
  }

  /** The remote static public key, once known. */
  get remoteStatic(): Uint8Array | undefined {
    return this.#rs?.slice();
  }

  /**
   * The final handshake hash h, which both sides share; use it for channel
   * binding.
   *
   * @throws {NoiseError} before the handshake is complete.
   */
  get handshakeHash(): Uint8Array {
    this.#requireComplete();
    return this.#symmetric.handshakeHash;
  }

  /** Writes the next handshake message, carrying `payload`. */
  writeMessage(payload: Uint8Array = new Uint8Array(0)): Promise<Uint8Array> {
    return this.#step(true, async (tokens) => {
      const parts: Uint8Array[] = [];
      for (const token of tokens) {
        if (token === "e") {
          const e = this.#e ?? await generateX25519();
          this.#e = e;
          parts.push(e.publicKey);
          await this.#symmetric.mixHash(e.publicKey);
        } else if (token === "s") {
          parts.push(await this.#symmetric.encryptAndHash(this.#s!.publicKey));
        } else {
          await this.#mixDh(token);
        }
      }
      parts.push(await this.#symmetric.encryptAndHash(payload));
      const message = concat(...parts);
      if (message.length > MAX_MESSAGE) {
        throw new NoiseError(`Cannot write a ${message.length}-byte message: limit is 65535`);
      }
      return message;
    });
  }

  /**
   * Reads the next handshake message and returns its payload.
   *
   * @throws {NoiseError} on any failure, after which the state is unusable.
   */
  readMessage(message: Uint8Array): Promise<Uint8Array> {
    return this.#step(false, async (tokens) => {
      if (message.length > MAX_MESSAGE) {
        throw new NoiseError(`Cannot read a ${message.length}-byte message: limit is 65535`);
      }
      // Our own copy, so that a caller reusing its buffer cannot change what we hash.
      const reader = new Reader(message.slice());
      for (const token of tokens) {
        if (token === "e") {
          this.#re = reader.bytes(DHLEN, "ephemeral key");
          await this.#symmetric.mixHash(this.#re);
        } else if (token === "s") {
          const length = DHLEN + (this.#symmetric.hasKey ? 16 : 0);
          this.#rs = await this.#symmetric.decryptAndHash(reader.bytes(length, "static key"));
        } else {
          await this.#mixDh(token);
        }
      }
      return await this.#symmetric.decryptAndHash(reader.rest());
    });
  }

  /**
   * Derives the transport keys (Noise's Split).
   *
   * @throws {NoiseError} before the handshake is complete.
   */
  async split(): Promise<TransportKeys> {
    this.#requireComplete();
    const [initiatorToResponder, responderToInitiator] = await this.#symmetric.split();
    return { initiatorToResponder, responderToInitiator };
  }

  #requireComplete(): void {
    if (!this.isComplete) {
      throw new NoiseError(
        this.#failed ? "The handshake failed" : "The handshake is not complete",
      );
    }
  }

  /** Runs one message in turn; any failure poisons the state. */
  async #step<T>(writing: boolean, run: (tokens: readonly Token[]) => Promise<T>): Promise<T> {
    const tokens = this.#pattern.messages[this.#index];
    const ourTurn = (this.#index % 2 === 0) === this.#initiator;
    let problem: string | undefined;
    if (this.#failed) problem = "the handshake already failed";
    else if (this.#busy) problem = "another message is still being processed";
    else if (tokens === undefined) problem = "the handshake is already complete";
    else if (ourTurn !== writing) {
      problem = `message ${this.#index} is ${ourTurn ? "ours to write" : "the peer's to send"}`;
    }
    if (problem !== undefined || tokens === undefined) {
      this.#failed = true;
      throw new NoiseError(`Cannot ${writing ? "write" : "read"} a handshake message: ${problem}`);
    }
    this.#busy = true;
    try {
      const result = await run(tokens);
      this.#index++;
      return result;
    } catch (cause) {
      this.#failed = true;
      if (cause instanceof NoiseError) throw cause;
      throw new NoiseError(
        `Handshake message ${this.#index} failed: ${
          cause instanceof Error ? cause.message : cause
        }`,
        { cause },
      );
    } finally {
      this.#busy = false;
    }
  }

  /** Mixes the DH named by `token`: its first letter is the initiator's key, its second the responder's. */
  async #mixDh(token: "ee" | "es" | "se" | "ss"): Promise<void> {
    const [mine, theirs] = this.#initiator ? [token[0], token[1]] : [token[1], token[0]];
    const local = mine === "e" ? this.#e : this.#s;
    const remote = theirs === "e" ? this.#re : this.#rs;
    if (local === undefined || remote === undefined) {
      throw new NoiseError(`Cannot compute ${token}: a key is missing`);
    }
    await this.#symmetric.mixKey(await x25519(local.privateKey, remote));
  }
}
