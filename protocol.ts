/**
 * The ferry wire, version 3. This is the only file that knows byte layouts: constants, frame
 * types, limits, and an encode/decode pair for every frame. PROTOCOL.md describes the same
 * bytes in prose for anyone writing a compatible peer.
 *
 * Every connection starts with an 8-byte preamble (MAGIC + VERSION) from each side. After it,
 * everything is a record: a 4-byte big-endian length, then that many bytes of body. Before the
 * handshake completes a body is `type (1 byte) + payload`; after it, the body is that same
 * plaintext sealed with ChaCha20-Poly1305 (ciphertext + 16-byte tag).
 *
 * Why one long file: it is the wire's single source, every layout and its decoder side by side,
 * so that a reader checks PROTOCOL.md against one place.
 *
 * @module
 */

import { ProtocolError, WIRE } from "./lib/errors.ts";

/** First bytes on the wire from both sides: "FERRY" and a NUL. */
export const MAGIC: Uint8Array = new Uint8Array([0x46, 0x45, 0x52, 0x52, 0x59, 0x00]);
/** Protocol version, sent as an unsigned 16-bit big-endian number right after MAGIC. */
export const VERSION = 3;
/** MAGIC + VERSION. */
export const PREAMBLE_SIZE = 8;
/** The tutorial's port. */
export const DEFAULT_PORT = 5001;

/** Bytes of file data per DATA frame (1 MiB: under Deno, 64 KiB reads were 3x slower). */
export const CHUNK_SIZE = 1 << 20;
/** Size of the record length field. */
export const RECORD_HEADER_SIZE = 4;
/** Poly1305 tag size. */
export const TAG_SIZE = 16;
/** Largest plaintext body (type + payload): a full chunk plus the DATA codec byte, with room. */
export const MAX_PLAIN_BODY: number = CHUNK_SIZE + 64;
/** Largest record body accepted from the wire; anything above is refused before allocating. */
export const MAX_RECORD_BODY: number = MAX_PLAIN_BODY + TAG_SIZE;
/** Largest payload of a control frame (offer and reply batches, errors). */
export const MAX_CONTROL_PAYLOAD = 256 * 1024;

/** Longest relative path, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 4096;
/**
 * Longest single path component, in UTF-8 bytes: the usual file-system limit of 255, less the
 * 11 bytes of the ".ferry-part" suffix the receiver writes to first.
 */
export const MAX_COMPONENT_BYTES = 244;
/** Most components (folder levels) in one path. */
export const MAX_DEPTH = 128;
/** Most entries one offer may hold. */
export const MAX_ENTRIES = 1_000_000;
/** Longest human-readable message in an ERROR frame, in UTF-8 bytes. */
export const MAX_MESSAGE_BYTES = 512;
/** SEC1 uncompressed P-256 point. */
export const SHARE_SIZE = 65;
/** HMAC-SHA256 key confirmation. */
export const CONFIRM_SIZE = 32;
/** XXH3-128 digest of bytes the two sides compare without sending them (RESUME, HAVE). */
export const DIGEST_SIZE = 16;

// Frame types. 0x0_ handshake (plaintext), 0x1_ offer, 0x2_ file data, 0x3_ end, 0x7f error.
/** HELLO (plaintext): role and capabilities. */
export const FRAME_HELLO = 0x01;
/** PAKE (plaintext): a SPAKE2 key share. */
export const FRAME_PAKE = 0x02;
/** CONFIRM (plaintext): the key confirmation MAC. */
export const FRAME_CONFIRM = 0x03;
/** OFFER: a batch of offered entries. */
export const FRAME_OFFER = 0x10;
/** OFFER_END: the offer is complete (count and total size). */
export const FRAME_OFFER_END = 0x11;
/** REPLY: the receiver's answers for a batch of entries. */
export const FRAME_REPLY = 0x12;
/** FILE: the sender starts an entry at an offset. */
export const FRAME_FILE = 0x20;
/** DATA: a chunk of the current file, codec byte first. */
export const FRAME_DATA = 0x21;
/** FILE_END: the current file is complete. */
export const FRAME_FILE_END = 0x22;
/**
 * SKIP: for an entry the receiver answered HAVE, the sender sends its own digest instead of the
 * file; the receiver alone compares, and its RESULT says identical or exists.
 */
