/**
 * Messages between a node and a rendezvous (issue 9), one per datagram on
 * virtual port 445 inside their Noise session (design:
 * `docs/design/rendezvous.md`). A type byte comes first; requests and their
 * answers carry a request id (u32) that the answer echoes; relay messages
 * carry none.
 *
 * | type | name | fields after the type byte |
 * |---:|---|---|
 * | 0x01 | publish | id u32, record length u16, presence record |
 * | 0x02 | lookup | id u32, by u8 (0 address, 1 key, 2 hostname), then 6-byte address, 32-byte key, or length u8 + hostname |
 * | 0x03 | observe | id u32 |
 * | 0x04 | punch | id u32, target address (6) |
 * | 0x10 | relay | target address (6), frame length u16, frame |
 * | 0x11 | relayed | source address (6), frame length u16, frame |
 * | 0x81 | ok | id u32, changed u8, observed endpoint, conflict u8 (0/1) [, hostname length u8 + hostname, bound address (6)] |
 * | 0x82 | found | id u32, record length u16, presence record, conflict count u8 (≤ 8), addresses (6 each) |
 * | 0x83 | not_found | id u32 |
 * | 0x84 | observed | id u32, endpoint |
 * | 0x85 | punch_from | id u32, source address (6), endpoint |
 * | 0x86 | mail | id u32 (0): an item was left in the node's mailbox here (issue 10) |
 * | 0xff | error | id u32, code length u8 (1 to 32), code (`[a-z_]`) |
 *
 * An endpoint is `wire/ip_endpoint.ts`'s: family (4 or 6), IP, port.
 *
 * @module
 */
import { type Address, addressToBytes, formatAddress } from "../identity/address.ts";
import { DecodeError, Reader, utf8, Writer } from "../bytes.ts";
import { DATA_HEADER_SIZE, TAG_SIZE } from "./frames.ts";
import { INNER_HEADER_SIZE } from "./inner.ts";
import { type IpEndpoint, readEndpoint, writeEndpoint } from "./ip_endpoint.ts";
import { MAX_PRESENCE_RECORD_SIZE, MAX_RECORD_HOSTNAME } from "./presence_record.ts";

/** Largest session frame a relay message carries (bytes). */
export const MAX_RELAY_FRAME = 65_000;
/**
 * Bytes a relayed frame gains on its way to the rendezvous: the relay
 * message's type, address and length, then the outer session's data header,
 * inner header and tag.
 */
export const RELAY_OVERHEAD: number = 1 + 6 + 2 + DATA_HEADER_SIZE + INNER_HEADER_SIZE + TAG_SIZE;
/** Most hostname conflicts one answer lists. */
export const MAX_CONFLICTS = 8;
/** Longest error code, in bytes. */
export const MAX_ERROR_CODE = 32;

/** What a lookup asks by. */
export type LookupKey =
  | { by: "address"; address: Address }
  | { by: "key"; key: Uint8Array }
  | { by: "hostname"; hostname: string };

/** A message on port 445. */
export type RendezvousMessage =
  | { type: "publish"; id: number; record: Uint8Array }
  | ({ type: "lookup"; id: number } & LookupKey)
  | { type: "observe"; id: number }
  | { type: "punch"; id: number; to: Address }
  | { type: "relay"; to: Address; frame: Uint8Array }
  | { type: "relayed"; from: Address; frame: Uint8Array }
  | {
    type: "ok";
    id: number;
    changed: boolean;
    observed: IpEndpoint;
    conflict: { hostname: string; boundTo: Address } | null;
  }
  | { type: "found"; id: number; record: Uint8Array; conflicts: Address[] }
  | { type: "not_found"; id: number }
  | { type: "observed"; id: number; endpoint: IpEndpoint }
  | { type: "punch_from"; id: number; from: Address; endpoint: IpEndpoint }
  | { type: "mail"; id: number }
  | { type: "error"; id: number; code: string };

/** Each message's type byte. */
export const RENDEZVOUS_MESSAGE_TYPES = {
  publish: 0x01,
  lookup: 0x02,
  observe: 0x03,
  punch: 0x04,
  relay: 0x10,
  relayed: 0x11,
  ok: 0x81,
  found: 0x82,
  not_found: 0x83,
  observed: 0x84,
  punch_from: 0x85,
  mail: 0x86,
  error: 0xff,
} as const satisfies Record<RendezvousMessage["type"], number>;
const BY = ["address", "key", "hostname"] as const;
const HOSTNAME = /^[a-z0-9-]{1,63}$/;
const CODE = /^[a-z_]{1,32}$/;

