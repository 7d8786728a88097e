/**
 * Signed trust messages (virtual port 444): request, accept, reject, revoke.
 *
 * On the wire a message is `body || signature (64)`. The Ed25519 signature
 * covers `utf8(TRUST_LABEL) || body`; the label is never transmitted, so a
 * signature made for another purpose never verifies here. Verification uses
 * the exact bytes received, never a re-encoding, and decoding is strict, so
 * one set of fields has exactly one encoding and one hash.
 *
 * Body (integers big-endian):
 *
 * ```text
 * version     u8    1
 * kind        u8    1 request | 2 accept | 3 reject | 4 revoke
 * from_key    32    signer's Ed25519 key
 * from_stamp  8     stamp proving the signer's address
 * to_key      32    recipient's full Ed25519 key
 * nonce       16    random
 * created     u64   ms since the epoch (informational)
 * expires     u64   ms since the epoch; 0 = none, only when channel-bound
 * binding     32    Noise handshake hash of the session, or zeros offline
 * request:    hostname_len u8 (0..63) | hostname | reason_len u16 (0..1024) | reason
 * accept:     request_hash 32
 * reject:     request_hash 32 | reason_len u16 (0..1024) | reason
 * revoke:     accept_hash 32
 * ```
 *
 * The persisted replay cache for offline messages lives with the trust store;
 * this module only names its key ({@linkcode replayKey}).
 *
 * @module
 */

import {
  TRUST_LABEL,
  TRUST_MAX_CLOCK_SKEW_MS,
  TRUST_MESSAGE_MAX,
  TRUST_REASON_MAX,
} from "../constants.ts";
import { STAMP_BYTES, verifyStamp } from "../identity/address.ts";
import {
  isValidPublicKey,
  PUBLIC_KEY_BYTES,
  publicKeyFromSeed,
  sign,
  SIGNATURE_BYTES,
  verify,
} from "../identity/ed25519.ts";
import { HOSTNAME_MAX, isValidHostname } from "../identity/self_description.ts";
import { concat, constantTimeEqual, DecodeError, Reader, utf8, Writer } from "../bytes.ts";

/** The only trust message version this codec reads and writes. */
export const TRUST_MESSAGE_VERSION = 1;
/** Length in bytes of a trust message nonce. */
export const TRUST_NONCE_BYTES = 16;
/** Length in bytes of a channel binding (a Noise handshake hash) and of the hashes messages name. */
export const TRUST_HASH_BYTES = 32;

/** What a trust message asks or answers. */
export type TrustKind = "request" | "accept" | "reject" | "revoke";

/** The fields of a trust message; which optional fields are present depends on `kind`. */
export interface TrustMessage {
  /** What the message asks or answers. */
  kind: TrustKind;
  /** The signer's 32-byte Ed25519 public key. */
  fromKey: Uint8Array;
  /** The 8-byte stamp proving the signer's address for `fromKey`. */
  fromStamp: Uint8Array;
  /** The recipient's full 32-byte Ed25519 public key (never an address). */
  toKey: Uint8Array;
  /** 16 random bytes; with `fromKey`, the replay-cache key of offline messages. */
  nonce: Uint8Array;
  /** When the sender made the message, ms since the epoch; informational except for the clock-skew check. */
  created: number;
  /** When an offline message stops being valid, ms since the epoch; 0 = never, only allowed when channel-bound. */
  expires: number;
  /** The Noise handshake hash of the session it is sent over, or 32 zero bytes when carried offline. */
  binding: Uint8Array;
  /** Request only: the sender's self-claimed hostname; `""` (or omitted when signing) for none. */
  hostname?: string;
  /** Request and reject only: free text of at most 1024 bytes of UTF-8, no NUL; untrusted, escape before display. */
  reason?: string;
  /** Accept and reject only: SHA-256 of the answered request's full wire bytes. */
  requestHash?: Uint8Array;
  /** Revoke only: SHA-256 of the cancelled accept's full wire bytes. */
  acceptHash?: Uint8Array;
}

/** A verified trust message together with its exact wire bytes and their hash. */
export interface SignedTrustMessage {
  /** The decoded fields (copies, safe to keep). */
  message: TrustMessage;
  /** `body || signature` exactly as on the wire. */
  bytes: Uint8Array;
  /** SHA-256 of `bytes`: what an accept, reject or revoke names. */
  hash: Uint8Array;
}