export const FRAME_SKIP = 0x23;
/** RESULT: the receiver's verdicts on settled entries. */
export const FRAME_RESULT = 0x24;
/** SMALL_FILES: several small files whole, in one frame. */
export const FRAME_SMALL_FILES = 0x25;
/**
 * RESTART (receiver to sender): the sender's digest of a resumed file's first bytes is not the
 * receiver's; what follows of that FILE is dropped, and the sender sends the file again from 0.
 */
export const FRAME_RESTART = 0x26;
/** DONE: totals; the last frame from each side. */
export const FRAME_DONE = 0x30;
/** ERROR: a wire error code and message; the sender of it closes next. */
export const FRAME_ERROR = 0x7f;

/** Role byte of the sender in HELLO and in discovery packets. */
export const ROLE_SENDER = 1;
/** Role byte of the receiver. */
export const ROLE_RECEIVER = 2;

/** Capability bit in HELLO: the side can decompress zstd. */
export const CAP_ZSTD = 1 << 0;
/** Capability bit: the side can decompress gzip. */
export const CAP_GZIP = 1 << 1;

/** DATA codec byte (first byte of every DATA payload): the chunk as it is. */
export const CODEC_RAW = 0;
/** DATA codec: zstd-compressed chunk. */
export const CODEC_ZSTD = 1;
/** DATA codec: gzip-compressed chunk. */
export const CODEC_GZIP = 2;

/** Entry kind in an offer: a regular file. */
export const KIND_FILE = 1;
/** Entry kind: a folder. */
export const KIND_DIR = 2;
/** Entry kind: a stream of unknown size (stdin). */
export const KIND_STREAM = 3;

/** Reply action (one per offered entry): send it whole. */
export const REPLY_SEND = 0;
/** Reply action: the receiver has this many bytes of the file (offset); the sender may resume. */
export const REPLY_RESUME = 1;
/** Reply action: the receiver has a file of this name and size; the sender sends its digest. */
export const REPLY_HAVE = 2;
/** Reply action: refused, for the reason given. */
export const REPLY_REFUSE = 3;

/** Files up to this size travel whole in a SMALL_FILES frame (no FILE, DATA, FILE_END). */
export const SMALL_FILE_MAX = 64 * 1024;
/** Bytes before each file's data in a SMALL_FILES body: index, length. */
export const SMALL_FILE_HEADER_SIZE: number = 4 + 4;
/** Most bytes a SMALL_FILES body may decode to: what fits in one frame beside its codec byte. */
export const MAX_SMALL_FILES_BODY: number = MAX_PLAIN_BODY - 2;
/**
 * Result status: written and verified. Every status but OK and IDENTICAL is a wire error code
 * of PROTOCOL.md section 8 (2 to 127), the reason the file failed.
 */
export const RESULT_OK = 0;
/** Result status: the file was already there, identical. Above every wire error code. */
export const RESULT_IDENTICAL = 0x80;

/** Hello: who is speaking and what it can do; its bytes are bound into the key confirmation. */
export interface Hello {
  /** {@linkcode ROLE_SENDER} or {@linkcode ROLE_RECEIVER}. */
  role: number;
  /** Capability bits ({@linkcode CAP_ZSTD}, {@linkcode CAP_GZIP}). */
  caps: number;
}

/** One offered file system entry. `name` is a relative POSIX path. */
export interface Entry {
  /** {@linkcode KIND_FILE}, {@linkcode KIND_DIR} or {@linkcode KIND_STREAM}. */
  kind: number;
  /** Permission bits (the receiver masks them). */
  mode: number;
  /** Modification time, milliseconds since the epoch. */
  mtime: number;
  /** Size in bytes; 0 for folders and streams. */
  size: number;
  /** Relative POSIX path, checked by the receiver before anything is created. */
  name: string;
}

/**
 * The receiver's answer for one entry. No digest: the receiver never says what its bytes hash
 * to, only (in RESULT or RESTART) whether the sender's digest matched them.
 */
export interface Reply {
  /** One of the REPLY_ actions. */
  action: number;
  /** REPLY_RESUME: bytes the receiver has of the file; 0 otherwise. */
  offset: number;
  /** REPLY_REFUSE: wire error code; 0 otherwise. */
  reason: number;
}

/** Trailer of the offer: how many entries were sent and their total size. */
export interface OfferEnd {
  /** Entries offered in all. */
  count: number;
  /** Their sizes added up. */
  totalBytes: number;
}

