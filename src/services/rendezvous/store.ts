/**
 * The rendezvous record table (issue 9, docs/design/rendezvous.md): the
 * signed presence records nodes publish, found again by address, key or
 * hostname. Sans-IO: no sockets, no timers; the clock is injected.
 *
 * A rendezvous is trusted by nobody, so the table stores each record as the
 * exact bytes its node signed and hands those bytes on; it can withhold a
 * record but never forge one. What it decides is which records it keeps:
 *
 * - **Checks, cheapest first** ({@linkcode RecordStore.publish}): size, the
 *   source's rate (before any signature is checked), `verifyPresence`, the
 *   key's rate, then the table's own rules (private records carry no
 *   endpoints, serials only grow, the table is bounded). Every refusal is
 *   counted under one reason of {@linkcode PUBLISH_REFUSALS}.
 * - **First claim holds a name.** A hostname belongs to the first key that
 *   claims it until that key's record expires or drops it; then the
 *   earliest other live claimant takes it. Later claimants are stored and
 *   found by key, but a hostname lookup lists them only as conflicts. An
 *   address, which two keys can share by grinding stamps, is held the same
 *   way.
 * - **Expiry.** A record past its `expiresAt` by the table's clock is never
 *   returned. Lookups and publishes remove the expired records they meet;
 *   {@linkcode RecordStore.sweep} removes the rest.
 * - **Mailbox owners' records are retained.** A record that names this
 *   rendezvous (`self`) among its mailboxes is kept, when it expires, in a
 *   retained table for {@linkcode MAILBOX_RETENTION_MS} more: senders
 *   looking up an offline owner (with a stale lookup) still learn its static
 *   key and that it collects mail here. Lookups by key and by address fall
 *   back to a retained record when no live one exists (a live record always
 *   wins); lookups by hostname never do (an expired record holds no name).
 *   A newer record of the key ends the retention (it is retained in turn if
 *   it names this rendezvous). The retained table holds at most `maxRecords`
 *   records, the oldest retained going first.
 *
 * Memory per record, live or retained: its bytes (at most 408, kept as a
 * one-byte string on the V8 heap, which compacts, rather than as one small
 * ArrayBuffer each, whose malloc'd backing stores pin the allocator's
 * pages) plus about {@linkcode RECORD_OVERHEAD_BYTES} on the heap for the
 * entry object, its key (32 bytes as a one-byte string), address and
 * hostname strings and three index slots; {@linkcode RecordStore.bytes}
 * reports this estimate. The publish rates of a key and of a source IP are
 * tracked only until their bucket is full again (a few seconds after their
 * last publish), at most `2 × maxRecords` keys and `maxSources` sources.
 * Measured (`deno task bench --only rendezvous`, Deno 2.9, records of 164
 * bytes, published from 100,000 source IPs): about 540 bytes of heap a
 * record, 56 MB for 100,000; the process's RSS after filling the table at
 * full speed is about 190 MiB: 49 for Deno itself, V8's heap reserved at
 * about 1.5 times what it uses, and malloc's heap grown by the publishes'
 * short-lived buffers.
 *
 * @example
 * ```ts ignore
 * import { RecordStore } from "./store.ts";
 * const store = new RecordStore({ now: Date.now, self: ownAddress });
 * const result = store.publish(recordBytes, "198.18.0.7");
 * if (result.ok && result.conflict) console.log(`${result.conflict.hostname} is taken`);
 * const found = store.lookupByHostname("alpha"); // { bound, conflicts } | null
 * ```
 *
 * @module
 */
import { binaryString, bytesOfBinary } from "../../bytes.ts";
import type { Address } from "../../identity/address.ts";
import { fingerprint } from "../../identity/fingerprint.ts";
import {
  MAILBOX_RETENTION_MS,
  MAX_PRESENCE_LIFETIME_MS,
  PRESENCE_CLOCK_SKEW_MS,
  PresenceError,
  type VerifiedPresence,
  verifyPresence,
} from "../../discovery/presence.ts";
import { RateLimiter } from "../../session/rate_limit.ts";
import { MAX_PRESENCE_RECORD_SIZE, type Visibility } from "../../wire/presence_record.ts";
import { MAX_CONFLICTS } from "../../wire/rendezvous_message.ts";
import { Claims } from "./_claims.ts";

