import { decideClusters } from "./clusters.ts";
import { search } from "./search.ts";
import { Kind, type Item, type SearchVerdict, type Witness } from "./types.ts";

/** The exact decision for one key: clusters when written values are unique, else the search. */
export function decide(items: readonly Item[], engine: "auto" | "search", maxSteps: number, deadline: number): { verdict: SearchVerdict; steps: number; witness: Witness | null } {
  if (engine === "auto") {
    const seen = new Set<number>();
    let unique = true;
    for (const it of items) {
      if (it.kind !== Kind.Write) continue;
      if (seen.has(it.value)) unique = false;
      seen.add(it.value);
    }
    if (unique) return decideClusters(items, maxSteps, deadline);
  }
  return { ...search(items, maxSteps, deadline), witness: null };
}