/** FILE: the sender starts entry `index` at byte `offset`. */
export interface FileStart {
  /** The entry's position in the offer. */
  index: number;
  /** First byte sent: 0, or the resume offset the receiver replied. */
  offset: number;
  /** With an offset above 0: the digest of the sender's first `offset` bytes (required). */
  digest?: Uint8Array;
}

/** SKIP: the sender's digest of a whole file the receiver said it has (HAVE). */
export interface Skip {
  /** The entry's position in the offer. */
  index: number;
  /** The digest of the sender's file. */
  digest: Uint8Array;
}

/**
 * FILE_END: total bytes of the file. No digest: every byte came in records the AEAD
 * authenticated, in order (see PROTOCOL.md, "What a digest is for").
 */
export interface FileEnd {
  /** Bytes of the whole file, the resumed part included. */
  size: number;
}

/** One file in a SMALL_FILES body: which entry it is. */
export interface SmallFile {
  /** The entry's position in the offer. */
  index: number;
}

/** RESULT: the receiver's verdict on one entry (a RESULT frame carries a list). */
export interface FileResult {
  /** The entry's position in the offer. */
  index: number;
  /** {@linkcode RESULT_OK}, {@linkcode RESULT_IDENTICAL}, or a wire error code. */
  status: number;
}

/** DONE: totals, from each side at the very end. */
export interface Done {
  /** Files this side sent (sender) or wrote (receiver). */
  files: number;
  /** File bytes this side sent or wrote. */
  bytes: number;
}

/** ERROR: a wire error code and a short message. */
export interface ErrorFrame {
  /** A wire error code (PROTOCOL.md section 8). */
  code: number;
  /** Words for the person at the other end, at most {@linkcode MAX_MESSAGE_BYTES}. */
  message: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Sequential reader over a payload; every read is bounds-checked. */
class Cursor {
  #view: DataView;
  #bytes: Uint8Array;
  #pos = 0;
  #what: string;
  constructor(bytes: Uint8Array, what: string) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#what = what;
  }
  #need(n: number): number {
    if (this.#pos + n > this.#bytes.length) {
      throw new ProtocolError(
        `Cannot decode ${this.#what}: payload has ${this.#bytes.length} bytes, expected at least ${
          this.#pos + n
        }`,
      );
    }
    const at = this.#pos;
    this.#pos += n;
    return at;
  }
  u8(): number {
    return this.#view.getUint8(this.#need(1));
  }
  u16(): number {
    return this.#view.getUint16(this.#need(2));
  }
  u32(): number {
    return this.#view.getUint32(this.#need(4));
  }
  u64(): number {
    // Two 32-bit halves: a JavaScript number holds integers up to 2^53 exactly.
    const at = this.#need(8);
    const high = this.#view.getUint32(at);
    if (high >= 2 ** 21) {
      throw new ProtocolError(`Cannot decode ${this.#what}: a 64-bit value is too large`);
    }
    return high * 2 ** 32 + this.#view.getUint32(at + 4);
  }
  bytes(n: number): Uint8Array {
    const at = this.#need(n);
    return this.#bytes.subarray(at, at + n);
  }
  get done(): boolean {
    return this.#pos === this.#bytes.length;
  }
  end(): void {
    if (!this.done) {
      throw new ProtocolError(
        `Cannot decode ${this.#what}: ${this.#bytes.length - this.#pos} unexpected trailing bytes`,
      );
    }
  }
}

