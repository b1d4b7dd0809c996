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
import { hkdfSync, randomInt } from "node:crypto";
import { scalarFromWide } from "./spake2.ts";

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
  return [String(randomInt(CODE_NUMBER_LIMIT)), ...generateWords(CODE_WORDS)].join("-");
}

/** `count` random words from the BIP-39 English list (11 bits each). */
export function generateWords(count: number): string[] {
  return Array.from({ length: count }, () => wordlist[randomInt(wordlist.length)]!);
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
  // NFC first: "é" typed as one code point or as e + combining accent is the same code.
  return code.normalize("NFC").trim().toLowerCase().split(/[\s\-_]+/).filter((p) => p !== "")
    .join("-");
}

/**
 * Derives the SPAKE2 password scalar w from a phrase: 48 bytes of HKDF-SHA256, reduced modulo
 * the P-256 group order (as magic-wormhole's SPAKE2 does, with its own label).
 *
 * Why no memory-hard function, though RFC 9382 recommends one: it slows down guessing against a
 * *stored* w, and ferry never stores w. SPAKE2 gives an eavesdropper nothing to test guesses
 * against, and an active attacker one guess per connection; the listener stops after a few wrong
 * ones. scrypt (N = 4096) cost ~25 ms before the first packet, about a sixth of a short transfer.
 */
export function passwordScalar(code: string): bigint {
  const normalized = normalizeCode(code);
  if (normalized === "") throw new RangeError("Cannot use an empty code phrase");
  return scalarFromWide(
    new Uint8Array(hkdfSync("sha256", normalized, "", "ferry/2 code phrase", 48)),
  );
}

/**
 * The part of a code that may be shown to a relay operator and to the LAN: the number and the
 * first word of a generated phrase (`7-absurd` of `7-absurd-ribbon-castle`). A relay pairs, and
 * a LAN listener is found, by what is derived from this part alone; the rest stays secret and
 * only ever goes into SPAKE2. A typed code with two or three parts shows its first part; a code
 * of one part shows nothing (all such codes share one channel).
 *
 * Why two parts: numbers below 1000 alone collide often at a busy relay (20 waiting codes: 17%);
 * with a word beside them 2,048,000 channels remain (20 waiting: 0.01%), and two words, 22 bits,
 * stay secret: an attacker gets one guess per connection and the listener stops after 10.
 *
 * @example
 * ```ts
 * if (publicPart("7-Absurd ribbon-castle") !== "7-absurd") throw new Error("public part");
 * ```
 */
export function publicPart(code: string): string {
  const parts = normalizeCode(code).split("-");
  if (parts.length >= 4) return parts.slice(0, 2).join("-");
  if (parts.length >= 2) return parts[0]!;
  return "";
}

/** 16 bytes that name a code's channel in LAN discovery packets. */
export function discoveryTag(code: string): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", publicPart(code), "", "ferry/2 discovery tag", 16));
}

/** 64 hex digits that pair the two sides of a code at a transit relay. */
export function relayToken(code: string): string {
  const bytes = new Uint8Array(hkdfSync("sha256", publicPart(code), "", "ferry/2 relay token", 32));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A code of ferry's own shape (a number and three words) in which every word but one is in the
 * word list, and that one is a near miss of a word in it (two edits at most, a swap of two
 * letters counting as one): most likely a typo, and a mistyped code costs one of the few guesses
 * a code allows. Returns the word and the nearest one in the list; undefined for every other
 * code (magic-wormhole's, a phrase of one's own).
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(codeTypo("7-absurd-solutoin-castle"), { word: "solutoin", nearest: "solution" });
 * assertEquals(codeTypo("7-absurd-ribbon-castle"), undefined);
 * ```
 */
export function codeTypo(code: string): { word: string; nearest: string } | undefined {
  const parts = normalizeCode(code).split("-");
  if (parts.length !== 1 + CODE_WORDS || !/^\d+$/.test(parts[0]!)) return undefined;
  const unknown = parts.slice(1).filter((word) => !WORDS.has(word));
  if (unknown.length !== 1) return undefined;
  const word = unknown[0]!;
  let nearest: string | undefined;
  let best = 3;
  for (const candidate of wordlist) {
    if (Math.abs(candidate.length - word.length) >= best) continue;
    const distance = editDistance(word, candidate);
    if (distance < best) [nearest, best] = [candidate, distance];
  }
  return nearest === undefined ? undefined : { word, nearest };
}

const WORDS = new Set(wordlist);

/** Edits from `a` to `b`: insertions, deletions, substitutions, and swaps of neighbours. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      }
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}
