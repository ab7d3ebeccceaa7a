/**
 * A binary min-heap under a caller's comparator. With a total order (ties broken on a unique
 * field) the order in which items leave depends only on the set of items, not on the order they
 * were pushed in: that is why no heap is part of a snapshot — a replica that rebuilds one from
 * the state pops the same items in the same order as one that built it command by command.
 */
export class MinHeap<T> {
  #h: T[] = [];
  readonly #cmp: (a: T, b: T) => number;

  constructor(cmp: (a: T, b: T) => number) {
    this.#cmp = cmp;
  }

  get size(): number {
    return this.#h.length;
  }

  clear(): void {
    this.#h = [];
  }

  /** The items in heap (not sorted) order. */
  items(): readonly T[] {
    return this.#h;
  }

  push(x: T): void {
    const h = this.#h;
    h.push(x);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.#cmp(h[i]!, h[p]!) >= 0) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  peek(): T | undefined {
    return this.#h[0];
  }

  pop(): T | undefined {
    const h = this.#h;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.#cmp(h[l]!, h[m]!) < 0) m = l;
        if (r < h.length && this.#cmp(h[r]!, h[m]!) < 0) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