/** Growable writer for control payloads. */
class Builder {
  #buf = new Uint8Array(256);
  #view = new DataView(this.#buf.buffer);
  #len = 0;
  #room(n: number): number {
    if (this.#len + n > this.#buf.length) {
      const bigger = new Uint8Array(Math.max(this.#buf.length * 2, this.#len + n));
      bigger.set(this.#buf.subarray(0, this.#len));
      this.#buf = bigger;
      this.#view = new DataView(bigger.buffer);
    }
    const at = this.#len;
    this.#len += n;
    return at;
  }
  u8(v: number): this {
    const at = this.#room(1);
    this.#view.setUint8(at, v);
    return this;
  }
  u16(v: number): this {
    const at = this.#room(2);
    this.#view.setUint16(at, v);
    return this;
  }
  u32(v: number): this {
    const at = this.#room(4);
    this.#view.setUint32(at, v);
    return this;
  }
  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`Cannot encode ${v} as u64`);
    const at = this.#room(8);
    this.#view.setUint32(at, Math.floor(v / 2 ** 32));
    this.#view.setUint32(at + 4, v % 2 ** 32);
    return this;
  }
  bytes(b: Uint8Array): this {
    // Grow first: #room() may replace the buffer.
    const at = this.#room(b.length);
    this.#buf.set(b, at);
    return this;
  }
  /** `text` in UTF-8 after its length (u16), encoded in place: an offer holds many names. */
  text16(text: string): this {
    // Room for the worst case (3 bytes per UTF-16 unit), then keep only what was written.
    const at = this.#room(2 + 3 * text.length);
    const { written } = encoder.encodeInto(text, this.#buf.subarray(at + 2));
    if (written > 0xffff) throw new RangeError(`Cannot encode a text of ${written} bytes`);
    this.#view.setUint16(at, written);
    this.#len = at + 2 + written;
    return this;
  }
  get length(): number {
    return this.#len;
  }
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
}

/** The 8-byte preamble: MAGIC then VERSION. */
export function encodePreamble(version: number = VERSION): Uint8Array {
  const out = new Uint8Array(PREAMBLE_SIZE);
  out.set(MAGIC);
  new DataView(out.buffer).setUint16(MAGIC.length, version);
  return out;
}

/** Checks a received preamble; returns the peer's version or throws on garbage. */
export function decodePreamble(bytes: Uint8Array): number {
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) {
      throw new ProtocolError("Cannot start: the peer is not speaking the ferry protocol");
    }
  }
  const version = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .getUint16(MAGIC.length);
  if (version !== VERSION) {
    throw new ProtocolError(
      `Cannot start: peer speaks protocol version ${version}, this ferry speaks ${VERSION}`,
      WIRE.VERSION,
    );
  }
  return version;
}

/** A plaintext record (before the handshake): length, type, payload. */
export function encodePlainRecord(type: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(RECORD_HEADER_SIZE + 1 + payload.length);
  new DataView(out.buffer).setUint32(0, 1 + payload.length);
  out[RECORD_HEADER_SIZE] = type;
  out.set(payload, RECORD_HEADER_SIZE + 1);
  return out;
}

/** Bytes of a sealed record's nonce: 4 zero bytes, then the direction's record counter. */
export const NONCE_SIZE = 12;

/**
 * Writes the nonce of record number `counter` (u64, from 0 in each direction) into `nonce`, a
 * view of {@linkcode NONCE_SIZE} bytes whose first 4 stay zero.
 */
export function writeNonce(nonce: DataView, counter: bigint): void {
  nonce.setBigUint64(4, counter);
}

/** Writes a record header, the body length as u32, at the start of `into`. */
export function writeRecordHeader(into: Uint8Array, bodyLength: number): void {
  new DataView(into.buffer, into.byteOffset, RECORD_HEADER_SIZE).setUint32(0, bodyLength);
}

/**
 * Reads the body length from a record header and checks it against the limits (sealed bodies
 * carry at least a type byte and a tag) before a byte more is read or allocated.
 */
export function readRecordHeader(header: Uint8Array, sealed: boolean): number {
  const length = new DataView(header.buffer, header.byteOffset, RECORD_HEADER_SIZE).getUint32(0);
  checkRecordLength(length, sealed);
  return length;
}

const CODEC_PREFIXES = [CODEC_RAW, CODEC_ZSTD, CODEC_GZIP].map((codec) => new Uint8Array([codec]));

/** The codec byte that starts a DATA or SMALL_FILES payload, as a one-byte array (shared). */
export function codecPrefix(codec: number): Uint8Array {
  const prefix = CODEC_PREFIXES[codec];
  if (!prefix) throw new RangeError(`Cannot encode codec ${codec}`);
  return prefix;
}

/** Splits a DATA or SMALL_FILES payload into its codec byte and data; throws if it is empty. */
export function decodeCodecPayload(
  payload: Uint8Array,
  frame: string,
): { codec: number; data: Uint8Array } {
  if (payload.length < 1) throw new ProtocolError(`Cannot take ${frame}: empty frame`);
  return { codec: payload[0]!, data: payload.subarray(1) };
}

/** Checks a record length read from the wire against the limit before anything is allocated. */
export function checkRecordLength(length: number, sealed: boolean): void {
  const min = sealed ? 1 + TAG_SIZE : 1;
  const max = sealed ? MAX_RECORD_BODY : MAX_PLAIN_BODY;
  if (length < min || length > max) {
    throw new ProtocolError(`Cannot read frame: length ${length} is outside ${min}..${max}`);
  }
}

