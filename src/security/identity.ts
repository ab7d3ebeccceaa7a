/** Who is on the other end of a client connection, and what they may do. */
import type { Grant } from "./permissions.ts";
import { parseGrant } from "./permissions.ts";
import type { RateLimit, RoleBook } from "./roles.ts";

export interface Identity {
  /** The token's `sub`, the certificate's name, `token` for the shared AUTH_TOKEN, `anonymous` on an open node. */
  readonly subject: string;
  /** How the identity was proven. */
  readonly via: "open" | "token" | "jwt" | "certificate";
  readonly roles: readonly string[];
  readonly grants: readonly Grant[];
  /** When the proof stops being valid (a token's `exp`, ms since the epoch), or null. */
  readonly expiresAt: number | null;
  /** The most generous rate among its roles; null dimensions are unlimited. */
  readonly rate: RateLimit | null;
}

const EVERYTHING: readonly Grant[] = [parseGrant("*")];

/** The all-powerful identity: the shared AUTH_TOKEN, or anyone on a node with no access control. */
export function superIdentity(via: "open" | "token"): Identity {
  return { subject: via === "open" ? "anonymous" : "token", via, roles: [], grants: EVERYTHING, expiresAt: null, rate: null };
}

/** An identity holding `roleNames` (names the book does not define grant nothing). */
export function identityOf(subject: string, via: "jwt" | "certificate", roleNames: readonly string[], book: RoleBook, expiresAt: number | null): Identity {
  const roles = roleNames.map((n) => book.roles.get(n)).filter((r) => r !== undefined);
  const grants = roles.flatMap((r) => r.grants);
  // Any role without a limit makes the identity unlimited in that dimension; else the largest wins.
  const most = (k: keyof RateLimit): number | null => {
    let best = 0;
    for (const r of roles) {
      const v = r.rate?.[k] ?? null;
      if (v === null) return null;
      best = Math.max(best, v);
    }
    return roles.length === 0 ? null : best;
  };
  const requestsPerSec = most("requestsPerSec");
  const bytesPerSec = most("bytesPerSec");
  const rate = requestsPerSec === null && bytesPerSec === null ? null : { requestsPerSec, bytesPerSec };
  return { subject, via, roles: roles.map((r) => r.name), grants, expiresAt, rate };
}
