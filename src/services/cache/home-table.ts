/**
 * Which node is home of a key, as this node knows it. Pure.
 *
 * A node becomes home of a set of keys by a *takeover*: it picks a view (the members it can
 * reach, a majority), and claims the keys the consistent-hash ring over that view maps to it.
 * Every node in the view must accept the takeover (dropping its copies of the claimed keys and
 * any directory it kept for them) before the taker serves them. Takeovers are totally ordered by
 * (stamp, taker); a key's home is the taker of the highest accepted takeover that claims it.
 * A node accepts only takeovers above every one it has seen, so all nodes agree on that order.
 */
import { HashRing } from "../ring/hash-ring.ts";

export interface Takeover {
  readonly stamp: number;
  readonly taker: string;
  /** The members the taker could reach, sorted. */
  readonly view: readonly string[];
}

export interface Home {
  readonly node: string;
  readonly stamp: number;
}

interface Entry extends Takeover {
  readonly ring: HashRing;
}

/** Total order of takeovers: by stamp, then by taker id. */
export function compareTakeovers(a: { stamp: number; taker: string }, b: { stamp: number; taker: string }): number {
  return a.stamp - b.stamp || (a.taker < b.taker ? -1 : a.taker > b.taker ? 1 : 0);
}

export class HomeTable {
  /** The latest takeover of each taker, highest first. */
  #entries: Entry[] = [];
  #maxSeen: { stamp: number; taker: string } = { stamp: 0, taker: "" };
  readonly #rings = new Map<string, HashRing>();

  /** The highest stamp seen in any takeover. */
  get clock(): number {
    return this.#maxSeen.stamp;
  }

  /** Whether a takeover may be accepted: it must be above every takeover seen so far. */
  canAccept(t: { stamp: number; taker: string }): boolean {
    return compareTakeovers(t, this.#maxSeen) > 0;
  }

  /** Records that a takeover was seen (started by this node, or offered by another). */
  see(t: { stamp: number; taker: string }): void {
    if (compareTakeovers(t, this.#maxSeen) > 0) this.#maxSeen = { stamp: t.stamp, taker: t.taker };
  }

  /** Makes `t` its taker's current takeover (replacing the taker's previous one). */
  install(t: Takeover): void {
    this.see(t);
    this.#entries = this.#entries.filter((e) => e.taker !== t.taker);
    this.#entries.push({ ...t, ring: this.ringOf(t.view) });
    this.#entries.sort((a, b) => compareTakeovers(b, a));
  }

  /** Forgets `taker`'s takeover (it is starting a new one, or lost its majority). */
  remove(taker: string): void {
    this.#entries = this.#entries.filter((e) => e.taker !== taker);
  }

  clear(): void {
    this.#entries = [];
  }

  /** Whether takeover `t` claims `key`. */
  claims(t: Takeover, key: string): boolean {
    return this.ringOf(t.view).lookup(key) === t.taker;
  }

  /** The home of `key`, or null when no accepted takeover claims it. */
  homeOf(key: string): Home | null {
    for (const e of this.#entries) if (e.ring.lookup(key) === e.taker) return { node: e.taker, stamp: e.stamp };
    return null;
  }

  /** The current takeovers, highest first. */
  takeovers(): Takeover[] {
    return this.#entries.map(({ stamp, taker, view }) => ({ stamp, taker, view }));
  }

  ringOf(view: readonly string[]): HashRing {
    const id = view.join(",");
    let ring = this.#rings.get(id);
    if (!ring) {
      if (this.#rings.size > 64) this.#rings.clear();
      this.#rings.set(id, (ring = new HashRing(view)));
    }
    return ring;
  }
}
