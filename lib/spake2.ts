/**
 * SPAKE2 as in RFC 9382, ciphersuite SPAKE2-P256-SHA256-HKDF-HMAC, on `@noble/curves`.
 *
 * Two parties who share a low-entropy password `w` each send one curve point and end with the
 * same strong key, or with different keys if their passwords differ. An eavesdropper learns
 * nothing it could test passwords against; an active attacker gets one guess per run.
 *
 * ```
 * A: x random, pA = x*G + w*M        B: y random, pB = y*G + w*N
 * A: K = x*(pB - w*N)                B: K = y*(pA - w*M)
 * TT = len||A || len||B || len||pA || len||pB || len||K || len||w     (len: 8 bytes LE)
 * Hash(TT) = Ke || Ka;  HKDF(Ka, info = "ConfirmationKeys" || AAD) = KcA || KcB
 * cA = HMAC(KcA, TT), cB = HMAC(KcB, TT)
 * ```
 *
 * @module
 */

import { weierstrass } from "@noble/curves/abstract/weierstrass.js";
import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import { ProtocolError } from "./errors.ts";

/**
 * P-256 (SEC 2 v2, section 2.4.2), built with noble's generic short-Weierstrass code from its
 * parameters. `@noble/curves/nist.js` would give the same curve but also builds P-384, P-521
 * and their hashers when it loads: ~10 ms more start-up for every run. A test checks these
 * numbers against nist.js.
 */
export const P256 = weierstrass({
  p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
  n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  h: 1n,
  a: 0xffffffff00000001000000000000000000000000fffffffffffffffffffffffcn,
  b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
  Gx: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
  Gy: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
});
type Point = InstanceType<typeof P256>;

/** RFC 9382 section 6: the fixed points M and N for P-256 (SEC1 compressed). */
export const M_HEX = "02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f";
export const N_HEX = "03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49";
const M: Point = P256.fromHex(M_HEX);
const N: Point = P256.fromHex(N_HEX);
/** The order of P-256's group. */
export const ORDER: bigint = P256.Fn.ORDER;

/** Which side of SPAKE2 we are: A sends pA = x*G + w*M, B sends pB = y*G + w*N. */
export type Spake2Role = "A" | "B";

/** Everything a finished exchange yields. */
export interface Spake2Keys {
  /** Shared secret for the session keys. */
  ke: Uint8Array;
  ka: Uint8Array;
  kcA: Uint8Array;
  kcB: Uint8Array;
  /** Our confirmation MAC, to send. */
  myConfirm: Uint8Array;
  /** The MAC the peer must send. */
  peerConfirm: Uint8Array;
  /** The full transcript TT. */
  transcript: Uint8Array;
}

/** Inputs to {@linkcode finishSpake2}. */
export interface Spake2FinishOptions {
  /** Identity of A. @default {""} */
  idA?: Uint8Array;
  /** Identity of B. @default {""} */
  idB?: Uint8Array;
  /** Associated data bound into the confirmation keys (our hello messages). @default {empty} */
  aad?: Uint8Array;
}

/** A started exchange: our secret scalar and the share to send. */
export interface Spake2State {
  role: Spake2Role;
  w: bigint;
  scalar: bigint;
  share: Uint8Array;
}

/** w*M and w*N for the last w used: a listener uses the same w for every connection. */
let blinds: { w: bigint; points: Promise<{ wM: Point; wN: Point }> } | undefined;

function blindsFor(w: bigint): Promise<{ wM: Point; wN: Point }> {
  if (blinds?.w !== w) {
    const points = Promise.all([multiply(M, w), multiply(N, w)]).then(([wM, wN]) => ({ wM, wN }));
    blinds = { w, points };
  }
  return blinds.points;
}

/** Computes w*M and w*N ahead of the first connection. A listener calls it while it waits. */
export function prepareSpake2(w: bigint): void {
  blindsFor(w).catch(() => {});
}