/** HELLO payload: role (u8), capabilities (u32). */
export function encodeHello(hello: Hello): Uint8Array {
  return new Builder().u8(hello.role).u32(hello.caps).finish();
}

/** Decodes a HELLO payload; throws ProtocolError if it is malformed. */
export function decodeHello(payload: Uint8Array): Hello {
  const c = new Cursor(payload, "HELLO");
  const hello = { role: c.u8(), caps: c.u32() };
  c.end();
  if (hello.role !== ROLE_SENDER && hello.role !== ROLE_RECEIVER) {
    throw new ProtocolError(`Cannot decode HELLO: unknown role ${hello.role}`);
  }
  return hello;
}

/** Fixed bytes of one OFFER entry: kind (1), mode (4), mtime (8), size (8), name length (2). */
const OFFER_ENTRY_FIXED = 1 + 4 + 8 + 8 + 2;
/** Most bytes of one REPLY: action (1), then an offset (8) or a reason (1). */
const REPLY_MAX = 1 + 8;
/** Bytes of one RESULT verdict: index (4), status (1). */
const RESULT_SIZE = 4 + 1;

/**
 * Packs entries into OFFER payloads of at most MAX_CONTROL_PAYLOAD bytes each.
 *
 * @example Round trip
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const entry = { kind: KIND_FILE, mode: 0o644, mtime: 0, size: 3, name: "a.txt" };
 * const [payload] = encodeOffer([entry]);
 * assertEquals(decodeOffer(payload!), [entry]);
 * ```
 */
export function encodeOffer(entries: readonly Entry[]): Uint8Array[] {
  const batches: Uint8Array[] = [];
  let b = new Builder();
  for (const entry of entries) {
    // The fixed fields, and at most 3 bytes of UTF-8 per UTF-16 unit of the name.
    if (b.length + OFFER_ENTRY_FIXED + 3 * entry.name.length > MAX_CONTROL_PAYLOAD) {
      batches.push(b.finish());
      b = new Builder();
    }
    b.u8(entry.kind).u32(entry.mode).u64(entry.mtime).u64(entry.size).text16(entry.name);
  }
  if (b.length > 0) batches.push(b.finish());
  return batches;
}

/** Decodes one OFFER payload. Names are checked for length and UTF-8 here, for safety later. */
export function decodeOffer(payload: Uint8Array): Entry[] {
  const c = new Cursor(payload, "OFFER");
  const entries: Entry[] = [];
  while (!c.done) {
    const kind = c.u8();
    const mode = c.u32();
    const mtime = c.u64();
    const size = c.u64();
    const nameLength = c.u16();
    const nameBytes = c.bytes(nameLength);
    // A name too long or not UTF-8 is that entry's problem, not the session's: it decodes as
    // the empty name, which the receiver refuses (code 9) like any other unsafe name.
    let name = "";
    if (nameLength <= MAX_NAME_BYTES) {
      try {
        name = decoder.decode(nameBytes);
      } catch {
        name = "";
      }
    }
    if (kind !== KIND_FILE && kind !== KIND_DIR && kind !== KIND_STREAM) {
      throw new ProtocolError(`Cannot decode OFFER: unknown entry kind ${kind}`);
    }
    entries.push({ kind, mode, mtime, size, name });
  }
  return entries;
}

/** OFFER_END payload: count (u32), total bytes (u64). */
export function encodeOfferEnd(end: OfferEnd): Uint8Array {
  return new Builder().u32(end.count).u64(end.totalBytes).finish();
}

/** Decodes an OFFER_END payload; throws ProtocolError if it is malformed. */
export function decodeOfferEnd(payload: Uint8Array): OfferEnd {
  const c = new Cursor(payload, "OFFER_END");
  const end = { count: c.u32(), totalBytes: c.u64() };
  c.end();
  return end;
}

/** Packs replies into REPLY payloads, in entry order. */
export function encodeReplies(replies: readonly Reply[]): Uint8Array[] {
  const batches: Uint8Array[] = [];
  let b = new Builder();
  for (const reply of replies) {
    if (b.length + REPLY_MAX > MAX_CONTROL_PAYLOAD) {
      batches.push(b.finish());
      b = new Builder();
    }
    b.u8(reply.action);
    if (reply.action === REPLY_RESUME) {
      b.u64(reply.offset);
    } else if (reply.action === REPLY_REFUSE) {
      b.u8(reply.reason);
    }
  }
  if (b.length > 0) batches.push(b.finish());
  return batches;
}

