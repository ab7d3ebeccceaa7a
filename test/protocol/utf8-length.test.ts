import { test } from "node:test";
import assert from "node:assert/strict";
import { utf8Length } from "../../protocol/validate.ts";

test("utf8Length - equals the encoder's byte count: ASCII, 2- and 3-byte, surrogate pairs, lone surrogates", () => {
  const enc = new TextEncoder();
  const samples = ["", "wid-1a2b", "é", "ü-ß", "€", "日本語", "😀", "a😀b", "\ud800", "\udc00x", "\ud800\ud800", "x\ud83d", "😀".repeat(20) + "é".repeat(7)];
  for (const s of samples) assert.equal(utf8Length(s), enc.encode(s).length, JSON.stringify(s));
});
