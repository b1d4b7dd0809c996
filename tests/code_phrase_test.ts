import { assertEquals, assertMatch, assertNotEquals } from "./assert.ts";
import {
  codeEntropyBits,
  generateCode,
  normalizeCode,
  passwordScalar,
} from "../lib/code_phrase.ts";
import { escapeForTerminal, formatError, IntegrityError } from "../lib/errors.ts";

Deno.test("generateCode() makes a number and three BIP-39 words, at least 40 bits", () => {
  const code = generateCode();
  assertMatch(code, /^\d{1,3}-[a-z]+-[a-z]+-[a-z]+$/);
  assertEquals(codeEntropyBits() >= 40, true);
  assertNotEquals(generateCode(), generateCode());
});

Deno.test("normalizeCode() ignores case, spaces and repeated dashes", () => {
  assertEquals(normalizeCode("  7 Absurd  ribbon--CASTLE "), "7-absurd-ribbon-castle");
});

Deno.test("passwordScalar() is deterministic for equivalent phrases and differs otherwise", () => {
  assertEquals(
    passwordScalar("7 absurd ribbon castle"),
    passwordScalar("7-absurd-ribbon-castle"),
  );
  assertNotEquals(
    passwordScalar("7-absurd-ribbon-castle"),
    passwordScalar("8-absurd-ribbon-castle"),
  );
});

Deno.test("formatError() gives one ferry: line with secrets blanked and escapes neutralised", () => {
  const line = formatError(new IntegrityError("bad\nfile \x1b[31m 7-absurd-ribbon-castle"), [
    "7-absurd-ribbon-castle",
  ]);
  assertEquals(line, "ferry: bad");
  const one = formatError(new IntegrityError("file \x1b[31m code 7-absurd-ribbon-castle"), [
    "7-absurd-ribbon-castle",
  ]);
  assertEquals(one, "ferry: file \\x1b[31m code [code]");
  assertEquals(escapeForTerminal("a\u202eb"), "a\\u{202e}b");
});

Deno.test("passwordScalar(): NFC and NFD spellings of a code are the same code", () => {
  const composed = "7-caf\u00e9-ribbon-castle";
  const decomposed = "7-cafe\u0301-ribbon-castle";
  assertEquals(passwordScalar(composed), passwordScalar(decomposed));
});

Deno.test("normalizeCode() splits on ECMAScript white space, as PROTOCOL.md lists it, and on nothing else", () => {
  assertEquals(normalizeCode("\ufeff7 a\u3000b\u000bc\u00a0d\u2028e\ufeff"), "7-a-b-c-d-e");
  // U+0085 (next line) and U+200B (zero-width space) are not white space: they stay in the word.
  assertEquals(normalizeCode("7-a\u0085b-c\u200bd"), "7-a\u0085b-c\u200bd");
});