/** Why {@linkcode decodeTrustMessage} refused its input. */
export type TrustMessageErrorReason =
  | "malformed"
  | "bad_signature"
  | "bad_key"
  | "bad_stamp"
  | "too_large";

/** A trust message that failed decoding or verification; the only error {@linkcode decodeTrustMessage} throws for bad input. */
export class TrustMessageError extends Error {
  /** Which check the message failed. */
  readonly reason: TrustMessageErrorReason;
  /** Creates a trust message error with a reason code and a sentence-case message. */
  constructor(reason: TrustMessageErrorReason, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TrustMessageError";
    this.reason = reason;
  }
}

/** What the receiver knows when judging a trust message. */
export interface TrustContext {
  /** This node's Ed25519 public key. */
  localKey: Uint8Array;
  /** The session peer's Ed25519 key when the message arrived over a live session; omitted when carried offline. */
  sessionPeerKey?: Uint8Array;
  /** The session's Noise handshake hash; given exactly when `sessionPeerKey` is. */
  sessionBinding?: Uint8Array;
  /** The local clock, ms since the epoch. */
  now: number;
  /** How far `created` may lie ahead of `now` for offline messages (ms); defaults to {@linkcode TRUST_MAX_CLOCK_SKEW_MS}. */
  maxSkewMs?: number;
}

/** Why {@linkcode checkTrustMessage} refused a message. */
export type TrustCheckCode =
  | "misaddressed"
  | "wrong_sender"
  | "wrong_binding"
  | "expired"
  | "clock_skew"
  | "missing_expiry";

/** The verdict of {@linkcode checkTrustMessage}. */
export type TrustCheck =
  | { ok: true }
  | { ok: false; code: TrustCheckCode; message: string };

const LABEL = utf8(TRUST_LABEL);
const KINDS: readonly TrustKind[] = ["request", "accept", "reject", "revoke"];
/** The kind-specific fields each kind carries; any other is refused when signing. */
const KIND_FIELDS: Readonly<Record<TrustKind, readonly string[]>> = {
  request: ["hostname", "reason"],
  accept: ["requestHash"],
  reject: ["requestHash", "reason"],
  revoke: ["acceptHash"],
};
const OPTIONAL_FIELDS = ["hostname", "reason", "requestHash", "acceptHash"] as const;
/** version, kind, from_key, from_stamp, to_key, nonce, created, expires, binding. */
const HEADER_BYTES = 1 + 1 + PUBLIC_KEY_BYTES + STAMP_BYTES + PUBLIC_KEY_BYTES +
  TRUST_NONCE_BYTES + 8 + 8 + TRUST_HASH_BYTES;
// ignoreBOM keeps a leading U+FEFF in the string instead of silently dropping
// it, so the decoded reason is exactly what was signed.
const REASON_DECODER = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const TWO_POW_53 = 2n ** 53n;

/**
 * Encodes and signs a trust message with the key of `seed` (which gives
 * `fromKey`). Throws `TypeError` when a field is invalid: wrong lengths, a
 * stamp that proves no address for the key, an unusable `toKey`, a hostname or
 * reason the decoder would refuse, a field of another kind, or `expires` 0
 * without a channel binding.
 *
 * @example
 * ```ts ignore
 * const signed = await signTrustMessage(identity.seed, {
 *   kind: "request", fromStamp: identity.stamp, toKey: peerKey,
 *   nonce: crypto.getRandomValues(new Uint8Array(16)),
 *   created: Date.now(), expires: 0, binding: handshakeHash,
 *   hostname: "alpha", reason: "deploy bot",
 * });
 * ```
 */
export async function signTrustMessage(
  seed: Uint8Array,
  message: Omit<TrustMessage, "fromKey">,
): Promise<SignedTrustMessage> {
  const fromKey = publicKeyFromSeed(seed);
  const body = encodeBody({ ...message, fromKey });
  const bytes = concat(body, sign(seed, concat(LABEL, body)));
  // Through the one decoding path, so what we send is exactly what a peer
  // accepts and the returned fields are the canonical ones.
  return await decodeTrustMessage(bytes);
}

