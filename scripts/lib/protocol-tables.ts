/**
 * The tables of PROTOCOL.md and README.md that the code defines: the error catalogue (number,
 * name, retry rule, effect) and the message types (number, name). Numbers, names, order and the
 * retry/effect columns are rendered from protocol/; the prose columns ("when", "direction",
 * "reply") are kept from the document, so a new code or type fails until someone describes it.
 */
import { ErrorCode, Op, hadNoEffect, isRetryableCode, opName } from "../../protocol/index.ts";
import { REQUIREMENTS } from "../../src/security/permissions.ts";

const ERROR_HEADER = "| code | name | retry | effect | when |\n|---|---|---|---|---|\n";
const README_ERROR_HEADER = "| code | name | retry | effect |\n|---|---|---|---|\n";
const OP_HEADER = "| type | name | direction | reply |\n|---|---|---|---|\n";
const PERMISSION_HEADER = "| type | name | action | resource |\n|---|---|---|---|\n";

/** The rows that follow `header` in `doc` (up to the first line that is not a table row). */
function tableAt(doc: string, header: string, what: string): { start: number; end: number; rows: string[][] } {
  const start = doc.indexOf(header);
  if (start < 0 || doc.indexOf(header, start + 1) >= 0) throw new Error(`expected exactly one ${what} table`);
  let end = start + header.length;
  const rows: string[][] = [];
  while (doc.startsWith("|", end)) {
    const eol = doc.indexOf("\n", end);
    const line = doc.slice(end, eol < 0 ? doc.length : eol);
    rows.push(line.slice(1, -1).split(" | ").map((c) => c.trim()));
    end = eol < 0 ? doc.length : eol + 1;
  }
  return { start: start + header.length, end, rows };
}

/** Prose of each row by the row's `name` column (backquoted), from the existing table. */
function proseByName(rows: string[][], cols: number): Map<string, string[]> {
  return new Map(rows.map((r) => [(r[1] ?? "").replaceAll("`", ""), r.slice(cols)]));
}

function described(prose: Map<string, string[]>, name: string, what: string): string[] {
  const p = prose.get(name);
  if (!p || p.some((c) => c === "")) throw new Error(`${what} ${name} has no description in its table: add its row by hand, then run npm run docs:tables`);
  return p;
}

function errorColumns(code: number): string {
  return `${isRetryableCode(code) ? "yes" : "no"} | ${hadNoEffect(code) ? "none" : "maybe"}`;
}

const byNumber = <T extends number>(o: Record<string, T>): [string, T][] => Object.entries(o).sort((a, b) => a[1] - b[1]);

/** PROTOCOL.md with its error and message-type tables rendered from protocol/. */
export function renderProtocolTables(doc: string): string {
  const errors = tableAt(doc, ERROR_HEADER, "error code");
  const errorProse = proseByName(errors.rows, 4);
  const errorRows = byNumber(ErrorCode).map(([name, code]) => `| ${code} | \`${name}\` | ${errorColumns(code)} | ${described(errorProse, name, "error code").join(" | ")} |\n`);
  doc = doc.slice(0, errors.start) + errorRows.join("") + doc.slice(errors.end);
  const ops = tableAt(doc, OP_HEADER, "message type");
  const opProse = proseByName(ops.rows, 2);
  const opRows = byNumber(Op).map(([name, type]) => `| ${type} | \`${name}\` | ${described(opProse, name, "message type").join(" | ")} |\n`);
  doc = doc.slice(0, ops.start) + opRows.join("") + doc.slice(ops.end);
  const perms = tableAt(doc, PERMISSION_HEADER, "permission");
  const permRows = [...REQUIREMENTS.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([type, r]) => `| ${type} | \`${opName(type)}\` | \`${r.action}\` | ${r.resource === "some" ? "any" : r.resource === "all" ? "every" : `field \`${r.resource}\``} |\n`);
  return doc.slice(0, perms.start) + permRows.join("") + doc.slice(perms.end);
}

/** README.md with its error table rendered from protocol/. */
export function renderReadmeTables(doc: string): string {
  const t = tableAt(doc, README_ERROR_HEADER, "README error code");
  const rows = byNumber(ErrorCode).map(([name, code]) => `| ${code} | \`${name}\` | ${errorColumns(code)} |\n`);
  return doc.slice(0, t.start) + rows.join("") + doc.slice(t.end);
}
