import { test } from "node:test";
import assert from "node:assert/strict";
import { DeadlockError, ErrorCode, InvalidArgumentError, LockHeldError, QueueFullError, StaleReceiptError, errorForCode } from "../../protocol/index.ts";

test("errors - a refusal's code name maps to the same typed error as its ERROR frame; unknown names are INVALID_ARGUMENT", () => {
  assert.ok(errorForCode("LOCK_HELD", "m") instanceof LockHeldError);
  assert.ok(errorForCode("DEADLOCK", "m") instanceof DeadlockError);
  assert.ok(errorForCode("QUEUE_FULL", "m") instanceof QueueFullError);
  assert.ok(errorForCode("STALE_RECEIPT", "m") instanceof StaleReceiptError);
  assert.equal(errorForCode("UPGRADE_REFUSED", "m").code, ErrorCode.UPGRADE_REFUSED);
  for (const name of ["NO_SUCH_CODE", "__proto__", "toString", ""]) {
    const e = errorForCode(name, "why");
    assert.ok(e instanceof InvalidArgumentError, name);
    assert.equal(e.message, "why");
  }
});