/** Why a publish was refused: one closed set, each counted in {@linkcode RecordStoreStats.dropped}. */
export const PUBLISH_REFUSALS = {
  too_large: "the bytes are longer than the largest valid presence record",
  rate_limited: "over the publish rate of the source IP (before verification) or of the key",
  malformed: "the bytes are no valid presence record",
  bad_key: "the record's identity key is weak or malformed",
  bad_static_key: "the record's static X25519 key is of low order",
  bad_stamp: "the record's stamp does not prove an address for its key",
  bad_hostname: "the record claims a hostname nodes may not use",
  bad_signature: "the record's signature does not verify",
  expired: "the record has expired (by the checker's clock, or by the table's)",
  too_long_lived: "the record expires further ahead than the protocol allows",
  private_endpoints: "a private record lists endpoints, which lookups would hand to strangers",
  stale: "the key's stored record has a higher serial, or the same serial with other bytes",
  full: "the table holds its most records and the key has none stored",
} as const satisfies Record<string, string>;

/** One reason a publish was refused. */
export type PublishRefusal = keyof typeof PUBLISH_REFUSALS;

/** Most records a rendezvous stores, and most it retains for mailbox owners (docs/design/rendezvous.md, Bounds). */
export const RENDEZVOUS_MAX_RECORDS = 100_000;
/** Publishes per source IP, checked before any signature. */
export const PUBLISH_PER_SOURCE: RateOptions = { burst: 10, perSecond: 2 };
/** Publishes per identity key, checked after the signature. */
export const PUBLISH_PER_KEY: RateOptions = { burst: 5, perSecond: 1 };
/** Most source IPs whose publish rate is tracked at once. */
export const PUBLISH_MAX_SOURCES = 65_536;
/** Estimated bytes per stored record beyond the record itself (see the module's notes). */
export const RECORD_OVERHEAD_BYTES = 360;
/** Least time between two sweeps that a full table runs on its own (ms). */
export const FULL_SWEEP_INTERVAL_MS = 1000;

/** A token-bucket rate. */
export interface RateOptions {
  /** Publishes allowed at once. */
  burst: number;
  /** Publishes refilled per second. */
  perSecond: number;
}

/** Options of {@linkcode RecordStore}. */
export interface RecordStoreOptions {
  /** Wall clock, Unix ms: records expire by it and rates refill by it. Default `Date.now`. */
  now?: () => number;
  /** Most records stored, and most retained. Default {@linkcode RENDEZVOUS_MAX_RECORDS}. */
  maxRecords?: number;
  /**
   * This rendezvous's own address: records naming it among their mailboxes
   * are retained past expiry. Default none (nothing is retained).
   */
  self?: Address;
  /** Publish rate per source IP. Default {@linkcode PUBLISH_PER_SOURCE}. */
  perSource?: RateOptions;
  /** Publish rate per key. Default {@linkcode PUBLISH_PER_KEY}. */
  perKey?: RateOptions;
  /** Most source IPs tracked by the per-source rate. Default {@linkcode PUBLISH_MAX_SOURCES}. */
  maxSources?: number;
  /**
   * Checks a record; must throw only `PresenceError`. Default `verifyPresence`;
   * tests replace it to fill the table with records no real key signed.
   */
  verify?: (bytes: Uint8Array, now: number) => VerifiedPresence;
}

/** A hostname taken by another key, as a publish reports it. */
export interface HostnameConflict {
  /** The hostname the publisher claims. */
  hostname: string;
  /** Address of the key that holds it. */
  boundTo: Address;
}

/** What {@linkcode RecordStore.publish} answers. */
export type PublishResult =
  | {
    ok: true;
    /** False when the identical bytes were already stored. */
    changed: boolean;
    /** The address the record's stamp proves. */
    address: Address;
    /** Set when another key holds the record's hostname. */
    conflict: HostnameConflict | null;
  }
  | { ok: false; reason: PublishRefusal };

/** A stored record, as lookups return it. */
export interface FoundRecord {
  /** The record's bytes exactly as published (a copy). */
  record: Uint8Array;
  /** The address its stamp proves. */
  address: Address;
  /** The hostname it claims, `""` for none. */
  hostname: string;
  /** Whether strangers may learn its endpoints (a private record has none). */
  visibility: Visibility;
}

/** Another live key claiming a hostname. */
export interface ConflictingClaimant {
  /** Its address. */
  address: Address;
  /** Its key's fingerprint. */
  fingerprint: string;
}

/** What {@linkcode RecordStore.lookupByHostname} answers. */
export interface FoundHostname {
  /** The record of the key that holds the name. */
  bound: FoundRecord;
  /** Other live claimants, earliest first, at most `MAX_CONFLICTS`. */
  conflicts: ConflictingClaimant[];
}

