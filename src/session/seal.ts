/**
 * Sealed items (issue 10 item 2; docs/design/offline.md): one message of
 * `Noise_X_25519_AESGCM_SHA256` from a sender to a recipient's static X25519
 * key, for things left at a rendezvous while the recipient is offline. Only
 * the recipient can open one: it learns who sealed it, and the rendezvous
 * that holds it learns neither content nor type nor sender.
 *
 * ```text
 * sealed item = e (32) | s encrypted (32 + 16) | payload encrypted (n + 16)
 * payload     = identity length u16 | identity (the handshake payload) | item
 * ```
 *
 * The identity is the same signed payload a handshake carries (identity
 * key, address stamp, the identity's signature binding the static key,
 * self-description), checked exactly as in a handshake against the static
 * key the Noise message authenticated (`ss`). The prologue binds the purpose:
 * a sealed item is never a handshake message, and a handshake message never
 * opens as a sealed item.
 *
 * Replays are the opener's to refuse: the returned `ephemeral` (hex) is
 * unique per item, for a replay cache.
 *
 * @module
 */
import { Reader, Writer } from "../bytes.ts";
import { decodeHandshakePayload } from "../wire/handshake_payload.ts";
import type { X25519KeyPair } from "./crypto.ts";
import { HandshakeState } from "./noise.ts";
import { type PeerIdentity, verifyPeerPayload } from "./peer_identity.ts";

/** Bound into every sealed item's handshake hash. */
const PROLOGUE = new TextEncoder().encode("pilot sealed item v1");
/** Largest item a seal carries (bytes): what a mailbox takes (issue 10). */
export const MAX_SEALED_ITEM = 70 * 1024;
/** Bytes a seal adds around the item and the identity: e, encrypted s, two tags, a length. */
export const SEAL_OVERHEAD = 32 + 32 + 16 + 16 + 2;

/** What sealing needs of the sender: its static key pair and its signed handshake payload. */
export interface SealingIdentity {
  /** Static X25519 key pair. */
  staticKey: X25519KeyPair;
  /** The encoded handshake payload (identity, static-key binding, self-description). */
  payload: Uint8Array;
}

/** An opened item. */
export interface OpenedItem {
  /** Who sealed it, proven by the Noise message and the identity's signatures. */
  sender: PeerIdentity;
  /** The item. */
  item: Uint8Array;
  /** The sealer's ephemeral key (hex): unique per item, the replay cache's key. */
  ephemeral: string;
}

/** Seals `item` for the holder of `recipientStatic`; `RangeError` above {@linkcode MAX_SEALED_ITEM}. */
export async function seal(
  sender: SealingIdentity,
  recipientStatic: Uint8Array,
  item: Uint8Array,
): Promise<Uint8Array> {
  if (item.length > MAX_SEALED_ITEM) {
    throw new RangeError(`Invalid sealed item of ${item.length} bytes: at most ${MAX_SEALED_ITEM}`);
  }
  const hs = await HandshakeState.create({
    pattern: "X",
    initiator: true,
    prologue: PROLOGUE,
    s: sender.staticKey,
    rs: recipientStatic,
  });
  const payload = new Writer(2 + sender.payload.length + item.length)
    .u16(sender.payload.length)
    .bytes(sender.payload)
    .bytes(item)
    .finish();
  return await hs.writeMessage(payload);
}

/**
 * Opens a sealed item with the recipient's static key pair. Throws
 * `NoiseError` when it was not sealed to this key or was altered,
 * `DecodeError` for a malformed inside, and `HandshakeFailure`
 * when the identity inside does not hold for the static key that sealed it.
 */
export async function openSealed(
  recipient: X25519KeyPair,
  sealed: Uint8Array,
): Promise<OpenedItem> {
  const hs = await HandshakeState.create({
    pattern: "X",
    initiator: false,
    prologue: PROLOGUE,
    s: recipient,
  });
  const payload = await hs.readMessage(sealed);
  const r = new Reader(payload);
  const identity = decodeHandshakePayload(r.bytes(r.u16("identity length"), "identity").slice());
  const item = r.rest().slice();
  const sender = await verifyPeerPayload(identity, hs.remoteStatic!);
  return { sender, item, ephemeral: sealed.subarray(0, 32).toHex() };
}
