/**
 * The Noise CipherState and SymmetricState (Noise Protocol Framework rev. 34,
 * section 5.1 and 5.2) for AESGCM and SHA256: the parts of a handshake that
 * do not depend on the pattern.
 *
 * @module
 */

import { AeadKey, hkdf, nonceFromCounter, sha256 } from "./crypto.ts";
import { concat, utf8 } from "../bytes.ts";

/** Any handshake or transport failure; the handshake state is unusable afterwards. */
export class NoiseError extends Error {
  /** Creates a Noise error with a sentence-case message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NoiseError";
  }
}

/** SHA-256 output length, which is also the length of Noise's h and ck. */
const HASHLEN = 32;
const EMPTY = new Uint8Array(0);

/**
 * Noise reserves nonce 2^64-1; a JavaScript number is exact only up to
 * 2^53-1, so we stop there. Sessions rekey long before (REJECT_AFTER_MESSAGES).
 */
const MAX_NONCE = Number.MAX_SAFE_INTEGER;

/** The initial h of a handshake: the protocol name, zero-padded or hashed to 32 bytes. */
export async function hashProtocolName(protocolName: string): Promise<Uint8Array> {
  const name = utf8(protocolName);
  if (name.length > HASHLEN) return await sha256(name);
  const h = new Uint8Array(HASHLEN);
  h.set(name);
  return h;
}

/** A Noise CipherState: an optional key and an implicit, strictly increasing nonce. */
export class CipherState {
  #key: AeadKey | undefined;
  #n = 0;

  private constructor(key: AeadKey | undefined) {
    this.#key = key;
  }

  /** Creates a cipher state with key `k`, or an empty one that passes data through. */
  static async create(k?: Uint8Array): Promise<CipherState> {
    return new CipherState(k === undefined ? undefined : await AeadKey.create(k));
  }

  /** An independent copy (the imported key is immutable and shared). */
  fork(): CipherState {
    const copy = new CipherState(this.#key);
    copy.#n = this.#n;
    return copy;
  }

  /** Whether a key is set; without one, encryption is the identity (early handshake). */
  get hasKey(): boolean {
    return this.#key !== undefined;
  }

  /** The nonce the next encryption or decryption uses. */
  get nonce(): number {
    return this.#n;
  }

  /** Sets the next nonce (Noise's SetNonce), e.g. to resume a counter. */
  setNonce(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(`Invalid nonce ${n}: expected a safe non-negative integer`);
    }
    this.#n = n;
  }

  #takeNonce(): Uint8Array {
    if (this.#n >= MAX_NONCE) {
      throw new NoiseError(`Cannot use nonce ${this.#n}: the cipher state is exhausted`);
    }
    return nonceFromCounter(this.#n);
  }

  /** Encrypts `plaintext` with associated data `ad` under the next nonce. */
  async encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
    if (this.#key === undefined) return plaintext.slice();
    const nonce = this.#takeNonce();
    // Advance before awaiting so that overlapping calls never share a nonce.
    this.#n++;
    return await this.#key.seal(nonce, plaintext, ad);
  }

  /**
   * Decrypts `ciphertext` under the next nonce. Callers must not overlap
   * decryptions: the nonce advances only after the tag verifies.
   *
   * @throws {NoiseError} when the ciphertext does not authenticate; the nonce
   * then stays where it was.
   */
  async decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array> {
    if (this.#key === undefined) return ciphertext.slice();
    const n = this.#n;
    const plaintext = await this.#key.open(this.#takeNonce(), ciphertext, ad);
    if (plaintext === null) {
      throw new NoiseError(`Cannot decrypt message with nonce ${n}: authentication failed`);
    }
    this.#n = n + 1;
    return plaintext;
  }
}

/**
 * The chaining key and handshake hash after InitializeSymmetric(name) and
 * MixHash(prologue), by name and prologue: every handshake of a kind starts
 * from the same ones, so the prologue's hash is taken once, not per
 * handshake. A few kinds exist (tunnels, sealed items); past the bound a
 * start is computed each time.
 */
const starts = new Map<string, Promise<{ ck: Uint8Array; h: Uint8Array }>>();
const STARTS_MAX = 16;

function startOf(
  protocolName: string,
  prologue: Uint8Array,
): Promise<{ ck: Uint8Array; h: Uint8Array }> {
  const key = `${protocolName}\u0000${prologue.toHex()}`;
  const known = starts.get(key);
  if (known !== undefined) return known;
  const start = hashProtocolName(protocolName).then(async (ck) => ({
    ck,
    h: await sha256(concat(ck, prologue)),
  }));
  if (starts.size < STARTS_MAX) {
    starts.set(key, start);
    start.catch(() => starts.delete(key));
  }
  return start;
}

/** A Noise SymmetricState: the chaining key, the handshake hash and the current cipher. */
export class SymmetricState {
  #ck: Uint8Array;
  #h: Uint8Array;
  #cipher: CipherState;

  private constructor(ck: Uint8Array, h: Uint8Array, cipher: CipherState) {
    this.#ck = ck;
    this.#h = h;
    this.#cipher = cipher;
  }

  /**
   * Starts a handshake transcript for `protocolName` (Noise's
   * InitializeSymmetric) and mixes `prologue` into it (MixHash).
   */
  static async create(protocolName: string, prologue: Uint8Array): Promise<SymmetricState> {
    const { ck, h } = await startOf(protocolName, prologue);
    // Copies: the start is shared by every handshake of its kind.
    return new SymmetricState(ck.slice(), h.slice(), await CipherState.create());
  }

  /** An independent copy of the transcript and cipher, made without any crypto. */
  fork(): SymmetricState {
    return new SymmetricState(this.#ck.slice(), this.#h.slice(), this.#cipher.fork());
  }

  /** Whether handshake payloads are encrypted yet. */
  get hasKey(): boolean {
    return this.#cipher.hasKey;
  }

  /** A copy of the current handshake hash h. */
  get handshakeHash(): Uint8Array {
    return this.#h.slice();
  }

  /** Mixes a DH result into the chaining key and rekeys the cipher. */
  async mixKey(ikm: Uint8Array): Promise<void> {
    const out = await hkdf(this.#ck, ikm, EMPTY, 2 * HASHLEN);
    this.#ck = out.slice(0, HASHLEN);
    this.#cipher = await CipherState.create(out.slice(HASHLEN));
  }

  /** Mixes `data` into the handshake hash. */
  async mixHash(data: Uint8Array): Promise<void> {
    this.#h = await sha256(concat(this.#h, data));
  }

  /** Encrypts `plaintext` bound to the transcript so far, then mixes the ciphertext in. */
  async encryptAndHash(plaintext: Uint8Array): Promise<Uint8Array> {
    const ciphertext = await this.#cipher.encryptWithAd(this.#h, plaintext);
    await this.mixHash(ciphertext);
    return ciphertext;
  }

  /** Decrypts `ciphertext` bound to the transcript so far, then mixes it in. */
  async decryptAndHash(ciphertext: Uint8Array): Promise<Uint8Array> {
    const plaintext = await this.#cipher.decryptWithAd(this.#h, ciphertext);
    await this.mixHash(ciphertext);
    return plaintext;
  }

  /** Derives the two transport keys: initiator-to-responder first. */
  async split(): Promise<[Uint8Array, Uint8Array]> {
    const out = await hkdf(this.#ck, EMPTY, EMPTY, 2 * HASHLEN);
    return [out.slice(0, HASHLEN), out.slice(HASHLEN)];
  }
}