/** Decodes a REPLY payload into one reply per entry; throws ProtocolError if it is malformed. */
export function decodeReplies(payload: Uint8Array): Reply[] {
  const c = new Cursor(payload, "REPLY");
  const replies: Reply[] = [];
  while (!c.done) {
    const action = c.u8();
    const reply: Reply = { action, offset: 0, reason: 0 };
    if (action === REPLY_RESUME) {
      reply.offset = c.u64();
      if (reply.offset === 0) throw new ProtocolError("Cannot decode REPLY: RESUME at byte 0");
    } else if (action === REPLY_REFUSE) {
      reply.reason = c.u8();
      if (!isFailureStatus(reply.reason)) {
        throw new ProtocolError(`Cannot decode REPLY: ${reply.reason} is not a refusal reason`);
      }
    } else if (action !== REPLY_SEND && action !== REPLY_HAVE) {
      throw new ProtocolError(`Cannot decode REPLY: unknown action ${action}`);
    }
    replies.push(reply);
  }
  return replies;
}

/** An empty digest, for a FILE that starts at 0 (shared: a zero-length array cannot change). */
export const NO_DIGEST: Uint8Array = new Uint8Array(0);

/**
 * FILE payload: index (u32), offset (u64), and with an offset above 0 the digest of the
 * sender's bytes before it: the sender commits to its bytes, the receiver only compares.
 */
export function encodeFileStart(start: FileStart): Uint8Array {
  const b = new Builder().u32(start.index).u64(start.offset);
  if (start.offset > 0) b.bytes(checkedDigest(start.digest ?? NO_DIGEST));
  return b.finish();
}

/** Decodes a FILE payload; throws ProtocolError if it is malformed. */
export function decodeFileStart(payload: Uint8Array): FileStart {
  const c = new Cursor(payload, "FILE");
  const index = c.u32();
  const offset = c.u64();
  const digest = offset > 0 ? c.bytes(DIGEST_SIZE).slice() : NO_DIGEST;
  c.end();
  return { index, offset, digest };
}

/** FILE_END payload: size (u64). */
export function encodeFileEnd(end: FileEnd): Uint8Array {
  return new Builder().u64(end.size).finish();
}

/** Decodes a FILE_END payload; throws ProtocolError if it is malformed. */
export function decodeFileEnd(payload: Uint8Array): FileEnd {
  const c = new Cursor(payload, "FILE_END");
  const end = { size: c.u64() };
  c.end();
  return end;
}

/** SKIP payload: the entry index (u32) and the digest of the sender's whole file. */
export function encodeSkip(skip: Skip): Uint8Array {
  return new Builder().u32(skip.index).bytes(checkedDigest(skip.digest)).finish();
}

/** Decodes a SKIP payload; throws ProtocolError if it is malformed. */
export function decodeSkip(payload: Uint8Array): Skip {
  const c = new Cursor(payload, "SKIP");
  const skip = { index: c.u32(), digest: c.bytes(DIGEST_SIZE).slice() };
  c.end();
  return skip;
}

/** RESTART payload: the entry index (u32). */
export function encodeRestart(index: number): Uint8Array {
  return new Builder().u32(index).finish();
}

/** Decodes a RESTART payload; throws ProtocolError if it is malformed. */
export function decodeRestart(payload: Uint8Array): number {
  const c = new Cursor(payload, "RESTART");
  const index = c.u32();
  c.end();
  return index;
}

function checkedDigest(digest: Uint8Array): Uint8Array {
  if (digest.length !== DIGEST_SIZE) {
    throw new RangeError(`Cannot encode a digest of ${digest.length} bytes`);
  }
  return digest;
}

/**
 * True if `status` may stand in a RESULT or a REFUSE as the reason an entry failed: a wire error
 * code other than 1 (protocol error: that ends the session with ERROR instead), 2 to 127.
 */
export function isFailureStatus(status: number): boolean {
  return status >= 2 && status <= 127;
}

/** Packs verdicts into RESULT payloads: 5 bytes each (index, status). */
export function encodeResults(results: readonly FileResult[]): Uint8Array[] {
  const batches: Uint8Array[] = [];
  let b = new Builder();
  for (const result of results) {
    if (b.length + RESULT_SIZE > MAX_CONTROL_PAYLOAD) {
      batches.push(b.finish());
      b = new Builder();
    }
    b.u32(result.index).u8(result.status);
  }
  if (b.length > 0) batches.push(b.finish());
  return batches;
}