function fail(reason: string, message: string): never {
  throw new DecodeError(reason, `Cannot decode rendezvous message: ${message}`);
}

function readAddress(r: Reader, what: string): Address {
  const bytes = r.bytes(6, what);
  try {
    return formatAddress(bytes);
  } catch {
    return fail("bad_address", `${what} is a reserved address`);
  }
}

function readHostname(r: Reader): string {
  const n = r.u8("hostname length");
  const text = String.fromCharCode(...r.bytes(n, "hostname"));
  if (n > MAX_RECORD_HOSTNAME || !HOSTNAME.test(text)) {
    fail("bad_hostname", "hostname is not 1 to 63 characters of [a-z0-9-]");
  }
  return text;
}

function readBlob(r: Reader, max: number, what: string): Uint8Array {
  const n = r.u16(`${what} length`);
  if (n > max) fail("too_large", `${what} of ${n} bytes, more than ${max}`);
  return r.bytes(n, what).slice();
}

/**
 * Decodes one message strictly (known type, exact length, every field in
 * range). Throws only {@linkcode DecodeError}. Byte fields are copies.
 */
export function decodeRendezvousMessage(bytes: Uint8Array): RendezvousMessage {
  const r = new Reader(bytes);
  const type = r.u8("type");
  let m: RendezvousMessage;
  switch (type) {
    case RENDEZVOUS_MESSAGE_TYPES.publish:
      m = {
        type: "publish",
        id: r.u32("id"),
        record: readBlob(r, MAX_PRESENCE_RECORD_SIZE, "record"),
      };
      break;
    case RENDEZVOUS_MESSAGE_TYPES.lookup: {
      const id = r.u32("id");
      const by = BY[r.u8("lookup by")];
      if (by === undefined) fail("bad_lookup", "lookup by neither address, key nor hostname");
      m = by === "address"
        ? { type: "lookup", id, by, address: readAddress(r, "address") }
        : by === "key"
        ? { type: "lookup", id, by, key: r.bytes(32, "key").slice() }
        : { type: "lookup", id, by, hostname: readHostname(r) };
      break;
    }
    case RENDEZVOUS_MESSAGE_TYPES.observe:
      m = { type: "observe", id: r.u32("id") };
      break;
    case RENDEZVOUS_MESSAGE_TYPES.punch:
      m = { type: "punch", id: r.u32("id"), to: readAddress(r, "target") };
      break;
    case RENDEZVOUS_MESSAGE_TYPES.relay:
      m = {
        type: "relay",
        to: readAddress(r, "target"),
        frame: readBlob(r, MAX_RELAY_FRAME, "frame"),
      };
      break;
    case RENDEZVOUS_MESSAGE_TYPES.relayed:
      m = {
        type: "relayed",
        from: readAddress(r, "source"),
        frame: readBlob(r, MAX_RELAY_FRAME, "frame"),
      };
      break;
    case RENDEZVOUS_MESSAGE_TYPES.ok: {
      const id = r.u32("id");
      const changed = r.u8("changed");
      if (changed > 1) fail("bad_flag", `changed is ${changed}`);
      const observed = readEndpoint(r, "observed endpoint");
      const has = r.u8("conflict");
      if (has > 1) fail("bad_flag", `conflict is ${has}`);
      const conflict = has === 1
        ? { hostname: readHostname(r), boundTo: readAddress(r, "bound address") }
        : null;
      m = { type: "ok", id, changed: changed === 1, observed, conflict };
      break;
    }
    case RENDEZVOUS_MESSAGE_TYPES.found: {
      const id = r.u32("id");
      const record = readBlob(r, MAX_PRESENCE_RECORD_SIZE, "record");
      const n = r.u8("conflict count");
      if (n > MAX_CONFLICTS) {
        fail("too_many_conflicts", `${n} conflicts, more than ${MAX_CONFLICTS}`);
      }
      const conflicts = Array.from({ length: n }, (_, i) => readAddress(r, `conflict ${i}`));
      m = { type: "found", id, record, conflicts };
      break;
    }
    case RENDEZVOUS_MESSAGE_TYPES.not_found:
      m = { type: "not_found", id: r.u32("id") };
      break;
    case RENDEZVOUS_MESSAGE_TYPES.mail:
      m = { type: "mail", id: r.u32("id") };
      break;
    case RENDEZVOUS_MESSAGE_TYPES.observed:
      m = { type: "observed", id: r.u32("id"), endpoint: readEndpoint(r, "endpoint") };
      break;
    case RENDEZVOUS_MESSAGE_TYPES.punch_from:
      m = {
        type: "punch_from",
        id: r.u32("id"),
        from: readAddress(r, "source"),
        endpoint: readEndpoint(r, "endpoint"),
      };
      break;
    case RENDEZVOUS_MESSAGE_TYPES.error: {
      const id = r.u32("id");
      const n = r.u8("code length");
      const code = String.fromCharCode(...r.bytes(n, "code"));
      if (!CODE.test(code)) fail("bad_code", "error code is not 1 to 32 characters of [a-z_]");
      m = { type: "error", id, code };
      break;
    }
    default:
      fail("unknown_type", `type 0x${type.toString(16).padStart(2, "0")}`);
  }
  r.end("rendezvous message");
  return m;
}

