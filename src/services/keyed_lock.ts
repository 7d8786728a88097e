/**
 * Per-key mutual exclusion: tasks for one key run one at a time in call
 * order, tasks for different keys run side by side. The trust service keeps
 * its decisions about one peer from interleaving this way, without making a
 * local `untrust` wait behind a stranger's requests.
 *
 * @module
 */

/** Runs tasks one at a time per key; memory is one entry per key with a task queued or running. */
export class KeyedLock {
  #tails = new Map<string, Promise<void>>();

  /** Keys with a task queued or running. */
  get size(): number {
    return this.#tails.size;
  }

  /** Runs `task` once every earlier task for `key` has settled; resolves or rejects as it does. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const run = (this.#tails.get(key) ?? Promise.resolve()).then(task);
    const tail = run.then(() => {}, () => {});
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return run;
  }
}
