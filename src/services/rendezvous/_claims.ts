/**
 * First-claim name index of the rendezvous record table: for each name
 * (hostname or address), the keys claiming it in the order they claimed it.
 * The earliest claimant still present holds the name; whoever removes
 * expired claimants decides when the name passes on.
 *
 * @module
 */

/**
 * Keys claiming each name, earliest first. Most names have one claimant:
 * its key is stored alone, and an array only once a second key claims the
 * name (a table of 100,000 records holds two names each; an array apiece
 * would cost about 10 MB more).
 */
export class Claims {
  #names = new Map<string, string | string[]>();

  /** Number of names with at least one claimant. */
  get size(): number {
    return this.#names.size;
  }

  /** Adds `key` as the latest claimant of `name`, unless it already claims it. */
  claim(name: string, key: string): void {
    const keys = this.#names.get(name);
    if (keys === undefined) this.#names.set(name, key);
    else if (typeof keys === "string") {
      if (keys !== key) this.#names.set(name, [keys, key]);
    } else if (!keys.includes(key)) keys.push(key);
  }

  /** Removes `key`'s claim on `name`, if it has one. */
  release(name: string, key: string): void {
    const keys = this.#names.get(name);
    if (keys === undefined) return;
    if (typeof keys === "string") {
      if (keys === key) this.#names.delete(name);
      return;
    }
    const at = keys.indexOf(key);
    if (at >= 0) keys.splice(at, 1);
    if (keys.length === 1) this.#names.set(name, keys[0]!);
    else if (keys.length === 0) this.#names.delete(name);
  }

  /** The keys claiming `name`, earliest first (a copy, safe to release while iterating). */
  claimants(name: string): string[] {
    const keys = this.#names.get(name);
    return keys === undefined ? [] : typeof keys === "string" ? [keys] : keys.slice();
  }
}
