/** The layer boundaries in eslint.config.js hold: forbidden imports fail the lint, allowed ones pass. */
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { ESLint } from "eslint";
import { ROOT } from "../helpers/daemon.ts";

const eslint = new ESLint({ cwd: ROOT });

async function boundaryErrors(file: string, from: string): Promise<string[]> {
  const [r] = await eslint.lintText(`import { x } from "${from}";\nexport const y = x;\n`, { filePath: path.join(ROOT, file) });
  return (r?.messages ?? []).filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message);
}

test("lint - forbidden imports across layers fail the lint, with the reason", async () => {
  const forbidden: [string, string, RegExp][] = [
    ["src/raft/x.ts", "../server/node.ts", /Raft core is pure/],
    ["src/raft/x.ts", "node:fs", /Raft core is pure/],
    ["src/services/lock/machine/x.ts", "../../../host/logger.ts", /no I\/O/],
    ["src/services/queue/machine/x.ts", "node:crypto", /no I\/O/],
    ["src/services/lock/service.ts", "../../config/node-config.ts", /knows nothing of the node/],
    ["src/host/x.ts", "../services/lock/service.ts", /without knowing any of them/],
    ["src/services/cache/machine/x.ts", "../../../transport/peer-links.ts", /no I\/O/],
    ["src/client/x.ts", "../config/node-config.ts", /never reaches into the daemon/],
    ["protocol/x.ts", "../src/services/cache/index.ts", /depends on neither/],
    ["src/storage/x.ts", "../server/node.ts", /layers below/],
  ];
  for (const [file, from, why] of forbidden) {
    const errors = await boundaryErrors(file, from);
    assert.ok(errors.some((e) => why.test(e)), `${file} importing ${from}: ${JSON.stringify(errors)}`);
  }
});

test("lint - imports within a layer, or downward, pass", async () => {
  const allowed: [string, string][] = [
    ["src/raft/x.ts", "./log.ts"],
    ["src/services/cache/machine/x.ts", "../../command-codec.ts"],
    ["src/services/cache/x.ts", "../../host/logger.ts"],
    ["src/services/lock/machine/x.ts", "../../../host/state-machine.ts"],
    ["src/host/x.ts", "../services/command-codec.ts"],
    ["src/client/x.ts", "../../protocol/index.ts"],
    ["src/server/x.ts", "../services/cache/index.ts"],
  ];
  for (const [file, from] of allowed) assert.deepEqual(await boundaryErrors(file, from), [], `${file} importing ${from}`);
});
