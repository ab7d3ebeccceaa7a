/**
 * What each client request needs: an action (`service:verb`) on a resource (the lock, queue, cache
 * key or KV key it names). Roles grant actions on name patterns; a request runs only when one of
 * its identity's grants covers it.
 */
import { Op } from "../../protocol/index.ts";

/** The actions a role can grant. `*` as a verb grants every verb of the service. */
export const ACTIONS = [
  "kv:get",
  "kv:put",
  "kv:delete",
  "lock:acquire",
  "lock:read",
  "queue:enqueue",
  "queue:consume",
  "queue:read",
  "queue:manage",
  "cache:get",
  "cache:set",
  "admin:membership",
  "admin:transfer",
  "admin:drain",
  "admin:backup",
  "status",
] as const;
export type Action = (typeof ACTIONS)[number];

/**
 * The resource a request acts on: a name from its body; `some` for requests that name none but
 * belong to an action (opening a lock session needs some `lock:acquire` grant); `all` for requests
 * that reveal every resource of a service (they need the pattern `*`).
 */
export type Target = { kind: "name"; name: string | null } | { kind: "some" } | { kind: "all" };

/**
 * What a request needs: an action on the name in one of its fields, on `some` name (any grant of
 * the action will do) or on `all` names (the grant's pattern must be `*`).
 */
export interface Requirement {
  readonly action: Action;
  readonly resource: string | "some" | "all";
}

/** The target of `body` under `req`. */
export function targetOf(req: Requirement, body: Readonly<Record<string, unknown>>): Target {
  if (req.resource === "some" || req.resource === "all") return { kind: req.resource };
  const v = body[req.resource];
  return { kind: "name", name: typeof v === "string" ? v : null };
}

/** Every client request but HELLO and PING (which any authenticated connection may send). */
export const REQUIREMENTS: ReadonlyMap<number, Requirement> = new Map<number, Requirement>([
  [Op.STATUS, { action: "status", resource: "all" }],
  [Op.CACHE_STATS, { action: "status", resource: "all" }],
  [Op.KV_GET, { action: "kv:get", resource: "key" }],
  [Op.KV_PUT, { action: "kv:put", resource: "key" }],
  [Op.KV_DELETE, { action: "kv:delete", resource: "key" }],
  [Op.ADMIN_TRANSFER_LEADER, { action: "admin:transfer", resource: "all" }],
  [Op.ADMIN_ADD_NODE, { action: "admin:membership", resource: "nodeId" }],
  [Op.ADMIN_REMOVE_NODE, { action: "admin:membership", resource: "nodeId" }],
  [Op.ADMIN_DRAIN, { action: "admin:drain", resource: "all" }],
  [Op.ADMIN_BACKUP, { action: "admin:backup", resource: "all" }],
  [Op.ADMIN_BACKUP_CHUNK, { action: "admin:backup", resource: "all" }],
  [Op.ADMIN_SHARDS, { action: "status", resource: "all" }],
  [Op.ADMIN_REBALANCE, { action: "admin:membership", resource: "all" }],
  [Op.LOCK_SESSION_OPEN, { action: "lock:acquire", resource: "some" }],
  [Op.LOCK_KEEPALIVE, { action: "lock:acquire", resource: "some" }],
  [Op.LOCK_SESSION_CLOSE, { action: "lock:acquire", resource: "some" }],
  [Op.LOCK_ACQUIRE, { action: "lock:acquire", resource: "resource" }],
  [Op.LOCK_RELEASE, { action: "lock:acquire", resource: "resource" }],
  [Op.LOCK_STATUS, { action: "lock:read", resource: "resource" }],
  [Op.LOCK_LIST, { action: "lock:read", resource: "all" }],
  [Op.QUEUE_ENQUEUE, { action: "queue:enqueue", resource: "queue" }],
  [Op.QUEUE_CONSUME, { action: "queue:consume", resource: "queue" }],
  [Op.QUEUE_ACK, { action: "queue:consume", resource: "queue" }],
  [Op.QUEUE_NACK, { action: "queue:consume", resource: "queue" }],
  [Op.QUEUE_SUBSCRIBE, { action: "queue:consume", resource: "queue" }],
  [Op.QUEUE_UNSUBSCRIBE, { action: "queue:consume", resource: "some" }],
  [Op.QUEUE_STATS, { action: "queue:read", resource: "queue" }],
  [Op.QUEUE_DLQ_LIST, { action: "queue:read", resource: "queue" }],
  [Op.QUEUE_LIST, { action: "queue:read", resource: "all" }],
  [Op.QUEUE_CONFIGURE, { action: "queue:manage", resource: "queue" }],
  [Op.QUEUE_DLQ_REDRIVE, { action: "queue:manage", resource: "queue" }],
  [Op.QUEUE_PURGE, { action: "queue:manage", resource: "queue" }],
  [Op.CACHE_GET, { action: "cache:get", resource: "key" }],
  [Op.CACHE_STATE, { action: "cache:get", resource: "key" }],
  [Op.CACHE_NEAR_ACK, { action: "cache:get", resource: "some" }],
  // A renewal extends copies a CACHE_GET (checked) already handed out: some cache:get suffices.
  [Op.CACHE_NEAR_RENEW, { action: "cache:get", resource: "some" }],
  [Op.CACHE_SET, { action: "cache:set", resource: "key" }],
  [Op.CACHE_DELETE, { action: "cache:set", resource: "key" }],
  [Op.CACHE_INVALIDATE, { action: "cache:set", resource: "key" }],
]);

