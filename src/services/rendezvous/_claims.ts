/**
 * First-claim name index of the rendezvous record table: for each name
 * (hostname or address), the keys claiming it in the order they claimed it.
 * The earliest claimant still present holds the name; whoever removes
 * expired claimants decides when the name passes on.
 *
 * @module
 */

/** Keys claiming each name, earliest first; one array per name, most hold a single key. */
export class Claims {
  #names = new Map<string, string[]>();

  /** Number of names with at least one claimant. */
  get size(): number {
    return this.#names.size;
  }

  /** Adds `key` as the latest claimant of `name`, unless it already claims it. */
  claim(name: string, key: string): void {
    const keys = this.#names.get(name);
    if (keys === undefined) this.#names.set(name, [key]);
    else if (!keys.includes(key)) keys.push(key);
  }

  /** Removes `key`'s claim on `name`, if it has one. */
  release(name: string, key: string): void {
    const keys = this.#names.get(name);
    if (keys === undefined) return;
    const at = keys.indexOf(key);
    if (at >= 0) keys.splice(at, 1);
    if (keys.length === 0) this.#names.delete(name);
  }

  /** The keys claiming `name`, earliest first (a copy, safe to release while iterating). */
  claimants(name: string): string[] {
    return this.#names.get(name)?.slice() ?? [];
  }
}