/**
 * Decodes and verifies a trust message: size, strict layout, both keys usable,
 * the stamp proving the sender's address, and the signature over the exact
 * bytes given. Throws {@linkcode TrustMessageError} for any bad input. Does not
 * judge addressing, channel binding or time: see {@linkcode checkTrustMessage}.
 */
export async function decodeTrustMessage(input: Uint8Array): Promise<SignedTrustMessage> {
  if (!(input instanceof Uint8Array)) {
    throw new TypeError(`Cannot decode a ${typeof input} as a trust message: expected bytes`);
  }
  if (input.length > TRUST_MESSAGE_MAX) {
    throw new TrustMessageError(
      "too_large",
      `Cannot decode a trust message of ${input.length} bytes: expected at most ${TRUST_MESSAGE_MAX}`,
    );
  }
  // A private copy first: the caller's buffer may change while we await.
  const bytes = input.slice();
  if (bytes.length < HEADER_BYTES + SIGNATURE_BYTES) {
    throw new TrustMessageError(
      "malformed",
      `Cannot decode a trust message of ${bytes.length} bytes: expected at least ${
        HEADER_BYTES + SIGNATURE_BYTES
      }`,
    );
  }
  const body = bytes.subarray(0, bytes.length - SIGNATURE_BYTES);
  const signature = bytes.subarray(bytes.length - SIGNATURE_BYTES);
  let message: TrustMessage;
  try {
    message = decodeBody(body);
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e;
    throw new TrustMessageError("malformed", e.message, { cause: e });
  }
  // Cheap checks first: key checks are cached, the stamp costs one SHA-512.
  if (!isValidPublicKey(message.fromKey)) {
    throw new TrustMessageError(
      "bad_key",
      `Cannot accept a trust ${message.kind} from key "${message.fromKey.toHex()}": not a usable Ed25519 key`,
    );
  }
  if (!isValidPublicKey(message.toKey)) {
    throw new TrustMessageError(
      "bad_key",
      `Cannot accept a trust ${message.kind} to key "${message.toKey.toHex()}": not a usable Ed25519 key`,
    );
  }
  if (verifyStamp(message.fromKey, message.fromStamp) === null) {
    throw new TrustMessageError(
      "bad_stamp",
      `Cannot accept a trust ${message.kind} with stamp "${message.fromStamp.toHex()}": it proves no address for key "${message.fromKey.toHex()}"`,
    );
  }
  if (!verify(signature, concat(LABEL, body), message.fromKey)) {
    throw new TrustMessageError(
      "bad_signature",
      `Cannot accept a trust ${message.kind} from key "${message.fromKey.toHex()}": the signature does not verify`,
    );
  }
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return { message, bytes, hash };
}

/**
 * Judges a verified message in its context: addressed to `localKey`; over a
 * session, sent by the session's peer and bound to its handshake hash (no
 * clock needed); offline, unbound, with an expiry that has not passed and a
 * creation time not implausibly far ahead. Throws `TypeError` on a malformed
 * context. Does not consult the replay cache.
 */
export function checkTrustMessage(m: SignedTrustMessage, ctx: TrustContext): TrustCheck {
  checkContext(ctx);
  const { message } = m;
  const what = `Trust ${message.kind}`;
  if (!constantTimeEqual(message.toKey, ctx.localKey)) {
    return refuse(
      "misaddressed",
      `${what} is addressed to key "${message.toKey.toHex()}", not to this node's key "${ctx.localKey.toHex()}"`,
    );
  }
  if (ctx.sessionPeerKey !== undefined && ctx.sessionBinding !== undefined) {
    if (!constantTimeEqual(message.fromKey, ctx.sessionPeerKey)) {
      return refuse(
        "wrong_sender",
        `${what} is signed by key "${message.fromKey.toHex()}" but arrived over the session of key "${ctx.sessionPeerKey.toHex()}"`,
      );
    }
    if (!constantTimeEqual(message.binding, ctx.sessionBinding)) {
      return refuse(
        "wrong_binding",
        isZero(message.binding)
          ? `${what} was made for offline delivery but arrived over a session; expected one bound to this session`
          : `${what} is bound to another session (binding "${message.binding.toHex()}"); expected this session's handshake hash`,
      );
    }
    return { ok: true };
  }
  if (!isZero(message.binding)) {
    return refuse(
      "wrong_binding",
      `${what} is bound to session "${message.binding.toHex()}" but arrived offline; expected an unbound message with an expiry`,
    );
  }
  if (message.expires === 0) {
    return refuse(
      "missing_expiry",
      `${what} arrived offline without an expiry; expected one, since only channel-bound messages may omit it`,
    );
  }
  const maxSkew = ctx.maxSkewMs ?? TRUST_MAX_CLOCK_SKEW_MS;
  if (message.created - ctx.now > maxSkew) {
    return refuse(
      "clock_skew",
      `${what} was created at ${when(message.created)}, ${
        message.created - ctx.now
      } ms ahead of this node's clock (${
        when(ctx.now)
      }); expected at most ${maxSkew} ms: check both clocks`,
    );
  }
  if (ctx.now > message.expires) {
    return refuse(
      "expired",
      `${what} expired at ${when(message.expires)}; this node's clock says ${when(ctx.now)}`,
    );
  }
  return { ok: true };
}

