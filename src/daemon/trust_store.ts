/**
 * The trust store: which peer keys may reach more than port 444. Keyed by
 * the full Ed25519 key (never by address). Persisted atomically in the home;
 * checked on every packet, so a removal takes effect at once.
 *
 * @module
 */
import { join } from "node:path";
import { parseEndpoint } from "../discovery/endpoint.ts";
import { PilotError } from "../errors.ts";
import { verifyStamp } from "../identity/address.ts";
import { isValidPublicKey } from "../identity/ed25519.ts";
import { HOME_FILES, readPrivateFile, StateFile } from "./home.ts";
import type { TrustBook, TrustEntry } from "../services/trust_types.ts";

export type { TrustEntry };

/**
 * A trusted peer as the store keeps it: the trust entry, and where the peer
 * was last authenticated (`endpoint`, `last_seen`), a hint for reaching it
 * after a restart. The hint names no key: the handshake there must still
 * prove the trusted one.
 */
export interface TrustRecord extends TrustEntry {
  /** ISO time the peer was last authenticated at `endpoint` (as of the last write). */
  last_seen?: string;
}

/** Where a trusted peer was authenticated, for {@linkcode TrustStore.remember}. */
export interface SeenAt {
  /** Endpoint text, `IP:PORT` or `[IPv6]:PORT`. */
  endpoint: string;
  /** ISO time. */
  last_seen: string;
}

const KEYS = [
  "public_key",
  "address",
  "hostname",
  "since",
  "mutual",
  "accept_hashes",
  "endpoint",
  "last_seen",
  "static_serial",
];

function bad(path: string, why: string): PilotError {
  return new PilotError(
    "invalid_argument",
    `Trust file "${path}" is unusable: ${why}`,
    "fix or restore the file; the daemon does not overwrite it",
  );
}

function parseEntry(path: string, v: unknown, i: number): TrustRecord {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw bad(path, `entry ${i} is not an object`);
  }
  const o = v as Record<string, unknown>;
  const unknown = Object.keys(o).find((k) => !KEYS.includes(k));
  if (unknown !== undefined) throw bad(path, `entry ${i} has unknown key "${unknown}"`);
  if (typeof o.public_key !== "string" || !/^[0-9a-f]{64}$/.test(o.public_key)) {
    throw bad(path, `entry ${i} has no 64-hex-digit public_key`);
  }
  if (!isValidPublicKey(Uint8Array.fromHex(o.public_key))) {
    throw bad(path, `entry ${i} has a weak or malformed public_key`);
  }
  if (typeof o.address !== "string") throw bad(path, `entry ${i} has no address`);
  if (o.hostname !== null && typeof o.hostname !== "string") {
    throw bad(path, `entry ${i} has a bad hostname`);
  }
  if (typeof o.since !== "string") throw bad(path, `entry ${i} has no since`);
  if (typeof o.mutual !== "boolean") throw bad(path, `entry ${i} has no mutual`);
  const hashes = o.accept_hashes;
  if (
    hashes !== undefined &&
    (!Array.isArray(hashes) ||
      !hashes.every((h) => typeof h === "string" && /^[0-9a-f]{64}$/.test(h)))
  ) {
    throw bad(path, `entry ${i} has bad accept_hashes`);
  }
  return {
    public_key: o.public_key,
    address: o.address,
    hostname: o.hostname,
    since: o.since,
    mutual: o.mutual,
    ...(hashes === undefined ? {} : { accept_hashes: hashes as string[] }),
    ...seenOf(path, o, i),
    ...(serialOf(path, o.static_serial, i)),
  };
}

function seenOf(
  path: string,
  o: Record<string, unknown>,
  i: number,
): { endpoint?: string; last_seen?: string } {
  const out: { endpoint?: string; last_seen?: string } = {};
  if (o.endpoint !== undefined) {
    if (typeof o.endpoint !== "string") throw bad(path, `entry ${i} has a bad endpoint`);
    try {
      parseEndpoint(o.endpoint);
    } catch {
      throw bad(path, `entry ${i} has a bad endpoint ${JSON.stringify(o.endpoint)}`);
    }
    out.endpoint = o.endpoint;
  }
  if (o.last_seen !== undefined) {
    if (typeof o.last_seen !== "string" || Number.isNaN(Date.parse(o.last_seen))) {
      throw bad(path, `entry ${i} has a bad last_seen`);
    }
    out.last_seen = o.last_seen;
  }
  return out;
}

