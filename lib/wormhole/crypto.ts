/**
 * magic-wormhole's key schedule and boxes: HKDF-SHA256 derivations from the SPAKE2 key, and
 * NaCl SecretBox (XSalsa20-Poly1305), sealed as `nonce || tag || ciphertext`.
 *
 * SecretBox comes from libsodium compiled to WebAssembly (`libsodium-wrappers`): about twice as
 * fast as pure JavaScript, which matters when every byte of a 1 GiB transfer goes through it.
 * It takes ~50 ms to load, so it is loaded by {@linkcode loadSecretBox} when a wormhole transfer
 * starts, not whenever ferry runs.
 *
 * @module
 */

import { createHash, hkdfSync, randomBytes } from "node:crypto";
import { AuthError } from "../errors.ts";

/** The two libsodium calls ferry uses. */
interface Sodium {
  crypto_secretbox_easy(message: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array;
  crypto_secretbox_open_easy(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array;
}

let sodium: Sodium | undefined;

/** Loads libsodium; call (and await) once before sealing or opening anything. */
export async function loadSecretBox(): Promise<void> {
  if (sodium) return;
  const module = (await import("libsodium-wrappers")).default;
  await module.ready;
  sodium = module;
}

function loaded(): Sodium {
  if (!sodium) throw new Error("SecretBox used before loadSecretBox()");
  return sodium;
}

/** XSalsa20-Poly1305 of `plaintext`: the 16-byte tag, then the ciphertext. */
export function secretBox(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return loaded().crypto_secretbox_easy(plaintext, nonce, key);
}

/** Opens what {@linkcode secretBox} made; throws if it does not verify. */
export function secretBoxOpen(key: Uint8Array, nonce: Uint8Array, box: Uint8Array): Uint8Array {
  return loaded().crypto_secretbox_open_easy(box, nonce, key);
}

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
  const box = secretBox(key, n, plaintext);
  const sealed = new Uint8Array(NONCE_BYTES + box.length);
  sealed.set(n);
  sealed.set(box, NONCE_BYTES);
  return sealed;
}

/** Opens what {@linkcode seal} made; a box that does not verify throws `what`. */
export function open(key: Uint8Array, sealed: Uint8Array, what: () => Error): Uint8Array {
  if (sealed.length < NONCE_BYTES + 16) throw what();
  try {
    return secretBoxOpen(key, sealed.subarray(0, NONCE_BYTES), sealed.subarray(NONCE_BYTES));
  } catch {
    throw what();
  }
}

/** A wrong code shows first as a box that does not open. */
export function wrongCode(): Error {
  return new AuthError("wrong code phrase: the other side's messages do not decrypt");
}