/** The replay-cache key of a message: sender key hex, `:`, nonce hex. */
export function replayKey(m: SignedTrustMessage): string {
  return `${m.message.fromKey.toHex()}:${m.message.nonce.toHex()}`;
}

function decodeBody(body: Uint8Array): TrustMessage {
  const r = new Reader(body);
  const version = r.u8("trust message version");
  if (version !== TRUST_MESSAGE_VERSION) {
    throw new DecodeError(
      "unsupported_version",
      `Cannot decode trust message version ${version}: expected ${TRUST_MESSAGE_VERSION}`,
    );
  }
  const kindByte = r.u8("trust message kind");
  const kind = KINDS[kindByte - 1];
  if (kind === undefined) {
    throw new DecodeError(
      "unknown_kind",
      `Cannot decode trust message kind ${kindByte}: expected 1 to ${KINDS.length}`,
    );
  }
  const fromKey = r.bytes(PUBLIC_KEY_BYTES, "from key").slice();
  const fromStamp = r.bytes(STAMP_BYTES, "from stamp").slice();
  const toKey = r.bytes(PUBLIC_KEY_BYTES, "to key").slice();
  const nonce = r.bytes(TRUST_NONCE_BYTES, "nonce").slice();
  const created = readTime(r, "created");
  const expires = readTime(r, "expires");
  const binding = r.bytes(TRUST_HASH_BYTES, "binding").slice();
  if (expires === 0 && isZero(binding)) {
    throw new DecodeError(
      "missing_expiry",
      "Cannot decode trust message: expires is 0 and binding is all zeros; expected an expiry or a channel binding",
    );
  }
  const common = { kind, fromKey, fromStamp, toKey, nonce, created, expires, binding };
  let message: TrustMessage;
  switch (kind) {
    case "request": {
      const hostname = readHostname(r);
      message = { ...common, hostname, reason: readReason(r) };
      break;
    }
    case "accept":
      message = { ...common, requestHash: r.bytes(TRUST_HASH_BYTES, "request hash").slice() };
      break;
    case "reject": {
      const requestHash = r.bytes(TRUST_HASH_BYTES, "request hash").slice();
      message = { ...common, requestHash, reason: readReason(r) };
      break;
    }
    case "revoke":
      message = { ...common, acceptHash: r.bytes(TRUST_HASH_BYTES, "accept hash").slice() };
      break;
  }
  r.end("trust message");
  return message;
}

function readTime(r: Reader, field: string): number {
  const v = r.u64(field);
  if (v >= TWO_POW_53) {
    throw new DecodeError(
      "out_of_range",
      `Cannot decode trust message: ${field} ${v} is not below 2^53`,
    );
  }
  return Number(v);
}

function readHostname(r: Reader): string {
  const length = r.u8("hostname length");
  if (length > HOSTNAME_MAX) {
    throw new DecodeError(
      "bad_hostname",
      `Cannot decode trust message: hostname length ${length} exceeds ${HOSTNAME_MAX}`,
    );
  }
  const raw = r.bytes(length, "hostname");
  for (const c of raw) {
    if (!isHostnameByte(c)) {
      throw new DecodeError(
        "bad_hostname",
        `Cannot decode trust message: hostname byte 0x${
          c.toString(16).padStart(2, "0")
        } is outside [a-z0-9-]`,
      );
    }
  }
  const hostname = String.fromCharCode(...raw);
  if (hostname !== "" && !isValidHostname(hostname)) {
    throw new DecodeError(
      "bad_hostname",
      `Cannot decode trust message: hostname ${
        JSON.stringify(hostname)
      } is not a valid hostname (no leading or trailing "-", not an address)`,
    );
  }
  return hostname;
}