function checkId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > 0xffff_ffff) {
    throw new RangeError(`Invalid request id ${id}: expected 0 to 4294967295`);
  }
}

function checkBlob(b: Uint8Array, max: number, what: string): void {
  if (b.length > max) throw new RangeError(`Invalid ${what} of ${b.length} bytes: at most ${max}`);
}

function checkText(text: string, pattern: RegExp, what: string): void {
  if (!pattern.test(text)) throw new RangeError(`Invalid ${what} "${text}"`);
}

/** Encodes a message; throws `RangeError` for a field out of range. */
export function encodeRendezvousMessage(m: RendezvousMessage): Uint8Array {
  // Room for the whole message at once: every fixed field fits in 112 bytes,
  // and each buffer outgrown is one more allocation per relayed frame.
  const blob = "record" in m ? m.record.length : "frame" in m ? m.frame.length : 0;
  const w = new Writer(112 + Math.min(blob, MAX_RELAY_FRAME)).u8(RENDEZVOUS_MESSAGE_TYPES[m.type]);
  if ("id" in m) {
    checkId(m.id);
    w.u32(m.id);
  }
  switch (m.type) {
    case "publish":
      checkBlob(m.record, MAX_PRESENCE_RECORD_SIZE, "record");
      w.u16(m.record.length).bytes(m.record);
      break;
    case "lookup":
      w.u8(BY.indexOf(m.by));
      if (m.by === "address") w.bytes(addressToBytes(m.address));
      else if (m.by === "key") {
        if (m.key.length !== 32) throw new RangeError(`Invalid key of ${m.key.length} bytes`);
        w.bytes(m.key);
      } else {
        checkText(m.hostname, HOSTNAME, "hostname");
        w.u8(m.hostname.length).bytes(utf8(m.hostname));
      }
      break;
    case "observe":
    case "not_found":
    case "mail":
      break;
    case "punch":
      w.bytes(addressToBytes(m.to));
      break;
    case "relay":
    case "relayed":
      checkBlob(m.frame, MAX_RELAY_FRAME, "frame");
      w.bytes(addressToBytes(m.type === "relay" ? m.to : m.from)).u16(m.frame.length).bytes(
        m.frame,
      );
      break;
    case "ok":
      writeEndpoint(w.u8(m.changed ? 1 : 0), m.observed);
      if (m.conflict === null) w.u8(0);
      else {
        checkText(m.conflict.hostname, HOSTNAME, "hostname");
        w.u8(1).u8(m.conflict.hostname.length).bytes(utf8(m.conflict.hostname))
          .bytes(addressToBytes(m.conflict.boundTo));
      }
      break;
    case "found":
      checkBlob(m.record, MAX_PRESENCE_RECORD_SIZE, "record");
      if (m.conflicts.length > MAX_CONFLICTS) {
        throw new RangeError(`Invalid ${m.conflicts.length} conflicts: at most ${MAX_CONFLICTS}`);
      }
      w.u16(m.record.length).bytes(m.record).u8(m.conflicts.length);
      for (const a of m.conflicts) w.bytes(addressToBytes(a));
      break;
    case "observed":
      writeEndpoint(w, m.endpoint);
      break;
    case "punch_from":
      writeEndpoint(w.bytes(addressToBytes(m.from)), m.endpoint);
      break;
    case "error":
      checkText(m.code, CODE, "error code");
      w.u8(m.code.length).bytes(utf8(m.code));
      break;
  }
  return w.finish();
}
