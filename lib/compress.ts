/**
 * Per-chunk compression. `auto` tries zstd (level 1, fast) and keeps a chunk compressed only if
 * it saves at least 10%; after a chunk that does not pay it stops trying for a while, so
 * incompressible data (video, archives, random bytes) costs one trial every 32 chunks.
 *
 * The receiver never expands a chunk past CHUNK_SIZE: a zip bomb is refused, not inflated.
 *
 * @module
 */

import * as zlib from "node:zlib";
import {
  CAP_GZIP,
  CAP_ZSTD,
  CHUNK_SIZE,
  CODEC_GZIP,
  CODEC_RAW,
  CODEC_ZSTD,
  decodeCodecPayload,
} from "../protocol.ts";
import { ProtocolError } from "./errors.ts";
import { discard } from "./memory.ts";

/** What `--compress` accepts. */
export type CompressMode = "auto" | "zstd" | "gzip" | "none";
export const COMPRESS_MODES: readonly CompressMode[] = ["auto", "zstd", "gzip", "none"];

/** Our compression capabilities, announced in HELLO. */
export const COMPRESS_CAPS = CAP_ZSTD | CAP_GZIP;

/** Smallest chunk worth trying. */
const MIN_TRY = 512;
/** Chunks skipped after one that did not compress, in `auto`. */
const BACKOFF_CHUNKS = 32;
/** In `auto`, when compression has not been paying, this much of a chunk is tried first. */
const SAMPLE_SIZE = 64 * 1024;
/** A compressed chunk is kept only below this fraction of the original. */
const KEEP_RATIO = 0.9;

const ZSTD_OPTIONS = { params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 } };
const GZIP_OPTIONS = { level: 1 };

/** Encoded chunk: the codec byte for DATA and the bytes to send. */
export interface Compressed {
  codec: number;
  data: Uint8Array;
}

/**
 * Compresses chunks for one transfer; remembers whether compression has been paying.
 *
 * In `auto`, a chunk that does not shrink makes the next 32 go raw untried. After that pause,
 * and at the start, a 64 KiB sample is tried first and the whole chunk only if the sample
 * shrank: on incompressible data that costs one sample per 33 chunks (~0.1 ms), not a 1 MiB
 * attempt (~3 ms).
 */
export class ChunkCompressor {
  #codec: number;
  #auto: boolean;
  #skip = 0;
  #paying = false;

  /** @param peerCaps The peer's HELLO capabilities: we only use a codec it announced. */
  constructor(mode: CompressMode, peerCaps: number) {
    this.#auto = mode === "auto";
    if ((mode === "auto" || mode === "zstd") && peerCaps & CAP_ZSTD) this.#codec = CODEC_ZSTD;
    else if (mode === "gzip" && peerCaps & CAP_GZIP) this.#codec = CODEC_GZIP;
    else this.#codec = CODEC_RAW;
  }

  compress(chunk: Uint8Array): Compressed {
    const raw = { codec: CODEC_RAW, data: chunk };
    if (this.#codec === CODEC_RAW || chunk.length < MIN_TRY) return raw;
    if (this.#auto) {
      if (this.#skip > 0) {
        this.#skip--;
        return raw;
      }
      if (!this.#paying && chunk.length > SAMPLE_SIZE && !this.#shrinks(chunk, SAMPLE_SIZE)) {
        this.#skip = BACKOFF_CHUNKS;
        return raw;
      }
    }
    const packed = this.#pack(chunk);
    this.#paying = packed.length <= chunk.length * KEEP_RATIO;
    if (this.#paying) return { codec: this.#codec, data: packed };
    if (this.#auto) this.#skip = BACKOFF_CHUNKS;
    return raw;
  }

  #shrinks(chunk: Uint8Array, sampleSize: number): boolean {
    return this.#pack(chunk.subarray(0, sampleSize)).length <= sampleSize * KEEP_RATIO;
  }

  #pack(bytes: Uint8Array): Uint8Array {
    const packed = this.#codec === CODEC_ZSTD
      ? zlib.zstdCompressSync(bytes, ZSTD_OPTIONS)
      : zlib.gzipSync(bytes, GZIP_OPTIONS);
    discard(packed.length);
    return packed;
  }
}

/**
 * Decodes a `codec (1) || data` payload (DATA, SMALL_FILES); never produces more than `limit`
 * bytes. `frame` names the frame in errors.
 */
export function decompressPayload(payload: Uint8Array, limit: number, frame: string): Uint8Array {
  const { codec, data } = decodeCodecPayload(payload, frame);
  return decompressChunk(codec, data, limit);
}

/** Decodes one DATA payload body; never produces more than `limit` bytes. */
export function decompressChunk(codec: number, data: Uint8Array, limit = CHUNK_SIZE): Uint8Array {
  if (codec === CODEC_RAW) {
    // Raw is held to the same limit as what a compressed chunk may decode to.
    if (data.length > limit) {
      throw new ProtocolError(`Cannot take chunk: ${data.length} bytes, more than ${limit}`);
    }
    return data;
  }
  if (codec !== CODEC_ZSTD && codec !== CODEC_GZIP) {
    throw new ProtocolError(`Cannot decompress chunk: unknown codec ${codec}`);
  }
  const options = { maxOutputLength: limit };
  let plain: Uint8Array;
  try {
    plain = codec === CODEC_ZSTD
      ? zlib.zstdDecompressSync(data, options)
      : zlib.gunzipSync(data, options);
  } catch (err) {
    if (err instanceof RangeError) {
      throw new ProtocolError(`Cannot decompress chunk: it expands beyond ${limit} bytes`);
    }
    throw new ProtocolError("Cannot decompress chunk: corrupt compressed data");
  }
  discard(plain.length);
  return plain;
}