/** Requests every authenticated connection may send. */
export const ALWAYS_ALLOWED: ReadonlySet<number> = new Set([Op.HELLO, Op.PING]);

/** One grant of a role: an action (or every action of a service, or everything) on a name pattern. */
export interface Grant {
  /** `"*"`, `"<service>:*"` or an action. */
  readonly action: string;
  readonly pattern: string;
  readonly matcher: RegExp;
}

/**
 * Parses `"<action> [pattern]"` (the pattern defaults to `*`). Patterns are names in which `*`
 * stands for any run of characters, `/` and `.` included. @throws Error naming what is wrong.
 */
export function parseGrant(text: string): Grant {
  const parts = text.trim().split(/\s+/);
  if (parts.length === 0 || parts.length > 2 || parts[0] === "") throw new Error(`"${text}" is not "<action> [pattern]", e.g. "lock:acquire orders/*"`);
  const action = parts[0]!;
  const pattern = parts[1] ?? "*";
  const service = action.endsWith(":*") ? action.slice(0, -2) : null;
  const known = action === "*" || (ACTIONS as readonly string[]).includes(action) || (service !== null && ACTIONS.some((a) => a.startsWith(`${service}:`)));
  if (!known) throw new Error(`"${action}" is not an action; use one of ${ACTIONS.join(", ")}, "<service>:*" or "*"`);
  const matcher = new RegExp(`^${pattern.split("*").map(escapeRegExp).join(".*")}$`, "s");
  return { action, pattern, matcher };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
}

function coversAction(g: Grant, action: Action): boolean {
  return g.action === "*" || g.action === action || (g.action.endsWith(":*") && action.startsWith(g.action.slice(0, -1)));
}

/** Whether `grants` allow `action` on `target`. */
export function allows(grants: readonly Grant[], action: Action, target: Target): boolean {
  return grants.some((g) => {
    if (!coversAction(g, action)) return false;
    switch (target.kind) {
      case "some":
        return true;
      case "all":
        return g.pattern === "*";
      case "name":
        // No usable name: the handler refuses the request as INVALID_ARGUMENT, so it does nothing;
        // an identity with any grant of the action hears that instead of a misleading denial.
        return target.name === null || g.matcher.test(target.name);
    }
  });
}

/** How a denied request's target reads in an error message and in the audit log. */
export function describeTarget(t: Target): string {
  return t.kind === "name" ? (t.name ?? "(no name)") : t.kind === "all" ? "*" : "(any)";
}