function serialOf(path: string, v: unknown, i: number): { static_serial?: number } {
  if (v === undefined) return {};
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw bad(path, `entry ${i} has a bad static_serial`);
  }
  return { static_serial: v };
}

/** The trust store of one home. */
export class TrustStore implements TrustBook {
  #file: StateFile;
  #entries: Map<string, TrustRecord>;

  private constructor(path: string, entries: Map<string, TrustRecord>) {
    this.#file = new StateFile(path);
    this.#entries = entries;
  }

  /** Loads the home's trust file (an absent file is an empty store). */
  static async load(home: string): Promise<TrustStore> {
    const path = join(home, HOME_FILES.trust);
    const text = await readPrivateFile(path);
    const entries = new Map<string, TrustRecord>();
    if (text === null) return new TrustStore(path, entries);
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      throw bad(path, "not valid JSON");
    }
    const o = v as Record<string, unknown>;
    if (typeof o !== "object" || o === null || o.version !== 1 || !Array.isArray(o.trusted)) {
      throw bad(path, 'expected {"version":1,"trusted":[...]}');
    }
    o.trusted.forEach((e, i) => {
      const entry = parseEntry(path, e, i);
      entries.set(entry.public_key, entry);
    });
    return new TrustStore(path, entries);
  }

  /** Whether a key (hex) is trusted. */
  has(keyHex: string): boolean {
    return this.#entries.has(keyHex);
  }

  /** The entry of a key (hex). */
  get(keyHex: string): TrustRecord | undefined {
    return this.#entries.get(keyHex);
  }

  /**
   * Adds or replaces an entry. Where the peer was last seen is kept when the
   * new entry does not say (the trust flow rewrites entries without it).
   */
  async put(entry: TrustRecord): Promise<void> {
    const old = this.#entries.get(entry.public_key);
    const seen: { endpoint?: string; last_seen?: string } = {};
    if (entry.endpoint === undefined && old?.endpoint !== undefined) {
      seen.endpoint = old.endpoint;
      if (old.last_seen !== undefined) seen.last_seen = old.last_seen;
    }
    this.#entries.set(entry.public_key, { ...entry, ...seen });
    await this.#save();
  }

  /**
   * Records where trusted peers were last authenticated, all in one file
   * write; keys no longer trusted are skipped (no write when none is left).
   */
  async remember(updates: ReadonlyMap<string, SeenAt>): Promise<void> {
    let changed = false;
    for (const [key, seen] of updates) {
      const old = this.#entries.get(key);
      if (old === undefined) continue;
      this.#entries.set(key, { ...old, endpoint: seen.endpoint, last_seen: seen.last_seen });
      changed = true;
    }
    if (changed) await this.#save();
  }

  /** Every trusted peer. */
  list(): TrustRecord[] {
    return [...this.#entries.values()];
  }

  /** Trusts a key; returns false when it already was. */
  async add(entry: TrustEntry): Promise<boolean> {
    if (this.#entries.has(entry.public_key)) return false;
    this.#entries.set(entry.public_key, entry);
    await this.#save();
    return true;
  }

  /** Removes a key; returns false when it was not trusted. */
  async remove(keyHex: string): Promise<boolean> {
    if (!this.#entries.delete(keyHex)) return false;
    await this.#save();
    return true;
  }

  async #save(): Promise<void> {
    await this.#file.write({ version: 1, trusted: this.list() });
  }
}

/** Makes a trust entry for a key with a stamp (used by tests and the trust flow). */
export function trustEntryFor(
  publicKey: Uint8Array,
  stamp: Uint8Array,
  hostname: string | null,
): TrustEntry {
  const address = verifyStamp(publicKey, stamp);
  if (address === null) throw new TypeError("Cannot trust a key whose stamp does not verify");
  return {
    public_key: publicKey.toHex(),
    address,
    hostname,
    since: new Date().toISOString(),
    mutual: false,
  };
}
