import { assertEquals, assertThrows } from "./assert.ts";
import * as zlib from "node:zlib";
import { ChunkCompressor, decompressChunk } from "../lib/compress.ts";
import { CAP_GZIP, CAP_ZSTD, CHUNK_SIZE, CODEC_GZIP, CODEC_RAW, CODEC_ZSTD } from "../protocol.ts";
import { ProtocolError } from "../lib/errors.ts";
import { randomBytes } from "./helpers.ts";

const text = new TextEncoder().encode(
  "2026-11-26T10:00:00Z INFO request served path=/api/items status=200 ms=12\n".repeat(14000),
);

Deno.test("ChunkCompressor auto compresses text with zstd and it round-trips", () => {
  const c = new ChunkCompressor("auto", CAP_ZSTD | CAP_GZIP);
  const packed = c.compress(text);
  assertEquals(packed.codec, CODEC_ZSTD);
  assertEquals(packed.data.length < text.length / 3, true);
  assertEquals(new Uint8Array(decompressChunk(packed.codec, packed.data)), text);
});

Deno.test("ChunkCompressor gzip round-trips; none and a peer without zstd send raw", () => {
  const gz = new ChunkCompressor("gzip", CAP_GZIP).compress(text);
  assertEquals(gz.codec, CODEC_GZIP);
  assertEquals(new Uint8Array(decompressChunk(gz.codec, gz.data)), text);
  assertEquals(new ChunkCompressor("none", CAP_ZSTD).compress(text).codec, CODEC_RAW);
  assertEquals(new ChunkCompressor("auto", 0).compress(text).codec, CODEC_RAW);
});

Deno.test("ChunkCompressor auto sends incompressible data raw and stops trying for a while", () => {
  const c = new ChunkCompressor("auto", CAP_ZSTD);
  const noise = randomBytes(256 * 1024, 7);
  assertEquals(c.compress(noise).codec, CODEC_RAW);
  // Now it backs off: even text is sent raw until the next trial.
  assertEquals(c.compress(text).codec, CODEC_RAW);
});

Deno.test("ChunkCompressor auto tries a sample first: an incompressible start keeps a chunk raw", () => {
  // 64 KiB of noise, then text: zstd alone would shrink it, auto judges by the sample.
  const chunk = new Uint8Array(512 * 1024);
  chunk.set(randomBytes(64 * 1024, 9));
  chunk.set(text.subarray(0, chunk.length - 64 * 1024), 64 * 1024);
  assertEquals(new ChunkCompressor("zstd", CAP_ZSTD).compress(chunk).codec, CODEC_ZSTD);
  assertEquals(new ChunkCompressor("auto", CAP_ZSTD).compress(chunk).codec, CODEC_RAW);
  // Once compression pays, whole chunks are compressed directly, the same chunk included.
  const paying = new ChunkCompressor("auto", CAP_ZSTD);
  assertEquals(paying.compress(text).codec, CODEC_ZSTD);
  assertEquals(paying.compress(chunk).codec, CODEC_ZSTD);
});

Deno.test("decompressChunk() refuses a zip bomb instead of expanding it", () => {
  const bomb = zlib.zstdCompressSync(new Uint8Array(64 * 1024 * 1024));
  assertEquals(bomb.length < 10_000, true);
  assertThrows(() => decompressChunk(CODEC_ZSTD, bomb), ProtocolError, `beyond ${CHUNK_SIZE}`);
  const gzBomb = zlib.gzipSync(new Uint8Array(8 * 1024 * 1024));
  assertThrows(() => decompressChunk(CODEC_GZIP, gzBomb), ProtocolError, "beyond");
});

Deno.test("decompressChunk() refuses corrupt data and unknown codecs", () => {
  assertThrows(
    () => decompressChunk(CODEC_ZSTD, new Uint8Array([1, 2, 3])),
    ProtocolError,
    "corrupt",
  );
  assertThrows(() => decompressChunk(9, new Uint8Array([1])), ProtocolError, "unknown codec");
});
