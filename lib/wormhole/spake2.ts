/**
 * SPAKE2 the way magic-wormhole runs it: python-spake2's symmetric form on Ed25519
 * (`SPAKE2_Symmetric`), on `@noble/curves`. Both sides do the same thing, so neither needs a role:
 *
 * ```
 * pw = HKDF-SHA256(ikm = code, salt = "", info = "SPAKE2 pw", 48 bytes), big-endian, mod L
 * S  = arbitrary_element("symmetric")          (a point nobody knows the logarithm of)
 * send  "S" || X   with  X = x*G + pw*S        (x random mod L)
 * K   = x*(Y - pw*S)                           (Y: the peer's point)
 * key = SHA-256(SHA-256(code) || SHA-256(id) || min(X, Y) || max(X, Y) || K)
 * ```
 *
 * Points travel in the standard Ed25519 encoding. Checked against vectors made with Debian's
 * `python3-spake2` (tests/wormhole_test.ts).
 *
 * @module
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import { createHash, hkdfSync, randomBytes } from "node:crypto";
import { AuthError } from "../errors.ts";

const Point = ed25519.Point;
type Point = InstanceType<typeof Point>;

/** The field prime and the prime group order of Ed25519. */
const Q = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

function power(base: bigint, exponent: bigint, m: bigint): bigint {
  let result = 1n;
  base = mod(base, m);
  for (; exponent > 0n; exponent >>= 1n) {
    if (exponent & 1n) result = (result * base) % m;
    base = (base * base) % m;
  }
  return result;
}

const D = mod(-121665n * power(121666n, Q - 2n, Q), Q);
const SQRT_M1 = power(2n, (Q - 1n) / 4n, Q);

function bigEndian(bytes: Uint8Array): bigint {
  return bytes.length === 0 ? 0n : BigInt("0x" + Buffer.from(bytes).toString("hex"));
}

function hkdf(ikm: Uint8Array, info: string, length: number): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", ikm, new Uint8Array(0), info, length));
}

function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

/** python-spake2's `password_to_scalar`. */
export function passwordToScalar(password: Uint8Array): bigint {
  return mod(bigEndian(hkdf(password, "SPAKE2 pw", 32 + 16)), L);
}

/**
 * python-spake2's `arbitrary_element(seed)`: hash the seed to a y coordinate, walk up to the
 * first y on the curve, and multiply by the cofactor 8 to land in the prime-order group.
 */
export function arbitraryElement(seed: Uint8Array): Point {
  const start = mod(bigEndian(hkdf(seed, "SPAKE2 arbitrary element", 32 + 16)), Q);
  for (let plus = 0n; plus < 1000n; plus++) {
    const y = mod(start + plus, Q);
    const xx = mod((y * y - 1n) * power(D * y * y + 1n, Q - 2n, Q), Q);
    let x = power(xx, (Q + 3n) / 8n, Q);
    if (mod(x * x - xx, Q) !== 0n) x = mod(x * SQRT_M1, Q);
    if (x % 2n !== 0n) x = Q - x;
    if (mod(-x * x + y * y - 1n - D * x * x * y * y, Q) !== 0n) continue;
    const p8 = Point.fromAffine({ x, y }).double().double().double();
    if (!p8.is0()) return p8;
  }
  throw new Error("no curve point found for the seed");
}

const S = arbitraryElement(new TextEncoder().encode("symmetric"));

/** One side of a symmetric exchange, started: keep it, send `message`, call finish. */
export interface SymmetricSpake2 {
  /** The 33 bytes to send: "S" and our point. */
  message: Uint8Array;
  finish(peerMessage: Uint8Array): Uint8Array;
}

/**
 * Starts an exchange for `password` (the whole code, as UTF-8 NFC) and `id` (the app id).
 * `scalar` is for test vectors only.
 */
export function startSymmetric(
  password: Uint8Array,
  id: Uint8Array,
  scalar: bigint = randomScalar(),
): SymmetricSpake2 {
  const pw = passwordToScalar(password);
  const ours = Point.BASE.multiply(scalar).add(S.multiplyUnsafe(pw)).toBytes();
  return {
    message: new Uint8Array([0x53, ...ours]),
    finish(peerMessage: Uint8Array): Uint8Array {
      if (peerMessage.length !== 33 || peerMessage[0] !== 0x53) {
        throw new AuthError("the peer's key exchange message is not SPAKE2 symmetric");
      }
      const theirs = peerMessage.subarray(1);
      let peer: Point;
      try {
        peer = Point.fromBytes(theirs);
      } catch {
        throw new AuthError("the peer's key exchange point is not on the curve");
      }
      if (peer.is0() || !peer.isTorsionFree() || Buffer.from(theirs).equals(ours)) {
        throw new AuthError("the peer's key exchange point is unusable");
      }
      const k = peer.subtract(S.multiplyUnsafe(pw)).multiply(scalar).toBytes();
      const [first, second] = Buffer.compare(ours, theirs) < 0 ? [ours, theirs] : [theirs, ours];
      return sha256(sha256(password), sha256(id), first, second, k);
    },
  };
}

function randomScalar(): bigint {
  for (;;) {
    const scalar = mod(bigEndian(randomBytes(64)), L);
    if (scalar !== 0n) return scalar;
  }
}
