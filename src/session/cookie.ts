/**
 * Handshake message 1's two MACs (after WireGuard's mac1/mac2):
 *
 * - mac1 is keyed by the responder's identity key, so only an initiator that
 *   already knows who it calls can compute it; a daemon in stealth mode drops
 *   message 1 without it, and scanners learn nothing.
 * - mac2 is keyed by a cookie the responder hands out only under load; the
 *   cookie binds the initiator's source address, so a flood of spoofed
 *   sources cannot make the responder do Diffie-Hellman work.
 *
 * @module
 */
import { COOKIE_LABEL, COOKIE_SECRET_LIFETIME_MS, MAC1_LABEL } from "../constants.ts";
import { type Endpoint, formatEndpoint } from "../discovery/endpoint.ts";
import { concat, constantTimeEqual, utf8 } from "../bytes.ts";
import { MAC_SIZE, macInput1, macInput2 } from "../wire/frames.ts";
import { hmacSha256, hmacSha256With, importHmacKey, randomBytes, sha256 } from "./crypto.ts";

const ZERO_MAC = new Uint8Array(MAC_SIZE);
/** Sources whose current cookie is kept (oldest forgotten first). */
const COOKIE_CACHE_SIZE = 1024;

/** The mac1 key of a responder: SHA-256(MAC1_LABEL || its Ed25519 public key). */
export function mac1Key(responderPublicKey: Uint8Array): Promise<Uint8Array> {
  return sha256(concat(utf8(MAC1_LABEL), responderPublicKey));
}

/** mac1 over the frame's bytes before it; zeros when the responder's key is unknown. */
export async function computeMac1(
  frame: Uint8Array,
  key: Uint8Array | undefined,
): Promise<Uint8Array> {
  if (key === undefined) return ZERO_MAC;
  return (await hmacSha256(key, macInput1(frame))).subarray(0, MAC_SIZE);
}

/** mac2 over the frame's bytes before it, keyed by a cookie. */
export async function computeMac2(frame: Uint8Array, cookie: Uint8Array): Promise<Uint8Array> {
  return (await hmacSha256(cookie, macInput2(frame))).subarray(0, MAC_SIZE);
}

/** Checks a received mac1 in constant time. */
export async function verifyMac1(
  frame: Uint8Array,
  mac1: Uint8Array,
  key: Uint8Array,
): Promise<boolean> {
  return constantTimeEqual(await computeMac1(frame, key), mac1);
}

/**
 * A responder's mac1 check with its key imported once: one HMAC per
 * message 1, as {@linkcode verifyMac1} gives, without a key import each time.
 */
export class Mac1Verifier {
  #key: CryptoKey;

  private constructor(key: CryptoKey) {
    this.#key = key;
  }

  /** The verifier of message 1s sent to the node with `responderPublicKey`. */
  static async create(responderPublicKey: Uint8Array): Promise<Mac1Verifier> {
    return new Mac1Verifier(await importHmacKey(await mac1Key(responderPublicKey)));
  }

  /** Whether `mac1` is right for `frame`, compared in constant time. */
  async verify(frame: Uint8Array, mac1: Uint8Array): Promise<boolean> {
    const expected = (await hmacSha256With(this.#key, macInput1(frame))).subarray(0, MAC_SIZE);
    return constantTimeEqual(expected, mac1);
  }
}

/**
 * A fresh cookie secret as an HMAC key, imported once for all the cookies
 * it derives (an import is a WebCrypto call, as dear as the HMAC itself);
 * its bytes are kept nowhere else.
 */
function newSecret(): Promise<CryptoKey> {
  const key = importHmacKey(randomBytes(32));
  // Whoever derives a cookie awaits it and sees a failure; none is unhandled.
  key.catch(() => {});
  return key;
}

/** The responder's rotating cookie secret and the cookies it derives. */
export class CookieJar {
  #secret = newSecret();
  #previous: Promise<CryptoKey> | undefined;
  #rotatedAt: number;
  #now: () => number;
  // Cookies under the current secret by source, so a flood from one
  // endpoint (a spoofed trusted peer's, whose cookie replies are never
  // shed) costs a map lookup instead of an HMAC per reply. Promises: the
  // replies to a burst from one source share the first one's HMAC.
  #cache = new Map<string, Promise<Uint8Array>>();

  /** Starts with a fresh secret; `now` is a monotonic clock in ms. */
  constructor(now: () => number) {
    this.#now = now;
    this.#rotatedAt = now();
  }

  #rotate(): void {
    if (this.#now() - this.#rotatedAt < COOKIE_SECRET_LIFETIME_MS) return;
    this.#previous = this.#secret;
    this.#secret = newSecret();
    this.#rotatedAt = this.#now();
    this.#cache.clear();
  }

  /** The cookie for a source: HMAC(secret, COOKIE_LABEL || endpoint), 16 bytes. */
  cookieFor(source: Endpoint): Promise<Uint8Array> {
    this.#rotate();
    const key = formatEndpoint(source);
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const cookie = derive(this.#secret, source);
    cookie.catch(() => this.#cache.delete(key));
    if (this.#cache.size >= COOKIE_CACHE_SIZE) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
    this.#cache.set(key, cookie);
    return cookie;
  }

  /** Whether `mac2` of `frame` was made with a current (or just-rotated) cookie for `source`. */
  async verifyMac2(frame: Uint8Array, mac2: Uint8Array, source: Endpoint): Promise<boolean> {
    this.#rotate();
    for (const secret of [this.#secret, this.#previous]) {
      if (secret === undefined) continue;
      const cookie = secret === this.#secret
        ? await this.cookieFor(source)
        : await derive(secret, source);
      const expected = await computeMac2(frame, cookie);
      if (constantTimeEqual(expected, mac2)) return true;
    }
    return false;
  }
}

async function derive(secret: Promise<CryptoKey>, source: Endpoint): Promise<Uint8Array> {
  const mac = await hmacSha256With(
    await secret,
    utf8(`${COOKIE_LABEL}|${formatEndpoint(source)}`),
  );
  return mac.subarray(0, MAC_SIZE);
}
