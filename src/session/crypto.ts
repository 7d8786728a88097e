/**
 * Thin wrappers over WebCrypto for the primitives the tunnel uses: X25519,
 * AES-256-GCM, SHA-256, HMAC-SHA256 and HKDF. Keys cross this boundary as raw
 * bytes so that callers never depend on WebCrypto key formats.
 *
 * @module
 */

import { concat, constantTimeEqual, Writer } from "../bytes.ts";

/** An X25519 key pair as raw bytes: a 32-byte scalar and a 32-byte public key. */
export interface X25519KeyPair {
  /** The 32-byte private scalar, as RFC 7748 encodes it. */
  privateKey: Uint8Array;
  /** The 32-byte public u-coordinate. */
  publicKey: Uint8Array;
}

/** A key agreement the protocol must refuse, such as a low-order public key. */
export class CryptoError extends Error {
  /** Creates a crypto error with a sentence-case message. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CryptoError";
  }
}

/** Length of X25519 keys and shared secrets. */
const X25519_LENGTH = 32;
/** Length of the AES-256-GCM key. */
export const AEAD_KEY_LENGTH = 32;
/** Length of the AES-GCM nonce; other lengths go through GHASH, which we never want. */
const AEAD_NONCE_LENGTH = 12;
/** Length of the AES-GCM tag. */
const AEAD_TAG_LENGTH = 16;
/** SHA-256 output length, which bounds HKDF's output at 255 blocks. */
const HASH_LENGTH = 32;

/** PKCS#8 wrapping of a raw X25519 scalar (RFC 8410): the only private import format WebCrypto offers. */
const PKCS8_X25519_PREFIX = Uint8Array.fromHex("302e020100300506032b656e04220420");
/** The curve's base point u = 9: DH with it turns a private scalar into its public key. */
const X25519_BASE_POINT = Uint8Array.fromHex(
  "0900000000000000000000000000000000000000000000000000000000000000",
);

/**
 * WebCrypto's typings want ArrayBuffer-backed views; ours may come from
 * anywhere, so copy only when the backing store is not a plain ArrayBuffer.
 */
function buffer(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer
    ? bytes as Uint8Array<ArrayBuffer>
    : new Uint8Array(bytes);
}

function requireLength(bytes: Uint8Array, length: number, what: string): void {
  if (bytes.length !== length) {
    throw new TypeError(`Invalid ${what}: expected ${length} bytes, got ${bytes.length}`);
  }
}

/**
 * Imported private keys, keyed by the caller's array: the static key is used
 * for every handshake, and importing it costs more than the DH. The copy of
 * the bytes guards against a caller overwriting (e.g. zeroing) the array.
 */
const privateKeyCache = new WeakMap<Uint8Array, { bytes: Uint8Array; key: CryptoKey }>();

async function importPrivateKey(privateKey: Uint8Array): Promise<CryptoKey> {
  requireLength(privateKey, X25519_LENGTH, "X25519 private key");
  const cached = privateKeyCache.get(privateKey);
  if (cached && constantTimeEqual(cached.bytes, privateKey)) return cached.key;
  const pkcs8 = concat(PKCS8_X25519_PREFIX, privateKey) as Uint8Array<ArrayBuffer>;
  const key = await crypto.subtle.importKey("pkcs8", pkcs8, { name: "X25519" }, false, [
    "deriveBits",
  ]);
  pkcs8.fill(0);
  privateKeyCache.set(privateKey, { bytes: privateKey.slice(), key });
  return key;
}

/** Generates a fresh X25519 key pair. */
export async function generateX25519(): Promise<X25519KeyPair> {
  const pair = await crypto.subtle.generateKey({ name: "X25519" }, true, [
    "deriveBits",
  ]) as CryptoKeyPair;
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const privateKey = pkcs8.slice(pkcs8.length - X25519_LENGTH);
  pkcs8.fill(0);
  const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  privateKeyCache.set(privateKey, { bytes: privateKey.slice(), key: pair.privateKey });
  return { privateKey, publicKey };
}

/** Computes the public key of a 32-byte X25519 private scalar. */
export function x25519PublicKey(privateKey: Uint8Array): Promise<Uint8Array> {
  return x25519(privateKey, X25519_BASE_POINT);
}

/**
 * X25519 Diffie-Hellman: the 32-byte shared secret of `privateKey` and
 * `publicKey`.
 *
 * Decision (covers Wycheproof's "acceptable" low-order and zero-shared-secret
 * cases): an all-zero result means the peer sent a low-order point and
 * contributed nothing to the secret, so we throw {@linkcode CryptoError}
 * rather than let a handshake proceed on a key an attacker can predict
 * (RFC 7748 section 6.1 permits this check). Twist points and non-canonical
 * encodings are otherwise computed as RFC 7748 defines.
 *
 * @throws {CryptoError} when the shared secret would be all zeros.
 */
export async function x25519(privateKey: Uint8Array, publicKey: Uint8Array): Promise<Uint8Array> {
  requireLength(publicKey, X25519_LENGTH, "X25519 public key");
  const priv = await importPrivateKey(privateKey);
  const pub = await crypto.subtle.importKey(
    "raw",
    buffer(publicKey),
    { name: "X25519" },
    false,
    [],
  );
  let shared: Uint8Array;
  try {
    shared = new Uint8Array(
      await crypto.subtle.deriveBits({ name: "X25519", public: pub }, priv, X25519_LENGTH * 8),
    );
  } catch (cause) {
    // Deno refuses the all-zero output itself; other runtimes return it.
    if (!(cause instanceof DOMException && cause.name === "OperationError")) throw cause;
    throw new CryptoError(
      `Cannot agree on a key with public key ${publicKey.toHex()}: low-order point`,
      { cause },
    );
  }
  if (constantTimeEqual(shared, new Uint8Array(X25519_LENGTH))) {
    throw new CryptoError(
      `Cannot agree on a key with public key ${publicKey.toHex()}: low-order point`,
    );
  }
  return shared;
}

/** An AES-256-GCM key with 12-byte nonces and 16-byte tags. */
export class AeadKey {
  #key: CryptoKey;