/*
 * Scalar multiplication, natively. noble's constant-time multiply is exact but costs 7-10 ms in
 * JavaScript, and a sender needs four before its first file byte moves (w*M, w*N, x*G, x*Z):
 * a third of its start-up. WebCrypto's ECDH does the same product in native code, but tells
 * only the x-coordinate of scalar*P. Two points have that x-coordinate, Q and -Q; the
 * x-coordinate of (scalar+1)*P tells which one it is, because only Q + P equals that point.
 * Two ECDH derivations, one decompression and one addition: ~2 ms in all.
 */

const ECDH_P256 = { name: "ECDH", namedCurve: "P-256" } as const;
/**
 * DER of a PKCS #8 P-256 private key (RFC 5208, RFC 5915) up to its 32 bytes of scalar, with no
 * public key: SEQUENCE { version 0, AlgorithmIdentifier { id-ecPublicKey, prime256v1 },
 * OCTET STRING { ECPrivateKey SEQUENCE { version 1, OCTET STRING (32 bytes follow) } } }.
 */
const PKCS8_P256_PREFIX = Uint8Array.from(Buffer.from(
  "3041" + "020100" + "3013" + "06072a8648ce3d0201" + "06082a8648ce3d030107" +
    "0427" + "3025" + "020101" + "0420",
  "hex",
));

function privateKey(scalar: bigint, extractable = false): Promise<CryptoKey> {
  const der = new Uint8Array(PKCS8_P256_PREFIX.length + 32);
  der.set(PKCS8_P256_PREFIX);
  der.set(scalarBytes(scalar), PKCS8_P256_PREFIX.length);
  return crypto.subtle.importKey("pkcs8", der, ECDH_P256, extractable, ["deriveBits"]);
}

/** The x-coordinate (32 bytes) of scalar*point. */
async function xOfProduct(scalar: bigint, point: Point): Promise<Uint8Array> {
  const peer = await crypto.subtle.importKey("raw", point.toBytes(false), ECDH_P256, false, []);
  const bits = await crypto.subtle.deriveBits(
    { name: "ECDH", public: peer },
    await privateKey(scalar),
    256,
  );
  return new Uint8Array(bits);
}

/** scalar*point for scalar in [1, order), by {@linkcode xOfProduct} as explained above. */
export async function multiply(point: Point, scalar: bigint): Promise<Point> {
  // At the ends of the range Q is +-point itself, and Q + point would be no point at all.
  if (scalar === 1n) return point;
  if (scalar === ORDER - 1n) return point.negate();
  const [x, xNext] = await Promise.all([
    xOfProduct(scalar, point),
    xOfProduct(scalar + 1n, point),
  ]);
  const candidate = P256.fromBytes(concat(Uint8Array.of(0x02), x));
  const next = candidate.add(point).toBytes(true).subarray(1);
  return next.every((byte, i) => byte === xNext[i]) ? candidate : candidate.negate();
}

/** scalar*G: WebCrypto computes the public key of a private one, and JWK shows both coordinates. */
async function multiplyBase(scalar: bigint): Promise<Point> {
  const jwk = await crypto.subtle.exportKey("jwk", await privateKey(scalar, true));
  const coordinate = (b64: string | undefined) => Buffer.from(b64 ?? "", "base64url");
  return P256.fromBytes(concat(Uint8Array.of(0x04), coordinate(jwk.x), coordinate(jwk.y)));
}

/** A uniformly random scalar in [1, order). */
export function randomScalar(): bigint {
  return scalarFromWide(randomBytes(48));
}

/**
 * A scalar in [1, order) from 48 bytes (big-endian) of a random or pseudo-random source: with 16
 * bytes more than the order needs, the bias of the reduction stays below 2^-128.
 */
export function scalarFromWide(wide: Uint8Array): bigint {
  const value = BigInt("0x" + Buffer.from(wide).toString("hex"));
  return (value % (ORDER - 1n)) + 1n;
}

