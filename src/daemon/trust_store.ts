/**
 * The trust store: which peer keys may reach more than port 444. Keyed by
 * the full Ed25519 key (never by address). Persisted atomically in the home;
 * checked on every packet, so a removal takes effect at once.
 *
 * @module
 */
import { join } from "node:path";
import { PilotError } from "../errors.ts";
import { verifyStamp } from "../identity/address.ts";
import { isValidPublicKey } from "../identity/ed25519.ts";
import { HOME_FILES, readPrivateFile, StateFile } from "./home.ts";
import type { TrustBook, TrustEntry } from "../services/trust_types.ts";

export type { TrustEntry };

const KEYS = [
  "public_key",
  "address",
  "hostname",
  "since",
  "mutual",
  "accept_hashes",
  "endpoint",
  "static_serial",
];

function bad(path: string, why: string): PilotError {
  return new PilotError(
    "invalid_argument",
    `Trust file "${path}" is unusable: ${why}`,
    "fix or restore the file; the daemon does not overwrite it",
  );
}

function parseEntry(path: string, v: unknown, i: number): TrustEntry {
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
    ...(typeof o.endpoint === "string" ? { endpoint: o.endpoint } : {}),
    ...(serialOf(path, o.static_serial, i)),
  };
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
  #entries: Map<string, TrustEntry>;

  private constructor(path: string, entries: Map<string, TrustEntry>) {
    this.#file = new StateFile(path);
    this.#entries = entries;
  }

  /** Loads the home's trust file (an absent file is an empty store). */
  static async load(home: string): Promise<TrustStore> {
    const path = join(home, HOME_FILES.trust);
    const text = await readPrivateFile(path);
    const entries = new Map<string, TrustEntry>();
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
  get(keyHex: string): TrustEntry | undefined {
    return this.#entries.get(keyHex);
  }

  /** Adds or replaces an entry. */
  async put(entry: TrustEntry): Promise<void> {
    this.#entries.set(entry.public_key, entry);
    await this.#save();
  }

  /** Every trusted peer. */
  list(): TrustEntry[] {
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
