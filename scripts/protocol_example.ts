/**
 * Prints the worked example of PROTOCOL.md: a whole handshake and a whole one-file transfer in
 * sealed records both ways, with fixed secret scalars so that every byte is reproducible, and a
 * compressed DATA chunk. The key schedule and the frames are written out here step by step from
 * the spec, on node:crypto and @noble/curves only, and a test checks that ferry's own code
 * produces (and decodes) the same bytes.
 *
 *     deno run -A scripts/protocol_example.ts
 *
 * @module
 */

import { p256 } from "@noble/curves/nist.js";
import { createCipheriv, createHash, createHmac, hkdfSync } from "node:crypto";

const enc = new TextEncoder();
export const hex = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const cat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const u32 = (n: number) => new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
const lenLE = (b: Uint8Array) => {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(b.length), true);
  return cat(out, b);
};
const big = (b: Uint8Array) => BigInt("0x" + hex(b));
const fromHex = (text: string) => Uint8Array.from(text.match(/../g)!, (h) => parseInt(h, 16));
/** "hello\n" 100 times, compressed by zstd at level 1 (frame with its content size, no checksum). */
export const ZSTD_CHUNK = "28b52ffd00486d00003068656c6c6f0a01004f529522";
const bytes32 = (n: bigint) =>
  Uint8Array.from(n.toString(16).padStart(64, "0").match(/../g)!.map((h) => parseInt(h, 16)));

