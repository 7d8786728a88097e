/**
 * Finds the one record a user means among known peers (pending requests,
 * trusted peers) by full key, fingerprint, address or hostname. More than one
 * match is a `conflict`, never a guess.
 *
 * @module
 */
import { PilotError } from "../errors.ts";
import { isAddressLike, parseAddress } from "../identity/address.ts";
import { fingerprintIn } from "../identity/fingerprint.ts";

/** What a record must have to be matched. */
export interface Matchable {
  /** Full key, hex. */
  public_key: string;
  /** Address. */
  address: string;
  /** Hostname or null. */
  hostname: string | null;
  /** Fingerprint. */
  fingerprint: string;
}

function normalised(text: string): (r: Matchable) => boolean {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return (r) => r.public_key === t.toLowerCase();
  if (isAddressLike(t)) {
    const a = (() => {
      try {
        return parseAddress(t);
      } catch {
        return undefined;
      }
    })();
    if (a !== undefined) return (r) => r.address === a;
  }
  const f = fingerprintIn(t);
  return f === null ? (r) => r.hostname === t : (r) => r.fingerprint === f;
}

/** The one record `text` names among `records`; throws `not_found` or `conflict`. */
export function matchOne<T extends Matchable>(
  text: string,
  records: readonly T[],
  what: string,
): T {
  const hits = records.filter(normalised(text));
  if (hits.length === 0) {
    throw new PilotError(
      "not_found",
      `No ${what} matches "${text}"`,
      `name it by address, hostname, fingerprint or key`,
    );
  }
  if (hits.length > 1) {
    throw new PilotError(
      "conflict",
      `"${text}" matches ${hits.length} ${what}s with different keys`,
      "name it by fingerprint or full key instead",
    );
  }
  return hits[0]!;
}

/** Whether `text` names `record` (used for pre-authorised peers). */
export function matches(text: string, record: Matchable): boolean {
  return normalised(text)(record);
}
