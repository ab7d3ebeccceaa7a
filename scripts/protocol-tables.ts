/** `npm run docs:tables`: rewrites the error and message-type tables of PROTOCOL.md and README.md from protocol/. */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { renderProtocolTables, renderReadmeTables } from "./lib/protocol-tables.ts";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
for (const [file, render] of [
  ["protocol/PROTOCOL.md", renderProtocolTables],
  ["README.md", renderReadmeTables],
] as const) {
  const p = path.join(root, file);
  const before = readFileSync(p, "utf8");
  const after = render(before);
  if (after !== before) writeFileSync(p, after);
  console.log(`${file}: ${after === before ? "up to date" : "rewritten"}`);
}
