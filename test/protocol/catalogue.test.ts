import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { ErrorCode, Op, encodeEnvelope, encodeFrame, errorCodeName, errorFromBody, hadNoEffect, isRetryableCode } from "../../protocol/index.ts";
import { ROOT } from "../helpers/daemon.ts";
import { renderProtocolTables, renderReadmeTables } from "../../scripts/lib/protocol-tables.ts";

const doc = readFileSync(path.join(ROOT, "protocol/PROTOCOL.md"), "utf8");
const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");

test("catalogue - every error code maps both ways and is documented with its number, retry rule and effect", () => {
  const entries = Object.entries(ErrorCode);
  assert.equal(new Set(entries.map(([, c]) => c)).size, entries.length, "codes are unique");
  for (const [name, code] of entries) {
    assert.equal(errorCodeName(code), name);
    const row = new RegExp(`^\\| ${code} \\| \`${name}\` \\| (yes|no) \\| (none|maybe) \\|`, "m").exec(doc);
    assert.ok(row, `PROTOCOL.md lists ${code} ${name}`);
    assert.equal(row[1] === "yes", isRetryableCode(code), `${name}: documented retry rule matches the code`);
    assert.equal(row[2] === "none", hadNoEffect(code), `${name}: documented effect matches the code`);
    assert.equal(errorFromBody({ code, message: "m" }).code, code);
    assert.match(readme, new RegExp(`^\\| ${code} \\| \`${name}\` \\| ${row[1]} \\| ${row[2]} \\|$`, "m"), `README lists ${code} ${name}`);
  }
  const documented = [...doc.matchAll(/^\| (\d+) \| `([A-Z_]+)` \| (?:yes|no) \|/gm)].map((m) => m[2]);
  assert.deepEqual(documented.sort(), entries.map(([n]) => n).sort(), "PROTOCOL.md lists no code the code does not have");
});

test("catalogue - every message type is documented with its number", () => {
  for (const [name, type] of Object.entries(Op)) {
    assert.match(doc, new RegExp(`^\\| ${type} \\| \`${name}\` \\|`, "m"), `PROTOCOL.md lists ${type} ${name}`);
  }
});

test("catalogue - the byte example in PROTOCOL.md is what the encoder produces", () => {
  const bytes = Buffer.from(encodeFrame(encodeEnvelope({ type: Op.PING, id: 7, body: {} }))).toString("hex").match(/../g)!.join(" ");
  assert.equal(bytes, "00 00 00 04 93 03 07 80");
  assert.match(doc, /`00 00 00 04 {2}93 03 07 80`/);
});

test("catalogue - the error and message-type tables are what `npm run docs:tables` renders from protocol/", () => {
  assert.equal(renderProtocolTables(doc), doc, "PROTOCOL.md's tables are stale: run npm run docs:tables");
  assert.equal(renderReadmeTables(readme), readme, "README.md's error table is stale: run npm run docs:tables");
  // Rows out of order, a wrong retry column and a missing row are all put right…
  const shuffled = doc.replace(/^\| 2 \| `FRAME_TOO_LARGE` \| no \|/m, "| 2 | `FRAME_TOO_LARGE` | yes |").replace(/^(\| 3 \| `PING` .*\n)(\| 4 \| `STATUS` .*\n)/m, "$2$1");
  assert.notEqual(shuffled, doc);
  assert.equal(renderProtocolTables(shuffled), doc);
  assert.equal(renderReadmeTables(readme.replace(/^\| 99 \| `INTERNAL` .*\n/m, "")), readme);
  // …but a code or type without its prose cannot be invented.
  assert.throws(() => renderProtocolTables(doc.replace(/^\| 12 \| `TIMEOUT` .*\n/m, "")), /TIMEOUT has no description/);
  assert.throws(() => renderProtocolTables(doc.replace(/^\| 37 \| `LOCK_STATUS` .*\n/m, "")), /LOCK_STATUS has no description/);
});