/**
 * Starts an exchange: computes our share. `scalar` is random unless given (tests use the RFC's).
 *
 * @example RFC 9382 first vector, A's share
 * ```ts
 * const w = 0x2ee57912099d31560b3a44b1184b9b4866e904c49d12ac5042c97dca461b1a5fn;
 * const x = 0x43dd0fd7215bdcb482879fca3220c6a968e66d70b1356cac18bb26c84a78d729n;
 * (await startSpake2("A", w, x)).share; // 04a56fa8...
 * ```
 */
export async function startSpake2(
  role: Spake2Role,
  w: bigint,
  scalar: bigint = randomScalar(),
): Promise<Spake2State> {
  if (w <= 0n || w >= ORDER) throw new RangeError("Cannot start SPAKE2: w is out of range");
  const [{ wM, wN }, xG] = await Promise.all([blindsFor(w), multiplyBase(scalar)]);
  const share = xG.add(role === "A" ? wM : wN).toBytes(false);
  return { role, w, scalar, share };
}

/** Finishes an exchange with the peer's share; throws ProtocolError on an invalid share. */
export async function finishSpake2(
  state: Spake2State,
  peerShare: Uint8Array,
  options: Spake2FinishOptions = {},
): Promise<Spake2Keys> {
  let peer: Point;
  try {
    if (peerShare.length !== 65 || peerShare[0] !== 0x04) throw new Error("not uncompressed");
    peer = P256.fromBytes(peerShare);
    peer.assertValidity();
  } catch {
    throw new ProtocolError("Cannot finish handshake: the peer's key share is not a valid point");
  }
  const { wM, wN } = await blindsFor(state.w);
  const unblinded = peer.subtract(state.role === "A" ? wN : wM);
  if (unblinded.equals(P256.ZERO)) {
    throw new ProtocolError("Cannot finish handshake: the peer's key share is degenerate");
  }
  const K = (await multiply(unblinded, state.scalar)).toBytes(false);
  const [pA, pB] = state.role === "A" ? [state.share, peerShare] : [peerShare, state.share];
  const transcript = concat(
    lengthPrefixed(options.idA ?? new Uint8Array(0)),
    lengthPrefixed(options.idB ?? new Uint8Array(0)),
    lengthPrefixed(pA),
    lengthPrefixed(pB),
    lengthPrefixed(K),
    lengthPrefixed(scalarBytes(state.w)),
  );
  const hash = new Uint8Array(createHash("sha256").update(transcript).digest());
  const ke = hash.slice(0, 16);
  const ka = hash.slice(16, 32);
  const info = concat(
    new TextEncoder().encode("ConfirmationKeys"),
    options.aad ?? new Uint8Array(0),
  );
  const kc = new Uint8Array(hkdfSync("sha256", ka, new Uint8Array(0), info, 32));
  const kcA = kc.slice(0, 16);
  const kcB = kc.slice(16, 32);
  const cA = new Uint8Array(createHmac("sha256", kcA).update(transcript).digest());
  const cB = new Uint8Array(createHmac("sha256", kcB).update(transcript).digest());
  return {
    ke,
    ka,
    kcA,
    kcB,
    myConfirm: state.role === "A" ? cA : cB,
    peerConfirm: state.role === "A" ? cB : cA,
    transcript,
  };
}

/** Constant-time comparison of two confirmation MACs. */
export function confirmMatches(expected: Uint8Array, received: Uint8Array): boolean {
  return expected.length === received.length && timingSafeEqual(expected, received);
}

/** 32-byte big-endian encoding of a scalar. */
export function scalarBytes(value: bigint): Uint8Array {
  return Uint8Array.from(Buffer.from(value.toString(16).padStart(64, "0"), "hex"));
}

function lengthPrefixed(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + bytes.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(bytes.length), true);
  out.set(bytes, 8);
  return out;
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
