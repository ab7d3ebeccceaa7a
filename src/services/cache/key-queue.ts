/**
 * Runs tasks one at a time per key, in arrival order: the home serializes every request for a
 * key this way, so races between writers resolve in one order. Different keys run concurrently.
 */
export class KeyQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Whether a task for `key` is queued or running. */
  busy(key: string): boolean {
    return this.#tails.has(key);
  }

  /** Runs `task` after every task queued before it for `key`; settles as `task` does. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key);
    // Nothing queued for the key: start now rather than a turn of the microtask queue later.
    const result = prev === undefined ? task() : prev.then(task, task);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }
}
