/**
 * magic-wormhole's key schedule and boxes: HKDF-SHA256 derivations from the SPAKE2 key, and
 * NaCl SecretBox (XSalsa20-Poly1305, `@noble/ciphers`), sealed as `nonce || tag || ciphertext`.
 *
 * @module
 */

import { xsalsa20poly1305 } from "@noble/ciphers/salsa.js";
import { createHash, hkdfSync, randomBytes } from "node:crypto";
import { AuthError } from "../errors.ts";

/** SecretBox key and nonce sizes. */
export const KEY_BYTES = 32;
export const NONCE_BYTES = 24;

const encoder = new TextEncoder();

/** `derive_key(key, purpose)`: HKDF-SHA256 with no salt and `purpose` as the info. */
export function deriveKey(
  key: Uint8Array,
  purpose: string | Uint8Array,
  length = KEY_BYTES,
): Uint8Array {
  const info = typeof purpose === "string" ? encoder.encode(purpose.normalize("NFC")) : purpose;
  return new Uint8Array(hkdfSync("sha256", key, new Uint8Array(0), info, length));
}

function sha256(text: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(text).digest());
}

/** The key for one mailbox message: its author's side and its phase. */
export function phaseKey(key: Uint8Array, side: string, phase: string): Uint8Array {
  const purpose = new Uint8Array([
    ...encoder.encode("wormhole:phase:"),
    ...sha256(side),
    ...sha256(phase),
  ]);
  return deriveKey(key, purpose);
}

/** Seals `plaintext` under `key`: the nonce (random unless given), then the box. */
export function seal(key: Uint8Array, plaintext: Uint8Array, nonce?: Uint8Array): Uint8Array {
  const n = nonce ?? new Uint8Array(randomBytes(NONCE_BYTES));
  const box = xsalsa20poly1305(key, n).encrypt(plaintext);
  const sealed = new Uint8Array(NONCE_BYTES + box.length);
  sealed.set(n);
  sealed.set(box, NONCE_BYTES);
  return sealed;
}

/** Opens what {@linkcode seal} made; a box that does not verify throws `what`. */
export function open(key: Uint8Array, sealed: Uint8Array, what: () => Error): Uint8Array {
  if (sealed.length < NONCE_BYTES + 16) throw what();
  try {
    return xsalsa20poly1305(key, sealed.subarray(0, NONCE_BYTES)).decrypt(
      sealed.subarray(NONCE_BYTES),
    );
  } catch {
    throw what();
  }
}

/** A wrong code shows first as a box that does not open. */
export function wrongCode(): Error {
  return new AuthError("wrong code phrase: the other side's messages do not decrypt");
}
