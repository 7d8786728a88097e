/**
 * What a topic pattern matches, and the broker's index of subscriptions by
 * pattern. The grammar of topics and patterns is part of the bytes
 * (`wire/pubsub_frame.ts` refuses a frame with a malformed one); what they
 * match is the broker's: a topic matches itself, `prefix.*` every topic
 * strictly below `prefix`, and `*` every topic.
 *
 * @module
 */

/**
 * Whether a valid `pattern` matches a valid `topic`: the reference semantics
 * ({@linkcode TopicIndex} gives the same result in one lookup per label).
 *
 * @example
 * ```ts
 * import { patternMatches } from "./topic.ts";
 * patternMatches("a.b.*", "a.b.c.d"); // true
 * patternMatches("a.b.*", "a.b"); // false
 * ```
 */
export function patternMatches(pattern: string, topic: string): boolean {
  if (pattern === "*") return true;
  if (pattern.endsWith(".*")) return topic.startsWith(pattern.slice(0, -1));
  return topic === pattern;
}

/** Items (subscriptions) by valid pattern, found by topic without scanning them all. */
export class TopicIndex<T> {
  #exact = new Map<string, Set<T>>();
  #prefix = new Map<string, Set<T>>();
  #all = new Set<T>();

  /** Files `item` under `pattern`. */
  add(pattern: string, item: T): void {
    if (pattern === "*") this.#all.add(item);
    else if (pattern.endsWith(".*")) setIn(this.#prefix, pattern.slice(0, -2)).add(item);
    else setIn(this.#exact, pattern).add(item);
  }

  /** Removes `item` filed under `pattern`. */
  delete(pattern: string, item: T): void {
    if (pattern === "*") this.#all.delete(item);
    else if (pattern.endsWith(".*")) unsetIn(this.#prefix, pattern.slice(0, -2), item);
    else unsetIn(this.#exact, pattern, item);
  }

  /** Calls `fn` for every item whose pattern matches `topic`: one lookup per label. */
  forEach(topic: string, fn: (item: T) => void): void {
    this.#exact.get(topic)?.forEach((item) => fn(item));
    for (let i = topic.indexOf("."); i !== -1; i = topic.indexOf(".", i + 1)) {
      this.#prefix.get(topic.slice(0, i))?.forEach((item) => fn(item));
    }
    this.#all.forEach((item) => fn(item));
  }
}

function setIn<T>(map: Map<string, Set<T>>, key: string): Set<T> {
  let set = map.get(key);
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  }
  return set;
}

function unsetIn<T>(map: Map<string, Set<T>>, key: string, item: T): void {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(item);
  if (set.size === 0) map.delete(key);
}