/** Every value of the worked example, by name. */
export function workedExample(): Record<string, string> {
  const code = "7-absurd-ribbon-castle";
  const order = p256.Point.Fn.ORDER;
  // 1. The password scalar w from the code phrase.
  const wide = new Uint8Array(
    hkdfSync("sha256", code, "", "ferry/2 code phrase", 48),
  );
  const w = (big(wide) % (order - 1n)) + 1n;
  // 2. Fixed scalars for the example (real runs draw them at random).
  const x = 0x43dd0fd7215bdcb482879fca3220c6a968e66d70b1356cac18bb26c84a78d729n;
  const y = 0xdcb60106f276b02606d8ef0a328c02e4b629f84f89786af5befb0bc75b6e66ben;
  const M = p256.Point.fromHex(
    "02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f",
  );
  const N = p256.Point.fromHex(
    "03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49",
  );
  const G = p256.Point.BASE;
  const pA = G.multiply(x).add(M.multiply(w)).toBytes(false);
  const pB = G.multiply(y).add(N.multiply(w)).toBytes(false);
  const K = p256.Point.fromBytes(pB).subtract(N.multiply(w)).multiply(x).toBytes(false);
  // 3. Preamble and hellos (sender role 1, receiver role 2, capabilities zstd|gzip = 3).
  const preamble = cat(enc.encode("FERRY"), new Uint8Array([0, 0, 3]));
  const helloS = new Uint8Array([1, 0, 0, 0, 3]);
  const helloR = new Uint8Array([2, 0, 0, 0, 3]);
  const record = (type: number, payload: Uint8Array) =>
    cat(u32(1 + payload.length), new Uint8Array([type]), payload);
  // 4. Transcript, confirmation keys and MACs.
  const idA = enc.encode("ferry sender");
  const idB = enc.encode("ferry receiver");
  const tt = cat(lenLE(idA), lenLE(idB), lenLE(pA), lenLE(pB), lenLE(K), lenLE(bytes32(w)));
  const hashTT = new Uint8Array(createHash("sha256").update(tt).digest());
  const ke = hashTT.slice(0, 16);
  const ka = hashTT.slice(16);
  const aad = cat(enc.encode("ferry/1 hello"), helloS, helloR);
  const kc = new Uint8Array(
    hkdfSync("sha256", ka, new Uint8Array(0), cat(enc.encode("ConfirmationKeys"), aad), 32),
  );
  const cA = new Uint8Array(createHmac("sha256", kc.slice(0, 16)).update(tt).digest());
  const cB = new Uint8Array(createHmac("sha256", kc.slice(16)).update(tt).digest());
  // 5. Session keys, one per direction.
  const s2r = new Uint8Array(
    hkdfSync("sha256", ke, new Uint8Array(0), enc.encode("ferry/1 sender to receiver"), 32),
  );
  const r2s = new Uint8Array(
    hkdfSync("sha256", ke, new Uint8Array(0), enc.encode("ferry/1 receiver to sender"), 32),
  );
  // 6. The first sealed frame from the sender: an OFFER of one file, hello.txt, 6 bytes.
  const name = enc.encode("hello.txt");
  const entry = new Uint8Array(23 + name.length);
  const dv = new DataView(entry.buffer);
  dv.setUint8(0, 1); // kind: file
  dv.setUint32(1, 0o644); // mode
  dv.setBigUint64(5, 1764150000000n); // mtime, ms
  dv.setBigUint64(13, 6n); // size
  dv.setUint16(21, name.length);
  entry.set(name, 23);
  const plain = cat(new Uint8Array([0x10]), entry);
  // Each direction counts its own records from 0: the nonce is 4 zero bytes and the counter.
  const seal = (key: Uint8Array, counter: number, plaintext: Uint8Array) => {
    const header = u32(plaintext.length + 16);
    const nonce = cat(new Uint8Array(4), new Uint8Array(4), u32(counter));
    const cipher = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
    cipher.setAAD(header, { plaintextLength: plaintext.length });
    return cat(
      header,
      new Uint8Array(cipher.update(plaintext)),
      (cipher.final(), new Uint8Array(cipher.getAuthTag())),
    );
  };
  const sealed = seal(s2r, 0, plain);
  // 7. The rest of the transfer. Sender: OFFER_END (1 entry, 6 bytes), then hello.txt whole in
  // SMALL_FILES (codec 0, raw: index 0, length 6, "hello\n"), then DONE (1 file, 6 bytes).
  const u64 = (n: number) => cat(u32(Math.floor(n / 2 ** 32)), u32(n % 2 ** 32));
  const offerEnd = cat(new Uint8Array([0x11]), u32(1), u64(6));
  const smallFiles = cat(new Uint8Array([0x25, 0]), u32(0), u32(6), enc.encode("hello\n"));
  const done = cat(new Uint8Array([0x30]), u32(1), u64(6));
  // Receiver: REPLY (action 0, SEND), RESULT (entry 0, status 0, ok), DONE (1 file, 6 bytes).
  const reply = new Uint8Array([0x12, 0]);
  const result = cat(new Uint8Array([0x24]), u32(0), new Uint8Array([0]));
  // 8. A DATA frame's payload with a zstd chunk (codec 1): "hello\n" 100 times, as zstd level 1
  // wrote it. A decoder needs only RFC 8878; the bytes a compressor writes may differ.
  const zstdData = cat(new Uint8Array([0x21, 1]), fromHex(ZSTD_CHUNK));
  return {
    code,
    w: w.toString(16).padStart(64, "0"),
    preamble: hex(preamble),
    "sender HELLO record": hex(record(0x01, helloS)),
    "receiver HELLO record": hex(record(0x01, helloR)),
    pA: hex(pA),
    pB: hex(pB),
    "sender PAKE record": hex(record(0x02, pA)),
    K: hex(K),
    "Hash(TT)": hex(hashTT),
    Ke: hex(ke),
    Ka: hex(ka),
    KcA: hex(kc.slice(0, 16)),
    KcB: hex(kc.slice(16)),
    cA: hex(cA),
    cB: hex(cB),
    "key sender to receiver": hex(s2r),
    "key receiver to sender": hex(r2s),
    "OFFER plaintext (type + payload)": hex(plain),
    "OFFER sealed record": hex(sealed),
    "sender OFFER_END sealed record (counter 1)": hex(seal(s2r, 1, offerEnd)),
    "receiver REPLY plaintext": hex(reply),
    "receiver REPLY sealed record (counter 0)": hex(seal(r2s, 0, reply)),
    "sender SMALL_FILES plaintext": hex(smallFiles),
    "sender SMALL_FILES sealed record (counter 2)": hex(seal(s2r, 2, smallFiles)),
    "sender DONE sealed record (counter 3)": hex(seal(s2r, 3, done)),
    "receiver RESULT plaintext": hex(result),
    "receiver RESULT sealed record (counter 1)": hex(seal(r2s, 1, result)),
    "receiver DONE sealed record (counter 2)": hex(seal(r2s, 2, done)),
    "DATA plaintext with a zstd chunk": hex(zstdData),
  };
}

if (import.meta.main) {
  for (const [name, value] of Object.entries(workedExample())) console.log(`${name}: ${value}`);
}