/** Decodes a RESULT payload into verdicts; throws ProtocolError if it is malformed. */
export function decodeResults(payload: Uint8Array): FileResult[] {
  const c = new Cursor(payload, "RESULT");
  const results: FileResult[] = [];
  while (!c.done) {
    const result = { index: c.u32(), status: c.u8() };
    if (
      result.status !== RESULT_OK && result.status !== RESULT_IDENTICAL &&
      !isFailureStatus(result.status)
    ) {
      throw new ProtocolError(`Cannot decode RESULT: unknown status ${result.status}`);
    }
    results.push(result);
  }
  return results;
}

/**
 * Writes one SMALL_FILES item header into `target` at `at`; the file's `length` bytes follow it.
 * The sender reads files straight into the body behind these headers. The frame's payload is
 * `codec (1) || body`, the body coded as one chunk: many small files compress together.
 */
export function writeSmallFileHeader(
  target: Uint8Array,
  at: number,
  small: SmallFile & { length: number },
): void {
  const view = new DataView(target.buffer, target.byteOffset + at, SMALL_FILE_HEADER_SIZE);
  view.setUint32(0, small.index);
  view.setUint32(4, small.length);
}

/** A SMALL_FILES body from its items, before coding (for tests and tools). */
export function encodeSmallFiles(items: readonly (SmallFile & { data: Uint8Array })[]): Uint8Array {
  let size = 0;
  for (const item of items) size += SMALL_FILE_HEADER_SIZE + item.data.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const item of items) {
    writeSmallFileHeader(out, at, { ...item, length: item.data.length });
    out.set(item.data, at + SMALL_FILE_HEADER_SIZE);
    at += SMALL_FILE_HEADER_SIZE + item.data.length;
  }
  return out;
}

/** Splits a (decoded) SMALL_FILES body into its files; `data` views point into the body. */
export function decodeSmallFiles(body: Uint8Array): (SmallFile & { data: Uint8Array })[] {
  const c = new Cursor(body, "SMALL_FILES");
  const items: (SmallFile & { data: Uint8Array })[] = [];
  while (!c.done) items.push({ index: c.u32(), data: c.bytes(c.u32()) });
  return items;
}

/** DONE payload: files (u32), bytes (u64). */
export function encodeDone(done: Done): Uint8Array {
  return new Builder().u32(done.files).u64(done.bytes).finish();
}

/** Decodes a DONE payload; throws ProtocolError if it is malformed. */
export function decodeDone(payload: Uint8Array): Done {
  const c = new Cursor(payload, "DONE");
  const done = { files: c.u32(), bytes: c.u64() };
  c.end();
  return done;
}

/** ERROR payload: code byte, then a UTF-8 message cut to MAX_MESSAGE_BYTES. */
export function encodeError(error: ErrorFrame): Uint8Array {
  let message = encoder.encode(error.message);
  if (message.length > MAX_MESSAGE_BYTES) message = message.subarray(0, MAX_MESSAGE_BYTES);
  return new Builder().u8(error.code).bytes(message).finish();
}

/** Decodes an ERROR payload: code (u8), then the message (UTF-8, the rest; 512 bytes kept). */
export function decodeError(payload: Uint8Array): ErrorFrame {
  const c = new Cursor(payload, "ERROR");
  const code = c.u8();
  const rest = payload.subarray(1, 1 + MAX_MESSAGE_BYTES);
  return { code, message: new TextDecoder().decode(rest) };
}

/** Name of a frame type, for error messages. */
export function frameName(type: number): string {
  const names: Record<number, string> = {
    [FRAME_HELLO]: "HELLO",
    [FRAME_PAKE]: "PAKE",
    [FRAME_CONFIRM]: "CONFIRM",
    [FRAME_OFFER]: "OFFER",
    [FRAME_OFFER_END]: "OFFER_END",
    [FRAME_REPLY]: "REPLY",
    [FRAME_FILE]: "FILE",
    [FRAME_DATA]: "DATA",
    [FRAME_FILE_END]: "FILE_END",
    [FRAME_SKIP]: "SKIP",
    [FRAME_RESULT]: "RESULT",
    [FRAME_SMALL_FILES]: "SMALL_FILES",
    [FRAME_RESTART]: "RESTART",
    [FRAME_DONE]: "DONE",
    [FRAME_ERROR]: "ERROR",
  };
  return names[type] ?? `unknown frame 0x${type.toString(16).padStart(2, "0")}`;
}