/** What {@linkcode RecordStore.stats} answers. */
export interface RecordStoreStats {
  /** Records stored (expired ones until they are removed). */
  records: number;
  /** Expired records of mailbox owners, retained (past retention until they are removed). */
  retained: number;
  /** Hostnames claimed by stored records. */
  hostnames: number;
  /** Refused publishes by reason, every reason present. */
  dropped: Record<PublishRefusal, number>;
}

interface Entry {
  /**
   * The identity key's 32 bytes as a one-byte string (see `bytes`): the
   * key of every index and of the key's rate, 32 bytes fewer than its hex.
   */
  key: string;
  /**
   * The record's bytes as a one-byte string (char i = byte i): on the V8
   * heap, which compacts, where 100,000 small ArrayBuffers would each hold
   * a malloc'd backing store that pins the allocator's pages (measured:
   * about 1 KiB of RSS a record more).
   */
  bytes: string;
  address: Address;
  hostname: string;
  visibility: Visibility;
  serial: number;
  expiresAt: number;
  /** The record names this rendezvous among its mailboxes. */
  mailbox: boolean;
}

/** The index key of the identity key with hex `keyHex` (either case), or null for no key's hex. */
function keyOfHex(keyHex: string): string | null {
  return /^[0-9a-fA-F]{64}$/.test(keyHex) ? binaryString(Uint8Array.fromHex(keyHex)) : null;
}

function found(e: Entry): FoundRecord {
  return {
    record: bytesOfBinary(e.bytes),
    address: e.address,
    hostname: e.hostname,
    visibility: e.visibility,
  };
}

/**
 * The record table: publish, lookups by address, key and hostname, expiry
 * and counters. See the module documentation for the rules.
 */
export class RecordStore {
  #now: () => number;
  #verify: (bytes: Uint8Array, now: number) => VerifiedPresence;
  #maxRecords: number;
  #self: Address | undefined;
  #perSource: RateLimiter;
  #perKey: RateLimiter;

  #byKey = new Map<string, Entry>();
  #byAddress = new Claims();
  #byHostname = new Claims();
  #recordBytes = 0;
  #lastFullSweep = -Infinity;
  // Expired records of keys whose record named this rendezvous as a
  // mailbox, oldest retained first, and who holds each address among them.
  #retained = new Map<string, Entry>();
  #retainedByAddress = new Claims();
  #retainedBytes = 0;
  // The highest serial of keys whose record went, until no record signed
  // before it can still be valid: an older record replayed then is stale.
  #gone = new Map<string, { serial: number; until: number }>();