function readReason(r: Reader): string {
  const length = r.u16("reason length");
  if (length > TRUST_REASON_MAX) {
    throw new DecodeError(
      "reason_too_long",
      `Cannot decode trust message: reason length ${length} exceeds ${TRUST_REASON_MAX} bytes`,
    );
  }
  const raw = r.bytes(length, "reason");
  if (raw.includes(0)) {
    throw new DecodeError(
      "bad_reason",
      `Cannot decode trust message: reason contains a NUL byte at offset ${raw.indexOf(0)}`,
    );
  }
  try {
    return REASON_DECODER.decode(raw);
  } catch {
    throw new DecodeError("bad_reason", "Cannot decode trust message: reason is not valid UTF-8");
  }
}

function encodeBody(m: TrustMessage): Uint8Array {
  const problem = fieldProblem(m);
  if (problem !== undefined) throw new TypeError(problem);
  const w = new Writer(TRUST_MESSAGE_MAX)
    .u8(TRUST_MESSAGE_VERSION)
    .u8(KINDS.indexOf(m.kind) + 1)
    .bytes(m.fromKey)
    .bytes(m.fromStamp)
    .bytes(m.toKey)
    .bytes(m.nonce)
    .u64(BigInt(m.created))
    .u64(BigInt(m.expires))
    .bytes(m.binding);
  switch (m.kind) {
    case "request": {
      const hostname = utf8(m.hostname ?? "");
      const reason = utf8(m.reason ?? "");
      w.u8(hostname.length).bytes(hostname).u16(reason.length).bytes(reason);
      break;
    }
    case "accept":
      w.bytes(m.requestHash!);
      break;
    case "reject": {
      const reason = utf8(m.reason ?? "");
      w.bytes(m.requestHash!).u16(reason.length).bytes(reason);
      break;
    }
    case "revoke":
      w.bytes(m.acceptHash!);
      break;
  }
  const body = w.finish();
  if (body.length + SIGNATURE_BYTES > TRUST_MESSAGE_MAX) {
    // Unreachable with today's limits (the largest is 1292 bytes); kept so a
    // change to a limit cannot produce messages peers refuse.
    throw new TypeError(
      `Cannot sign a trust message of ${
        body.length + SIGNATURE_BYTES
      } bytes: expected at most ${TRUST_MESSAGE_MAX}`,
    );
  }
  return body;
}

function fieldProblem(m: TrustMessage): string | undefined {
  if (!KINDS.includes(m.kind)) {
    return `Cannot sign a trust message of kind ${JSON.stringify(m.kind)}: expected one of ${
      KINDS.join(", ")
    }`;
  }
  const allowed = KIND_FIELDS[m.kind];
  for (const field of OPTIONAL_FIELDS) {
    if (m[field] !== undefined && !allowed.includes(field)) {
      return `Cannot sign a trust ${m.kind} with field ${field}: a ${m.kind} carries only ${
        allowed.join(" and ")
      }`;
    }
  }
  const sizes = [
    ["from stamp", m.fromStamp, STAMP_BYTES],
    ["to key", m.toKey, PUBLIC_KEY_BYTES],
    ["nonce", m.nonce, TRUST_NONCE_BYTES],
    ["binding", m.binding, TRUST_HASH_BYTES],
    ...(m.kind === "accept" || m.kind === "reject"
      ? [["request hash", m.requestHash, TRUST_HASH_BYTES] as const]
      : []),
    ...(m.kind === "revoke" ? [["accept hash", m.acceptHash, TRUST_HASH_BYTES] as const] : []),
  ] as const;
  for (const [name, value, size] of sizes) {
    if (!(value instanceof Uint8Array) || value.length !== size) {
      const got = value instanceof Uint8Array ? `${value.length} bytes` : `a ${typeof value}`;
      return `Cannot sign a trust ${m.kind} with a ${name} of ${got}: expected ${size} bytes`;
    }
  }
  if (!isValidPublicKey(m.toKey)) {
    return `Cannot sign a trust ${m.kind} to key "${m.toKey.toHex()}": not a usable Ed25519 key`;
  }
  if (verifyStamp(m.fromKey, m.fromStamp) === null) {
    return `Cannot sign a trust ${m.kind} with stamp "${m.fromStamp.toHex()}": it proves no address for this key`;
  }
  for (const [name, value] of [["created", m.created], ["expires", m.expires]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      return `Cannot sign a trust ${m.kind} with ${name} ${value}: expected an integer from 0 to 2^53 - 1 (ms since the epoch)`;
    }
  }
  if (m.expires === 0 && isZero(m.binding)) {
    return `Cannot sign a trust ${m.kind} with expires 0 and no channel binding: an offline message needs an expiry`;
  }
  if (m.hostname !== undefined && m.hostname !== "" && !isValidHostname(m.hostname)) {
    return `Cannot sign a trust ${m.kind} with hostname ${
      JSON.stringify(m.hostname)
    }: expected 1 to ${HOSTNAME_MAX} of a-z, 0-9 and "-", not starting or ending with "-", not an address`;
  }
  if (m.reason !== undefined) return reasonProblem(m.kind, m.reason);
  return undefined;
}

