/**
 * Code phrases: short, speakable secrets like `7-absurd-ribbon-castle`, and the scalar `w` that
 * SPAKE2 derives from one.
 *
 * A phrase is a number below 1000 and three words from the BIP-39 English list (2048 words):
 * log2(1000) + 3 * 11 = 43 bits. That is far too few to resist an offline search, which is why
 * it only ever goes into SPAKE2: an attacker gets one guess per connection, and the listener
 * stops after a few wrong ones.
 *
 * @module
 */

import { wordlist } from "@scure/bip39/wordlists/english.js";
import { randomInt, scrypt } from "node:crypto";
import { p256 } from "@noble/curves/nist.js";

/** Words in a generated phrase. */
export const CODE_WORDS = 3;
/** The number before the words is below this. */
export const CODE_NUMBER_LIMIT = 1000;

/**
 * Makes a fresh random code phrase.
 *
 * @example
 * ```ts
 * generateCode(); // "7-absurd-ribbon-castle"
 * ```
 */
export function generateCode(): string {
  const parts = [String(randomInt(CODE_NUMBER_LIMIT))];
  for (let i = 0; i < CODE_WORDS; i++) parts.push(wordlist[randomInt(wordlist.length)]!);
  return parts.join("-");
}

/** Bits of entropy in a generated phrase. */
export function codeEntropyBits(): number {
  return Math.log2(CODE_NUMBER_LIMIT) + CODE_WORDS * Math.log2(wordlist.length);
}

/**
 * Puts a typed phrase in canonical form: lower case, words joined by single dashes, so that
 * `7 Absurd  ribbon-castle` and `7-absurd-ribbon-castle` are the same code.
 */
export function normalizeCode(code: string): string {
  return code.trim().toLowerCase().split(/[\s\-_]+/).filter((p) => p !== "").join("-");
}

/**
 * Derives the SPAKE2 password scalar w from a phrase: scrypt (memory-hard, as RFC 9382 asks)
 * with a fixed protocol salt, reduced modulo the P-256 group order. N = 4096 (4 MiB, ~25 ms):
 * the phrase never crosses the wire and guesses are online only, so the cost is kept to what
 * every connection can afford.
 */
export async function passwordScalar(code: string): Promise<bigint> {
  const normalized = normalizeCode(code);
  if (normalized === "") throw new RangeError("Cannot use an empty code phrase");
  const wide = await new Promise<Uint8Array>((resolve, reject) => {
    scrypt(
      normalized,
      "ferry/1 code phrase",
      48,
      { N: 1 << 12, r: 8, p: 1, maxmem: 64 * 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve(new Uint8Array(key))),
    );
  });
  const order = p256.Point.Fn.ORDER;
  const value = BigInt("0x" + Array.from(wide, (b) => b.toString(16).padStart(2, "0")).join(""));
  return (value % (order - 1n)) + 1n;
}