  private constructor(key: CryptoKey) {
    this.#key = key;
  }

  /** Imports a 32-byte AES-256-GCM key. */
  static async create(key: Uint8Array): Promise<AeadKey> {
    requireLength(key, AEAD_KEY_LENGTH, "AES-256-GCM key");
    const imported = await crypto.subtle.importKey("raw", buffer(key), { name: "AES-GCM" }, false, [
      "encrypt",
      "decrypt",
    ]);
    return new AeadKey(imported);
  }

  /** Encrypts `plaintext`, returning ciphertext followed by the 16-byte tag. */
  async seal(nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Promise<Uint8Array> {
    requireLength(nonce, AEAD_NONCE_LENGTH, "AES-GCM nonce");
    return new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv: buffer(nonce), additionalData: buffer(ad), tagLength: 128 },
        this.#key,
        buffer(plaintext),
      ),
    );
  }

  /**
   * Decrypts ciphertext-and-tag; `null` when it does not authenticate, since
   * that is an expected outcome for bytes from the network, not an error.
   * Only a nonce of the wrong length (a local bug) throws.
   */
  async open(
    nonce: Uint8Array,
    ciphertext: Uint8Array,
    ad: Uint8Array,
  ): Promise<Uint8Array | null> {
    requireLength(nonce, AEAD_NONCE_LENGTH, "AES-GCM nonce");
    if (ciphertext.length < AEAD_TAG_LENGTH) return null;
    try {
      return new Uint8Array(
        await crypto.subtle.decrypt(
          { name: "AES-GCM", iv: buffer(nonce), additionalData: buffer(ad), tagLength: 128 },
          this.#key,
          buffer(ciphertext),
        ),
      );
    } catch {
      return null;
    }
  }
}

/** The Noise AESGCM nonce for `counter`: 4 zero bytes then the counter as a big-endian u64. */
export function nonceFromCounter(counter: number): Uint8Array {
  if (!Number.isSafeInteger(counter) || counter < 0) {
    throw new RangeError(`Invalid nonce counter ${counter}: expected a safe non-negative integer`);
  }
  return new Writer(AEAD_NONCE_LENGTH).u32(0).u64(BigInt(counter)).finish();
}

/** SHA-256 of `data`. */
export async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", buffer(data)));
}

/** Imports an HMAC-SHA256 key once, for {@linkcode hmacSha256With} on a hot path. */
export async function importHmacKey(key: Uint8Array): Promise<CryptoKey> {
  // WebCrypto refuses empty HMAC keys, but HMAC pads every short key with
  // zeros, so an empty key and a block of zeros are the same key (RFC 2104).
  const raw = key.length === 0 ? new Uint8Array(HASH_LENGTH) : buffer(key);
  return await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
}

/** HMAC-SHA256 of `data` under a key from {@linkcode importHmacKey}. */
export async function hmacSha256With(key: CryptoKey, data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, buffer(data)));
}

/** HMAC-SHA256 of `data` under `key` (any length, including empty). */
export async function hmacSha256(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  return hmacSha256With(await importHmacKey(key), data);
}

/**
 * HKDF-SHA256 (RFC 5869): extract with `salt`, expand with `info` to `length`
 * bytes. Noise's HKDF is this with `salt` = chaining key and empty `info`.
 *
 * @throws {RangeError} when `length` exceeds 255 * 32 bytes.
 */
export async function hkdf(
  salt: Uint8Array,
  ikm: Uint8Array,
  info: Uint8Array,
  length: number,
): Promise<Uint8Array> {
  if (!Number.isInteger(length) || length < 0 || length > 255 * HASH_LENGTH) {
    throw new RangeError(
      `Invalid HKDF output length ${length}: expected 0 to ${255 * HASH_LENGTH} bytes`,
    );
  }
  // WebCrypto's own HKDF: two calls where extract-and-expand by hand took
  // five (each WebCrypto call costs a thread hop; the handshake makes four).
  const key = await crypto.subtle.importKey("raw", buffer(ikm), "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: buffer(salt), info: buffer(info) },
    key,
    length * 8,
  );
  return new Uint8Array(bits);
}

/** `n` cryptographically random bytes. */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  // getRandomValues fills at most 65536 bytes per call.
  for (let offset = 0; offset < n; offset += 65536) {
    crypto.getRandomValues(out.subarray(offset, Math.min(n, offset + 65536)));
  }
  return out;
}