function reasonProblem(kind: TrustKind, reason: unknown): string | undefined {
  if (typeof reason !== "string") {
    return `Cannot sign a trust ${kind} with a ${typeof reason} as reason: expected a string`;
  }
  // TextEncoder would silently turn a lone surrogate into U+FFFD, signing
  // text other than the caller's.
  if (!reason.isWellFormed()) {
    return `Cannot sign a trust ${kind} whose reason has a lone surrogate: expected well-formed Unicode`;
  }
  if (reason.includes("\0")) {
    return `Cannot sign a trust ${kind} whose reason contains NUL: expected text without it`;
  }
  const length = utf8(reason).length;
  if (length > TRUST_REASON_MAX) {
    return `Cannot sign a trust ${kind} with a reason of ${length} bytes: expected at most ${TRUST_REASON_MAX} bytes of UTF-8`;
  }
  return undefined;
}

function checkContext(ctx: TrustContext): void {
  const key = (v: unknown): boolean => v instanceof Uint8Array && v.length === PUBLIC_KEY_BYTES;
  if (!key(ctx.localKey)) {
    throw new TypeError(`Cannot check a trust message: local key is not ${PUBLIC_KEY_BYTES} bytes`);
  }
  if ((ctx.sessionPeerKey === undefined) !== (ctx.sessionBinding === undefined)) {
    throw new TypeError(
      "Cannot check a trust message: give both the session peer key and the session binding, or neither",
    );
  }
  if (ctx.sessionPeerKey !== undefined && !key(ctx.sessionPeerKey)) {
    throw new TypeError(
      `Cannot check a trust message: session peer key is not ${PUBLIC_KEY_BYTES} bytes`,
    );
  }
  if (ctx.sessionBinding !== undefined) {
    const b = ctx.sessionBinding;
    // An all-zero session binding would let offline messages pass as bound.
    if (!(b instanceof Uint8Array) || b.length !== TRUST_HASH_BYTES || isZero(b)) {
      throw new TypeError(
        `Cannot check a trust message: session binding is not a non-zero ${TRUST_HASH_BYTES}-byte handshake hash`,
      );
    }
  }
  if (!Number.isFinite(ctx.now)) {
    throw new TypeError(
      `Cannot check a trust message at time ${ctx.now}: expected ms since the epoch`,
    );
  }
  if (ctx.maxSkewMs !== undefined && !(ctx.maxSkewMs >= 0 && Number.isFinite(ctx.maxSkewMs))) {
    throw new TypeError(
      `Cannot check a trust message with max skew ${ctx.maxSkewMs}: expected a non-negative number of ms`,
    );
  }
}

function refuse(code: TrustCheckCode, message: string): TrustCheck {
  return { ok: false, code, message };
}

function isZero(bytes: Uint8Array): boolean {
  let or = 0;
  for (const b of bytes) or |= b;
  return or === 0;
}

function isHostnameByte(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d;
}

/** A time for an error message: ISO 8601 when representable, plus the raw ms. */
function when(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? `${ms} ms` : `${date.toISOString()} (${ms} ms)`;
}
