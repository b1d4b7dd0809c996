import { assertEquals, assertThrows } from "./assert.ts";
import { parseLegacyHeader, resolveGluedDigits } from "../lib/legacy.ts";
import { ProtocolError } from "../lib/errors.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("parseLegacyHeader() reads the tutorial's header and keeps only the base name", () => {
  const h = parseLegacyHeader(enc("/home/user/data.csv<SEPARATOR>1234"), false)!;
  assertEquals([h.name, h.size, h.rest.length], ["data.csv", 1234, 0]);
});

Deno.test("parseLegacyHeader() copes with file bytes in the same read as the header", () => {
  const h = parseLegacyHeader(enc("a.txt<SEPARATOR>11hello world"), false)!;
  assertEquals([h.name, h.size, new TextDecoder().decode(h.rest)], ["a.txt", 11, "hello world"]);
});

Deno.test("parseLegacyHeader() waits for more bytes, and gives up after 4096 without a separator", () => {
  assertEquals(parseLegacyHeader(enc("a.txt<SEPAR"), false), undefined);
  assertThrows(
    () => parseLegacyHeader(new Uint8Array(5000).fill(65), false),
    ProtocolError,
    "no <SEPARATOR>",
  );
  assertThrows(() => parseLegacyHeader(enc("a<SEPARATOR>x"), false), ProtocolError, "not a number");
});

Deno.test("resolveGluedDigits() finds the real size when the file itself starts with digits", () => {
  // Header "a<SEPARATOR>5" followed by the 5-byte file "12abc": greedy parsing reads "512".
  assertEquals(resolveGluedDigits("512", 3), 1);
  assertEquals(resolveGluedDigits("512", 500), undefined);
});