// ---------------------------------------------------------------------------------------------
// Meeting without an address: LAN discovery packets and the transit relay's handshake line.

/** UDP port of LAN discovery (the tutorial's number; UDP and TCP ports are separate). */
export const DISCOVERY_PORT = 5001;
/** Administratively scoped IPv4 multicast group the waiting side announces itself to. */
export const DISCOVERY_GROUP = "239.255.70.82";
/** Size of every discovery packet. */
export const DISCOVERY_PACKET_SIZE = 27;
/** Bytes of the tag that names a code's public part in discovery packets. */
export const DISCOVERY_TAG_SIZE = 16;
/** A waiting side says where it listens. */
export const DISCOVERY_ANNOUNCE = 1;
/** A side looking for its peer asks waiting sides to announce at once. */
export const DISCOVERY_QUERY = 2;

/** One LAN discovery packet (see PROTOCOL.md section 12). */
export interface DiscoveryPacket {
  /** {@linkcode DISCOVERY_ANNOUNCE} or {@linkcode DISCOVERY_QUERY}. */
  type: number;
  /** ANNOUNCE: the role of the side that waits. QUERY: the role looked for. */
  role: number;
  /** ANNOUNCE: the TCP port it listens on. QUERY: 0. */
  port: number;
  /** {@linkcode DISCOVERY_TAG_SIZE} bytes derived from the public part of the code. */
  tag: Uint8Array;
}

/**
 * Encodes a discovery packet: MAGIC, version (u8), type, role, port (u16), tag.
 *
 * @example Round trip
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * const tag = new Uint8Array(16);
 * const packet = { type: DISCOVERY_ANNOUNCE, role: ROLE_RECEIVER, port: 5001, tag };
 * assertEquals(decodeDiscovery(encodeDiscovery(packet)), packet);
 * ```
 */
export function encodeDiscovery(packet: DiscoveryPacket): Uint8Array {
  if (packet.tag.length !== DISCOVERY_TAG_SIZE) {
    throw new RangeError(`Cannot encode tag: ${packet.tag.length} bytes, expected 16`);
  }
  const out = new Uint8Array(DISCOVERY_PACKET_SIZE);
  const view = new DataView(out.buffer);
  out.set(MAGIC);
  out[6] = VERSION;
  out[7] = packet.type;
  out[8] = packet.role;
  view.setUint16(9, packet.port);
  out.set(packet.tag, 11);
  return out;
}

/**
 * Decodes a discovery packet, or returns null for anything that is not one of ours in this
 * version (other programs share multicast groups; a LAN packet is never an error).
 */
export function decodeDiscovery(bytes: Uint8Array): DiscoveryPacket | null {
  if (bytes.length !== DISCOVERY_PACKET_SIZE) return null;
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) return null;
  if (bytes[6] !== VERSION) return null;
  const type = bytes[7]!;
  const role = bytes[8]!;
  if (type !== DISCOVERY_ANNOUNCE && type !== DISCOVERY_QUERY) return null;
  if (role !== ROLE_SENDER && role !== ROLE_RECEIVER) return null;
  const port = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint16(9);
  if (type === DISCOVERY_ANNOUNCE && port === 0) return null;
  return { type, role, port, tag: bytes.slice(11, 11 + DISCOVERY_TAG_SIZE) };
}

/** Transit relay side of a sender: fixed per role, so two senders are never paired. */
export const RELAY_SIDE_SENDER = "0000000000000001";
/** Transit relay side of a receiver. */
export const RELAY_SIDE_RECEIVER = "0000000000000002";
/** The relay's answer once the other side has arrived: from the next byte on, a plain pipe. */
export const RELAY_OK = "ok";
/** Longest line we read from a relay before "ok" (its answers are "ok", "impatient", ...). */
export const RELAY_MAX_LINE = 64;

/**
 * The line a client sends to a magic-wormhole transit relay: `please relay TOKEN for side
 * SIDE\n`, TOKEN 64 lower-case hex digits, SIDE 16.
 */
export function encodeRelayRequest(token: string, side: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(token) || !/^[0-9a-f]{16}$/.test(side)) {
    throw new RangeError("Cannot build relay request: token needs 64 hex digits, side 16");
  }
  return encoder.encode(`please relay ${token} for side ${side}\n`);
}
