import { test } from "node:test";
import assert from "node:assert/strict";
import { Op } from "../../protocol/index.ts";
import { ALWAYS_ALLOWED, REQUIREMENTS, allows, parseGrant, type Target } from "../../src/security/permissions.ts";
import { parseRoleBook } from "../../src/security/roles.ts";
import { identityOf } from "../../src/security/identity.ts";
import { RateLimiter } from "../../src/security/rate-limit.ts";

const name = (n: string | null): Target => ({ kind: "name", name: n });

test("permissions - every client request type needs a permission or is always allowed", () => {
  for (const [opName, type] of Object.entries(Op)) {
    // 2–63 are client requests (64–95 pushes, 96+ peers, 0–1 replies).
    if (type < 2 || type > 63) continue;
    assert.ok(REQUIREMENTS.has(type) || ALWAYS_ALLOWED.has(type), `${opName} has no permission rule`);
  }
  for (const type of REQUIREMENTS.keys()) assert.ok(type >= 2 && type <= 63, `rule for a non-client type ${type}`);
});

test("permissions - patterns: * spans any characters, other characters are literal", () => {
  const g = [parseGrant("lock:acquire orders/*")];
  assert.ok(allows(g, "lock:acquire", name("orders/1")));
  assert.ok(allows(g, "lock:acquire", name("orders/a/b.c")));
  assert.ok(!allows(g, "lock:acquire", name("orders")));
  assert.ok(!allows(g, "lock:acquire", name("payroll/1")));
  assert.ok(!allows(g, "lock:read", name("orders/1")), "another verb");
  const dots = [parseGrant("queue:enqueue jobs.*")];
  assert.ok(allows(dots, "queue:enqueue", name("jobs.email")));
  assert.ok(!allows(dots, "queue:enqueue", name("jobsXemail")), "the dot is literal, not a regex wildcard");
  const exact = [parseGrant("queue:consume emails")];
  assert.ok(allows(exact, "queue:consume", name("emails")));
  assert.ok(!allows(exact, "queue:consume", name("emails2")));
});

test("permissions - service wildcards, everything, some and all targets", () => {
  const kv = [parseGrant("kv:*")];
  assert.ok(allows(kv, "kv:put", name("a")) && allows(kv, "kv:get", name("b")) && allows(kv, "kv:delete", name("c")));
  assert.ok(!allows(kv, "lock:acquire", name("a")));
  const all = [parseGrant("*")];
  assert.ok(allows(all, "admin:membership", name("node_9")) && allows(all, "status", { kind: "all" }));
  const narrow = [parseGrant("lock:read orders/*")];
  assert.ok(!allows(narrow, "lock:read", { kind: "all" }), "listing every resource needs the pattern *");
  assert.ok(allows([parseGrant("lock:read")], "lock:read", { kind: "all" }), "no pattern means *");
  assert.ok(allows([parseGrant("lock:acquire x/*")], "lock:acquire", { kind: "some" }), "a session needs some acquire grant");
  assert.ok(!allows([parseGrant("lock:read")], "lock:acquire", { kind: "some" }));
  // A request with no usable name is refused by its handler (INVALID_ARGUMENT): no denial needed.
  assert.ok(allows(narrow, "lock:read", name(null)));
  assert.ok(!allows([parseGrant("kv:get")], "lock:read", name(null)));
});

test("permissions - bad grants are refused with the reason", () => {
  assert.throws(() => parseGrant("lock:steal x"), /"lock:steal" is not an action/);
  assert.throws(() => parseGrant("lock:acquire a b"), /is not "<action> \[pattern\]"/);
  assert.throws(() => parseGrant(""), /is not "<action> \[pattern\]"/);
  assert.throws(() => parseGrant("nosuch:*"), /is not an action/);
});

test("roles file - every problem is listed; certificates must name defined roles", () => {
  assert.throws(
    () => parseRoleBook({ roles: { ok: { allow: ["kv:get"] }, bad: { allow: ["lock:steal"] }, worse: { allow: "kv:get" }, r: { allow: [], rate: { requestsPerSec: -1 } } }, certificates: { cn: ["missing"] }, extra: 1 }),
    (err: Error) =>
      /unknown top-level field "extra"/.test(err.message) &&
      /roles."bad": "lock:steal" is not an action/.test(err.message) &&
      /roles."worse" must be/.test(err.message) &&
      /rate.requestsPerSec must be a positive number/.test(err.message) &&
      /names the role "missing", which is not defined/.test(err.message),
  );
  const book = parseRoleBook({ roles: { w: { allow: ["lock:acquire orders/*"], rate: { requestsPerSec: 10 } } }, certificates: { "worker-1": ["w"] } });
  assert.deepEqual(book.certificates.get("worker-1"), ["w"]);
  assert.equal(book.roles.get("w")!.rate!.requestsPerSec, 10);
});

test("identity - roles combine: grants add up, the most generous rate wins, unknown roles grant nothing", () => {
  const book = parseRoleBook({
    roles: {
      slow: { allow: ["kv:get"], rate: { requestsPerSec: 10, bytesPerSec: 1000 } },
      fast: { allow: ["kv:put"], rate: { requestsPerSec: 100 } },
      free: { allow: ["status"] },
    },
  });
  const a = identityOf("alice", "jwt", ["slow", "fast", "ghost"], book, null);
  assert.deepEqual(a.roles, ["slow", "fast"]);
  assert.ok(allows(a.grants, "kv:get", name("k")) && allows(a.grants, "kv:put", name("k")));
  assert.deepEqual(a.rate, { requestsPerSec: 100, bytesPerSec: null }, "fast has no byte limit: none applies");
  assert.equal(identityOf("bob", "jwt", ["slow", "free"], book, null).rate, null, "a role without limits lifts them");
  assert.equal(identityOf("carol", "jwt", ["ghost"], book, null).grants.length, 0);
});

test("rate limiter - a burst of one second, then the rate; the wait is reported, nothing taken while refused", () => {
  let now = 0;
  const rl = new RateLimiter(() => now);
  const rate = { requestsPerSec: 10, bytesPerSec: null };
  for (let i = 0; i < 10; i++) assert.equal(rl.take("a", rate, 0), 0, `burst request ${i}`);
  assert.equal(rl.take("a", rate, 0), 100, "the 11th waits one token's time: 100 ms");
  assert.equal(rl.take("b", rate, 0), 0, "identities have their own buckets");
  now = 100;
  assert.equal(rl.take("a", rate, 0), 0);
  assert.ok(rl.take("a", rate, 0) > 0);
  const bytes = { requestsPerSec: null, bytesPerSec: 1000 };
  assert.equal(rl.take("c", bytes, 600), 0);
  assert.equal(rl.take("c", bytes, 600), 200, "200 bytes short at 1000 B/s: 200 ms");
  now = 300;
  assert.equal(rl.take("c", bytes, 600), 0);
  assert.equal(rl.take("d", bytes, 5000), 0, "a request larger than a second's bytes passes on a full bucket");
});
