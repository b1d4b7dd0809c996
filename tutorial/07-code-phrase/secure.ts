// Chapter 7: a code phrase both sides know becomes a strong key, and every byte after that is
// encrypted and authenticated.
//
// Why not just hash the code into a key? A code like "7-ribbon-castle" has maybe 30 bits of
// entropy. Anyone who records the traffic could try every code offline, in minutes. A PAKE
// (password-authenticated key exchange; here SPAKE2, RFC 9382) gives an eavesdropper nothing to
// test guesses against: each side mixes the code into a Diffie-Hellman exchange, and a wrong
// guess shows only as a failed handshake with the real peer, one guess per connection.
//
//   sender   -> X = x*G + w*M   (33 bytes)       w = SHA-256(code) mod n; M, N fixed points
//   receiver -> Y = y*G + w*N   (33 bytes)       K = x*(Y - w*N) = y*(X - w*M)
//   both     -> HMAC(confirm key, role)          (32 bytes) proves the same K, hence the code
//   then records: [4 bytes: length] [AES-256-GCM of up to 64 KiB, nonce = counter]

// A chapter is copied on its own, without our deno.json: it names its package and version here.
// deno-lint-ignore no-import-prefix
import { p256 } from "npm:@noble/curves@2.4.0/nist.js";
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from "node:crypto";
import { readExact, type Stream, writeAll } from "./protocol.ts";

const G = p256.Point.BASE;
const ORDER = p256.Point.Fn.ORDER;
// RFC 9382's points for P-256: nobody knows their discrete logarithm.
const M = p256.Point.fromHex("02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f");
const N = p256.Point.fromHex("03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49");
const RECORD = 64 * 1024;

const scalar = (bytes: Uint8Array) => BigInt("0x" + Buffer.from(bytes).toString("hex")) % ORDER;

/** Runs SPAKE2 on `conn` and returns the encrypted channel; a wrong code throws. */
export async function handshake(
  conn: Deno.Conn,
  code: string,
  role: "sender" | "receiver",
): Promise<SecureConn> {
  const w = scalar(createHash("sha256").update(code).digest());
  const x = scalar(randomBytes(48)) || 1n;
  const [mine, theirs] = role === "sender" ? [M, N] : [N, M];
  const share = G.multiply(x).add(mine.multiply(w)).toBytes(true);
  await writeAll(conn, share);
  const peerShare = await readExact(conn, 33);
  if (peerShare === null) throw new Error("the peer closed during the handshake");
  const K = p256.Point.fromBytes(peerShare).subtract(theirs.multiply(w)).multiply(x);
  // Both sides put the sender's share first, so both hash the same transcript.
  const [X, Y] = role === "sender" ? [share, peerShare] : [peerShare, share];
  const secret = createHash("sha256").update(X).update(Y).update(K.toBytes(true)).digest();
  const keys = new Uint8Array(hkdfSync("sha256", secret, new Uint8Array(0), "tutorial", 128));
  const [confirmS, confirmR, keyS, keyR] = [0, 1, 2, 3].map((i) => keys.slice(32 * i, 32 * i + 32));
  const proof = (key: Uint8Array, who: string) => createHmac("sha256", key).update(who).digest();
  const [ours, expected] = role === "sender"
    ? [proof(confirmS!, "sender"), proof(confirmR!, "receiver")]
    : [proof(confirmR!, "receiver"), proof(confirmS!, "sender")];
  await writeAll(conn, ours);
  const got = await readExact(conn, 32);
  if (got === null || !timingSafeEqual(got, expected)) {
    throw new Error("wrong code phrase (the other side proved a different key)");
  }
  return role === "sender"
    ? new SecureConn(conn, keyS!, keyR!)
    : new SecureConn(conn, keyR!, keyS!);
}

/** A Stream whose bytes travel as AES-256-GCM records: read or altered, they are refused. */
export class SecureConn implements Stream {
  #sent = 0n;
  #received = 0n;
  #plain = new Uint8Array(0);

  constructor(
    private conn: Deno.Conn,
    private sendKey: Uint8Array,
    private receiveKey: Uint8Array,
  ) {}

  /** Nonce = record number: each is used once per key, and a replayed record fails to open. */
  #nonce(counter: bigint): Uint8Array {
    const nonce = new Uint8Array(12);
    new DataView(nonce.buffer).setBigUint64(4, counter);
    return nonce;
  }

  async write(p: Uint8Array): Promise<number> {
    const piece = p.subarray(0, RECORD);
    const cipher = createCipheriv("aes-256-gcm", this.sendKey, this.#nonce(this.#sent++));
    const sealed = Buffer.concat([cipher.update(piece), cipher.final(), cipher.getAuthTag()]);
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, sealed.length);
    await writeAll(this.conn, Buffer.concat([length, sealed]));
    return piece.length;
  }

  async read(p: Uint8Array): Promise<number | null> {
    if (this.#plain.length === 0) {
      const length = await readExact(this.conn, 4);
      if (length === null) return null;
      const size = new DataView(length.buffer).getUint32(0);
      if (size < 16 || size > RECORD + 16) throw new Error(`a record of ${size} bytes`);
      const sealed = (await readExact(this.conn, size))!;
      const decipher = createDecipheriv(
        "aes-256-gcm",
        this.receiveKey,
        this.#nonce(this.#received++),
      );
      decipher.setAuthTag(sealed.subarray(size - 16));
      try {
        this.#plain = Buffer.concat([
          decipher.update(sealed.subarray(0, size - 16)),
          decipher.final(),
        ]);
      } catch {
        throw new Error("a record failed authentication: altered, replayed or forged");
      }
    }
    const n = Math.min(p.length, this.#plain.length);
    p.set(this.#plain.subarray(0, n));
    this.#plain = this.#plain.subarray(n);
    return n;
  }
}

/** A fresh code: a number and three words, about 21 bits. Enough: each guess costs a connection. */
export function newCode(): string {
  // 32 words, so that a random byte modulo 32 picks each one equally often.
  const words = [
    "acid",
    "bark",
    "cave",
    "dune",
    "echo",
    "fern",
    "gold",
    "hawk",
    "iris",
    "jade",
    "kite",
    "lake",
    "moss",
    "nest",
    "oak",
    "pine",
    "quay",
    "reed",
    "sage",
    "tide",
    "urn",
    "vale",
    "wren",
    "yarn",
    "zinc",
    "amber",
    "birch",
    "coral",
    "delta",
    "ember",
    "flint",
    "grove",
  ];
  const pick = () => words[randomBytes(1)[0]! % words.length];
  return `${randomBytes(1)[0]! % 100}-${pick()}-${pick()}-${pick()}`;
}
