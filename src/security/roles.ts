/**
 * The roles file (`AUTH_ROLES_FILE`): which operations each role may perform on which names, the
 * role's rate limits, and which client-certificate names carry which roles. A file rather than
 * state replicated in group 0: it is reviewed and deployed like the rest of a node's
 * configuration, the same file goes to every node, and it is re-read on SIGHUP.
 *
 * ```json
 * {
 *   "roles": {
 *     "orders-worker": { "allow": ["lock:acquire orders/*", "queue:consume orders"],
 *                        "rate": { "requestsPerSec": 500, "bytesPerSec": 1048576 } },
 *     "operator": { "allow": ["admin:*", "status", "queue:read", "lock:read"] }
 *   },
 *   "certificates": { "billing-1": ["orders-worker"] }
 * }
 * ```
 */
import { readFileSync } from "node:fs";
import { parseGrant, type Grant } from "./permissions.ts";

/** Requests/s and payload bytes/s one identity may use; a burst of one second's worth. */
export interface RateLimit {
  readonly requestsPerSec: number | null;
  readonly bytesPerSec: number | null;
}

export interface Role {
  readonly name: string;
  readonly grants: readonly Grant[];
  readonly rate: RateLimit | null;
}

export interface RoleBook {
  readonly roles: ReadonlyMap<string, Role>;
  /** Client-certificate common names (or DNS/URI subject alternative names) → role names. */
  readonly certificates: ReadonlyMap<string, readonly string[]>;
}

/** A book with no roles: only the shared AUTH_TOKEN (all-powerful) can authenticate. */
export const EMPTY_ROLE_BOOK: RoleBook = { roles: new Map(), certificates: new Map() };

/** Reads and checks a roles file. @throws Error naming the file and every problem in it. */
export function loadRoleBook(file: string): RoleBook {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`cannot read the roles file ${file}: ${(err as Error).message}`, { cause: err });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`the roles file ${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseRoleBook(json, file);
}

/** Checks a parsed roles file. @throws Error listing every problem. */
export function parseRoleBook(json: unknown, where = "roles file"): RoleBook {
  const problems: string[] = [];
  const roles = new Map<string, Role>();
  const certificates = new Map<string, readonly string[]>();
  if (!isObject(json)) throw new Error(`${where}: expected an object with "roles" (and optionally "certificates")`);
  for (const k of Object.keys(json)) if (k !== "roles" && k !== "certificates") problems.push(`unknown top-level field "${k}"`);
  const rolesJson = json.roles ?? {};
  if (!isObject(rolesJson)) problems.push(`"roles" must be an object of role name → {allow, rate}`);
  else {
    for (const [name, r] of Object.entries(rolesJson)) {
      const role = parseRole(name, r, problems);
      if (role) roles.set(name, role);
    }
  }
  const certsJson = json.certificates ?? {};
  if (!isObject(certsJson)) problems.push(`"certificates" must be an object of certificate name → [role, …]`);
  else {
    for (const [cn, list] of Object.entries(certsJson)) {
      if (!Array.isArray(list) || !list.every((x) => typeof x === "string")) {
        problems.push(`certificates."${cn}" must be a list of role names`);
        continue;
      }
      for (const r of list) if (!roles.has(r)) problems.push(`certificates."${cn}" names the role "${r}", which is not defined`);
      certificates.set(cn, list as string[]);
    }
  }
  if (problems.length > 0) throw new Error(`${where}: ${problems.join("; ")}`);
  return { roles, certificates };
}

function parseRole(name: string, r: unknown, problems: string[]): Role | null {
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) problems.push(`role name "${name}" must be 1-64 letters, digits, '_', '.', ':' or '-'`);
  if (!isObject(r) || !Array.isArray(r.allow)) {
    problems.push(`roles."${name}" must be {"allow": ["<action> [pattern]", …], "rate"?: {…}}`);
    return null;
  }
  for (const k of Object.keys(r)) if (k !== "allow" && k !== "rate") problems.push(`roles."${name}" has an unknown field "${k}"`);
  const grants: Grant[] = [];
  for (const g of r.allow) {
    if (typeof g !== "string") {
      problems.push(`roles."${name}".allow must hold strings`);
      continue;
    }
    try {
      grants.push(parseGrant(g));
    } catch (err) {
      problems.push(`roles."${name}": ${(err as Error).message}`);
    }
  }
  let rate: RateLimit | null = null;
  if (r.rate !== undefined) {
    const rr = r.rate;
    const rateOf = (k: string): number | null => {
      const v = isObject(rr) ? rr[k] : undefined;
      if (v === undefined) return null;
      if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
        problems.push(`roles."${name}".rate.${k} must be a positive number`);
        return null;
      }
      return v;
    };
    if (!isObject(rr)) problems.push(`roles."${name}".rate must be {"requestsPerSec"?, "bytesPerSec"?}`);
    else for (const k of Object.keys(rr)) if (k !== "requestsPerSec" && k !== "bytesPerSec") problems.push(`roles."${name}".rate has an unknown field "${k}"`);
    rate = { requestsPerSec: rateOf("requestsPerSec"), bytesPerSec: rateOf("bytesPerSec") };
  }
  return { name, grants, rate };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