  #dropped = Object.fromEntries(
    Object.keys(PUBLISH_REFUSALS).map((r) => [r, 0]),
  ) as Record<PublishRefusal, number>;

  /** Creates an empty table; throws `RangeError` for a `maxRecords` below 1 or a bad rate. */
  constructor(options: RecordStoreOptions = {}) {
    const {
      now = Date.now,
      maxRecords = RENDEZVOUS_MAX_RECORDS,
      perSource = PUBLISH_PER_SOURCE,
      perKey = PUBLISH_PER_KEY,
      maxSources = PUBLISH_MAX_SOURCES,
      verify = verifyPresence,
      self,
    } = options;
    if (!Number.isInteger(maxRecords) || maxRecords < 1) {
      throw new RangeError(`Invalid maxRecords ${maxRecords}: expected an integer of at least 1`);
    }
    this.#now = now;
    this.#verify = verify;
    this.#maxRecords = maxRecords;
    this.#self = self;
    this.#perSource = new RateLimiter({ ...perSource, maxKeys: maxSources, now });
    // Keys reach this limiter only with a valid stamp and signature: room
    // for every stored key and as many again that are refused or new.
    this.#perKey = new RateLimiter({ ...perKey, maxKeys: 2 * maxRecords, now });
  }

  /** Estimated memory of the stored and retained records: their bytes plus {@linkcode RECORD_OVERHEAD_BYTES} each. */
  get bytes(): number {
    return this.#recordBytes + this.#retainedBytes +
      (this.#byKey.size + this.#retained.size) * RECORD_OVERHEAD_BYTES;
  }

  /**
   * Stores a record published from the IP `source`, or refuses it with a
   * counted reason. Publishing the same bytes again is accepted unchanged.
   */
  publish(bytes: Uint8Array, source: string): PublishResult {
    if (bytes.length > MAX_PRESENCE_RECORD_SIZE) return this.#refuse("too_large");
    if (!this.#perSource.allow(source)) return this.#refuse("rate_limited");
    const now = this.#now();
    let verified: VerifiedPresence;
    try {
      verified = this.#verify(bytes, now);
    } catch (e) {
      if (e instanceof PresenceError) return this.#refuse(e.reason);
      throw e;
    }
    const { record, address } = verified;
    // verifyPresence tolerates clock skew; a record already expired by this
    // table's clock would never be returned, so it is not worth storing.
    if (record.expiresAt <= now) return this.#refuse("expired");
    const key = binaryString(record.publicKey);
    if (!this.#perKey.allow(key)) return this.#refuse("rate_limited");
    if (record.visibility === "private" && record.endpoints.length > 0) {
      return this.#refuse("private_endpoints");
    }

    let stored = this.#byKey.get(key);
    if (stored !== undefined && stored.expiresAt <= now) {
      // Its claims lapsed with it: a returning key claims names anew, last.
      this.#remove(stored);
      stored = undefined;
    }
    const gone = this.#gone.get(key);
    if (gone !== undefined && (gone.until <= now || record.serial > gone.serial)) {
      this.#gone.delete(key);
    } else if (gone !== undefined) return this.#refuse("stale");
    const binary = binaryString(verified.bytes);
    if (stored !== undefined) {
      if (record.serial === stored.serial && binary === stored.bytes) {
        return { ok: true, changed: false, address, conflict: this.#conflictOf(stored, now) };
      }
      if (record.serial <= stored.serial) return this.#refuse("stale");
    } else if (this.#byKey.size >= this.#maxRecords) {
      if (now - this.#lastFullSweep >= FULL_SWEEP_INTERVAL_MS) this.sweep();
      if (this.#byKey.size >= this.#maxRecords) return this.#refuse("full");
    }

    const entry: Entry = {
      key,
      bytes: binary,
      address,
      hostname: record.hostname,
      visibility: record.visibility,
      serial: record.serial,
      expiresAt: record.expiresAt,
      mailbox: this.#self !== undefined && record.mailboxes.includes(this.#self),
    };
    if (stored !== undefined) this.#replace(stored, entry);
    else this.#insert(entry);
    // A newer record supersedes the one retained (and says whether we are still a mailbox).
    this.#unretain(key);
    return { ok: true, changed: true, address, conflict: this.#conflictOf(entry, now) };
  }

  /**
   * The live record holding `address` (the earliest key to claim it), else
   * the retained one (the earliest retained), or null.
   */
  lookupByAddress(address: Address): FoundRecord | null {
    const now = this.#now();
    const [holder] = this.#live(this.#byAddress, address, now, 1);
    if (holder !== undefined) return found(holder);
    for (const key of this.#retainedByAddress.claimants(address)) {
      const entry = this.#retainedOf(key, now);
      if (entry !== undefined) return found(entry);
    }
    return null;
  }

  /** The live record of the key with hex `keyHex`, else its retained one, or null. */
  lookupByKey(keyHex: string): FoundRecord | null {
    const key = keyOfHex(keyHex);
    if (key === null) return null;
    const now = this.#now();
    const entry = this.#liveOf(key, now) ?? this.#retainedOf(key, now);
    return entry === undefined ? null : found(entry);
  }

  /**
   * Whether this rendezvous keeps the mailbox of the key with hex `keyHex`:
   * its live record, or else its retained one, names `self`.
   */
  hostsMailbox(keyHex: string): boolean {
    const key = keyOfHex(keyHex);
    if (key === null) return false;
    const now = this.#now();
    const entry = this.#liveOf(key, now) ?? this.#retainedOf(key, now);
    return entry?.mailbox ?? false;
  }

  /** The live record bound to hostname `name` and the other live claimants, or null. */
  lookupByHostname(name: string): FoundHostname | null {
    const [bound, ...others] = this.#live(this.#byHostname, name, this.#now(), 1 + MAX_CONFLICTS);
    if (bound === undefined) return null;
    return {
      bound: found(bound),
      conflicts: others.map((e) => ({
        address: e.address,
        fingerprint: fingerprint(bytesOfBinary(e.key)),
      })),
    };
  }

  /**
   * Removes every expired record (retaining mailbox owners') and every
   * retained record past its retention; returns how many expired records
   * left the live table.
   */
  sweep(): number {
    const now = this.#now();
    this.#lastFullSweep = now;
    for (const key of this.#retained.keys()) this.#retainedOf(key, now);
    let removed = 0;
    for (const entry of this.#byKey.values()) {
      if (entry.expiresAt <= now) {
        this.#remove(entry);
        removed++;
      }
    }
    return removed;
  }

  /**
   * Forgets the publish rates of sources and keys that are full again (see
   * `RateLimiter.forgetFull`), for the owner's timer; returns how many.
   */
  forgetFull(): number {
    return this.#perSource.forgetFull() + this.#perKey.forgetFull();
  }

  /** Counts of records, hostnames and refusals by reason (a copy). */
  stats(): RecordStoreStats {
    return {
      records: this.#byKey.size,
      retained: this.#retained.size,
      hostnames: this.#byHostname.size,
      dropped: { ...this.#dropped },
    };
  }

  #refuse(reason: PublishRefusal): PublishResult {
    this.#dropped[reason]++;
    return { ok: false, reason };
  }

  /** Live claimants of `name`, earliest first, at most `limit`; removes the expired ones met. */
  #live(claims: Claims, name: string, now: number, limit: number): Entry[] {
    const out: Entry[] = [];
    for (const key of claims.claimants(name)) {
      const entry = this.#byKey.get(key);
      if (entry === undefined) continue;
      if (entry.expiresAt <= now) {
        this.#remove(entry);
        continue;
      }
      out.push(entry);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** The key's live record, or undefined; an expired one met is removed (and retained if a mailbox's). */
  #liveOf(key: string, now: number): Entry | undefined {
    const entry = this.#byKey.get(key);
    if (entry === undefined || entry.expiresAt > now) return entry;
    this.#remove(entry);
    return undefined;
  }

  /** The key's retained record, or undefined; one past its retention is removed. */
  #retainedOf(key: string, now: number): Entry | undefined {
    const entry = this.#retained.get(key);
    if (entry === undefined || entry.expiresAt + MAILBOX_RETENTION_MS > now) return entry;
    this.#unretain(key);
    return undefined;
  }

  #retain(entry: Entry): void {
    this.#unretain(entry.key);
    while (this.#retained.size >= this.#maxRecords) {
      this.#unretain(this.#retained.keys().next().value!);
    }
    this.#retained.set(entry.key, entry);
    this.#retainedByAddress.claim(entry.address, entry.key);
    this.#retainedBytes += entry.bytes.length;
  }

  #unretain(key: string): void {
    const entry = this.#retained.get(key);
    if (entry === undefined) return;
    this.#retained.delete(key);
    this.#retainedByAddress.release(entry.address, key);
    this.#retainedBytes -= entry.bytes.length;
  }

  #conflictOf(entry: Entry, now: number): HostnameConflict | null {
    if (entry.hostname === "") return null;
    const [holder] = this.#live(this.#byHostname, entry.hostname, now, 1);
    if (holder === undefined || holder.key === entry.key) return null;
    return { hostname: entry.hostname, boundTo: holder.address };
  }

  #insert(entry: Entry): void {
    this.#byKey.set(entry.key, entry);
    this.#byAddress.claim(entry.address, entry.key);
    if (entry.hostname !== "") this.#byHostname.claim(entry.hostname, entry.key);
    this.#recordBytes += entry.bytes.length;
  }

  #replace(old: Entry, entry: Entry): void {
    this.#byKey.set(entry.key, entry);
    if (old.address !== entry.address) {
      this.#byAddress.release(old.address, old.key);
      this.#byAddress.claim(entry.address, entry.key);
    }
    if (old.hostname !== entry.hostname) {
      if (old.hostname !== "") this.#byHostname.release(old.hostname, old.key);
      if (entry.hostname !== "") this.#byHostname.claim(entry.hostname, entry.key);
    }
    this.#recordBytes += entry.bytes.length - old.bytes.length;
  }

  #remove(entry: Entry): void {
    if (this.#gone.size >= this.#maxRecords) this.#gone.delete(this.#gone.keys().next().value!);
    this.#gone.set(entry.key, {
      serial: entry.serial,
      until: this.#now() + MAX_PRESENCE_LIFETIME_MS + PRESENCE_CLOCK_SKEW_MS,
    });
    this.#byKey.delete(entry.key);
    this.#byAddress.release(entry.address, entry.key);
    if (entry.hostname !== "") this.#byHostname.release(entry.hostname, entry.key);
    this.#recordBytes -= entry.bytes.length;
    if (entry.mailbox) this.#retain(entry);
  }
}
