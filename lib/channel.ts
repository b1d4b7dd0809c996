/**
 * A framed, optionally sealed, byte channel over one link (lib/transport.ts): a TCP connection,
 * a relayed one, or a test's pipe.
 *
 * Reads go through one fixed buffer (no allocation per frame, no more memory than one record
 * whatever the peer declares). Every read and write has an idle timeout: a peer that goes
 * silent, or stops reading, gets its connection closed. After {@linkcode Channel.seal} every
 * record is ChaCha20-Poly1305 sealed with a per-direction key and a counter nonce, the 4-byte
 * length header as associated data.
 *
 * Why over 400 lines: reading, batching and sealing share one buffer and one write queue for
 * speed (a record is sealed where its place in the stream is fixed); split, they would share state.
 *
 * @module
 */

import { type CipherChaCha20Poly1305, createCipheriv, createDecipheriv } from "node:crypto";
import { discard } from "./memory.ts";
import {
  decodeError,
  encodeError,
  FRAME_DATA,
  FRAME_ERROR,
  FRAME_SMALL_FILES,
  frameName,
  MAX_CONTROL_PAYLOAD,
  MAX_PLAIN_BODY,
  MAX_RECORD_BODY,
  NONCE_SIZE,
  readRecordHeader,
  RECORD_HEADER_SIZE,
  TAG_SIZE,
  writeNonce,
  writeRecordHeader,
} from "../protocol.ts";
import {
  ConnectionError,
  errorFromWire,
  IntegrityError,
  ProtocolError,
  type WireCode,
} from "./errors.ts";
import { Deadline } from "./deadline.ts";
import type { ByteStream } from "./transport.ts";

/** Options for {@linkcode Channel}. */
export interface ChannelOptions {
  /**
   * Milliseconds without progress in either direction before the connection is closed.
   * @default {30000}
   */
  timeoutMs?: number;
}

/** A received frame. `payload` is a view into the channel's buffer, valid until the next recv. */
export interface Frame {
  type: number;
  payload: Uint8Array;
}

const AEAD = "chacha20-poly1305";
/** How long a peer may stay silent, both ways, before we give up (`--timeout`). */
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
export { MIN_RATE } from "./deadline.ts";

/** How long an ERROR frame is given to reach the peer before the connection closes. */
const ERROR_LINGER_MS = 2000;
/** Pieces at least this large are written directly instead of being copied into the frame. */
const DIRECT_WRITE_MIN = 64 * 1024;
/** Small frames are gathered into batches of up to this many bytes. */
const BATCH_SIZE = 128 * 1024;
/** Frames up to this size are batched; larger ones are written on their own. */
const BATCH_RECORD_MAX = DIRECT_WRITE_MIN - 1;

/** One direction of the sealed channel: a key and a 64-bit counter used as the nonce. */
class Direction {
  #key: Uint8Array;
  #counter = 0n;
  #nonce = new Uint8Array(NONCE_SIZE);
  #nonceView = new DataView(this.#nonce.buffer);
  constructor(key: Uint8Array) {
    this.#key = key;
  }
  nextNonce(): Uint8Array {
    writeNonce(this.#nonceView, this.#counter);
    this.#counter++;
    return this.#nonce;
  }
  get key(): Uint8Array {
    return this.#key;
  }
}

/** Framed channel over a byte stream. */
export class Channel {
  readonly conn: ByteStream;
  /** The idle timeout and minimum rate over every read and write (lib/deadline.ts). */
  #deadline: Deadline;
  #in = new Uint8Array(RECORD_HEADER_SIZE + MAX_RECORD_BODY + 64 * 1024);
  #start = 0;
  #end = 0;
  #batch = new Uint8Array(BATCH_SIZE);
  #spare = new Uint8Array(BATCH_SIZE);
  #batchLength = 0;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #writes: Promise<void> = Promise.resolve();
  #writeError?: unknown;
  #send?: Direction;
  #recv?: Direction;
  #closed = false;
  /** The peer's protocol version, once its preamble has been accepted. */
  peerVersion?: number;
  /** Bytes read from and written to the socket so far. */
  bytesIn = 0;
  bytesOut = 0;

  constructor(conn: ByteStream, options: ChannelOptions = {}) {
    this.conn = conn;
    this.#deadline = new Deadline(options.timeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS, () => this.close());
  }

  /** Changes the idle timeout (the transfer may use another than the handshake). */
  setIdleTimeout(ms: number): void {
    this.#deadline.setIdleTimeout(ms);
  }

  /** From now on every record is sealed with `sendKey` and opened with `recvKey`. */
  seal(sendKey: Uint8Array, recvKey: Uint8Array): void {
    this.#send = new Direction(sendKey);
    this.#recv = new Direction(recvKey);
  }

  get sealed(): boolean {
    return this.#send !== undefined;
  }

  /** Counts `bytes` of work that moved few bytes on the wire ({@linkcode Deadline.progress}). */
  progress(bytes: number): void {
    this.#deadline.progress(bytes);
  }

  /** Counts work the peer claims that proved useless ({@linkcode Deadline.unproven}). */
  unproven(bytes: number): void {
    this.#deadline.unproven(bytes);
  }

  /** Runs one socket operation under the deadline. */
  #guard<T>(what: string, op: () => Promise<T>): Promise<T> {
    return this.#deadline.guard(what, op);
  }

  /** Reads until at least `n` bytes are buffered; returns false on a clean EOF before any. */
  async #fill(n: number, what: string): Promise<boolean> {
    if (this.#end - this.#start >= n) return true;
    if (this.#in.length - this.#start < n) {
      this.#in.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    // We are about to wait for the peer, who may be waiting for frames still in our batch.
    if (this.#batchLength > 0) this.flush().catch(() => {});
    while (this.#end - this.#start < n) {
      const got = await this.#guard(what, () => this.conn.read(this.#in.subarray(this.#end)));
      if (got === null) {
        if (this.#end === this.#start) return false;
        throw new ConnectionError(
          `connection ended in the middle of ${what} (${this.#end - this.#start} of ${n} bytes)`,
        );
      }
      this.#end += got;
      this.bytesIn += got;
    }
    return true;
  }

  /** Reads exactly `n` raw bytes (used for the preamble). The view is valid until the next read. */
  async readExact(n: number, what: string): Promise<Uint8Array> {
    if (!(await this.#fill(n, what))) {
      throw new ConnectionError(`peer closed the connection before ${what}`);
    }
    const view = this.#in.subarray(this.#start, this.#start + n);
    this.#start += n;
    return view;
  }

  /** Writes raw bytes (the preamble). */
  async writeRaw(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      done += await this.#guard("sending", () => this.conn.write(bytes.subarray(done)));
    }
    this.bytesOut += bytes.length;
  }

  /**
   * Receives the next frame. An ERROR frame from the peer is thrown as the matching local
   * error; the peer closing here is an error too.
   */
  async recv(): Promise<Frame> {
    if (!(await this.#fill(RECORD_HEADER_SIZE, "a frame header"))) {
      throw new ConnectionError("peer closed the connection before the transfer finished");
    }
    // The length is checked before a single byte more is read or allocated.
    const header = this.#in.subarray(this.#start, this.#start + RECORD_HEADER_SIZE);
    const length = readRecordHeader(header, this.sealed);
    await this.#fill(RECORD_HEADER_SIZE + length, "a frame");
    // Filling may have moved the buffered bytes, so the header is looked up again.
    const sealedHeader = this.#in.subarray(this.#start, this.#start + RECORD_HEADER_SIZE);
    const body = this.#in.subarray(
      this.#start + RECORD_HEADER_SIZE,
      this.#start + RECORD_HEADER_SIZE + length,
    );
    const plain = this.#recv ? this.#open(sealedHeader, body) : body;
    this.#start += RECORD_HEADER_SIZE + length;
    const frame = { type: plain[0]!, payload: plain.subarray(1) };
    // Only file data may fill a record; every other frame is a control frame, bounded lower.
    if (
      frame.payload.length > MAX_CONTROL_PAYLOAD && frame.type !== FRAME_DATA &&
      frame.type !== FRAME_SMALL_FILES
    ) {
      throw new ProtocolError(
        `Cannot take ${
          frameName(frame.type)
        }: ${frame.payload.length} bytes is over ${MAX_CONTROL_PAYLOAD}`,
      );
    }
    if (frame.type === FRAME_ERROR) {
      const error = decodeError(frame.payload);
      throw errorFromWire(error.code, error.message);
    }
    return frame;
  }

  /** Receives the next frame and insists on its type. */
  async expect(type: number): Promise<Uint8Array> {
    const frame = await this.recv();
    if (frame.type !== type) {
      throw new ProtocolError(
        `Cannot continue: expected ${frameName(type)}, received ${frameName(frame.type)}`,
      );
    }
    return frame.payload;
  }

  #open(header: Uint8Array, body: Uint8Array): Uint8Array {
    const dir = this.#recv!;
    const decipher = createDecipheriv(AEAD, dir.key, dir.nextNonce(), { authTagLength: TAG_SIZE });
    decipher.setAAD(header, { plaintextLength: body.length - TAG_SIZE });
    decipher.setAuthTag(body.subarray(body.length - TAG_SIZE));
    const plain = decipher.update(body.subarray(0, body.length - TAG_SIZE));
    discard(plain.length);
    try {
      decipher.final();
    } catch {
      throw new IntegrityError(
        "a frame failed authentication (modified, replayed or reordered in transit)",
      );
    }
    return plain;
  }

  /**
   * Sends one frame: `type` followed by the concatenation of `parts`, sealed if the channel is.
   *
   * Small frames are gathered into a batch that goes out in one write when it is full, before a
   * large frame, at {@linkcode Channel.flush}, before a read that has to wait for the peer, or as
   * soon as the event loop is idle: a folder of small files costs a few writes, not three per
   * file. A large piece (a file chunk) is written as it is, never copied. A frame is sealed at
   * the moment its place in the stream is fixed, so nonces always follow the byte order.
   */
  async send(type: number, ...parts: Uint8Array[]): Promise<void> {
    if (this.#writeError !== undefined) throw this.#writeError;
    let plainLength = 1;
    for (const part of parts) plainLength += part.length;
    if (plainLength > MAX_PLAIN_BODY) {
      throw new RangeError(`Cannot send frame: ${plainLength} bytes exceeds ${MAX_PLAIN_BODY}`);
    }
    const recordLength = RECORD_HEADER_SIZE + plainLength + (this.#send ? TAG_SIZE : 0);
    const pieces = [new Uint8Array([type]), ...parts];
    if (recordLength > BATCH_RECORD_MAX) {
      await this.#enqueue(async () => {
        await this.#writeBatch();
        const scratch = new Uint8Array(RECORD_HEADER_SIZE + 64);
        for (const bytes of this.#seal(plainLength, pieces, scratch)) await this.writeRaw(bytes);
      });
      return;
    }
    if (this.#batchLength + recordLength > this.#batch.length) await this.flush();
    // A small record is sealed straight into the batch, in one piece.
    this.#seal(plainLength, pieces, this.#batch.subarray(this.#batchLength));
    this.#batchLength += recordLength;
    if (this.#flushTimer === undefined) {
      this.#flushTimer = setTimeout(() => {
        this.#flushTimer = undefined;
        this.flush().catch(() => {});
      }, 0);
    }
  }

  /**
   * Encodes one record: header, then each piece (sealed if the channel is), then the tag.
   * Small pieces go into `into` in order; a piece of DIRECT_WRITE_MIN bytes or more is returned
   * on its own. Returns the byte ranges in stream order.
   */
  #seal(plainLength: number, pieces: Uint8Array[], into: Uint8Array): Uint8Array[] {
    const bodyLength = plainLength + (this.#send ? TAG_SIZE : 0);
    writeRecordHeader(into, bodyLength);
    let cipher: CipherChaCha20Poly1305 | undefined;
    if (this.#send) {
      const dir = this.#send;
      cipher = createCipheriv(AEAD, dir.key, dir.nextNonce(), { authTagLength: TAG_SIZE });
      cipher.setAAD(into.subarray(0, RECORD_HEADER_SIZE), { plaintextLength: plainLength });
    }
    const out: Uint8Array[] = [];
    let gathered = 0;
    let at = RECORD_HEADER_SIZE;
    const add = (bytes: Uint8Array) => {
      if (bytes.length >= DIRECT_WRITE_MIN) {
        if (at > gathered) out.push(into.subarray(gathered, at));
        out.push(bytes);
        into = into.subarray(at);
        gathered = 0;
        at = 0;
      } else {
        into.set(bytes, at);
        at += bytes.length;
      }
    };
    for (const piece of pieces) {
      const bytes = cipher ? cipher.update(piece) : piece;
      if (cipher) discard(bytes.length);
      add(bytes);
    }
    if (cipher) {
      cipher.final();
      add(cipher.getAuthTag());
    }
    if (at > gathered) out.push(into.subarray(gathered, at));
    return out;
  }

  /** Writes out the batch of small frames now. */
  flush(): Promise<void> {
    return this.#enqueue(() => this.#writeBatch());
  }

  async #writeBatch(): Promise<void> {
    if (this.#batchLength === 0) return;
    const bytes = this.#batch.subarray(0, this.#batchLength);
    // The other buffer takes new frames while this one is on its way.
    [this.#batch, this.#spare] = [this.#spare, this.#batch];
    this.#batchLength = 0;
    await this.writeRaw(bytes);
  }

  /** Runs socket writes strictly one after another. */
  #enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.#writes.then(task);
    this.#writes = run.catch((err) => {
      this.#writeError ??= err;
    });
    return run;
  }

  /**
   * Tells the peer why we stop, if the connection still takes it. Never throws. Afterwards it
   * reads and discards for a moment: closing with unread data would reset the connection and
   * could destroy the ERROR frame before the peer reads it.
   */
  async sendError(code: WireCode, message: string): Promise<void> {
    if (this.#closed) return;
    try {
      this.setIdleTimeout(ERROR_LINGER_MS);
      await this.send(FRAME_ERROR, encodeError({ code, message }));
      await this.flush();
      await this.conn.closeWrite();
      const sink = new Uint8Array(64 * 1024);
      const deadline = Date.now() + ERROR_LINGER_MS;
      while (Date.now() < deadline) {
        if (await this.#guard("closing", () => this.conn.read(sink)) === null) break;
      }
    } catch {
      // The peer may be gone already; the local error is what matters now.
    }
  }

  /** Half-closes our side so the peer reads EOF after our last frame. */
  async closeWrite(): Promise<void> {
    try {
      await this.flush();
      await this.conn.closeWrite();
    } catch {
      // Already closed.
    }
  }

  /** Closes the connection because time ran out; pending and later reads and writes say `why`. */
  expire(why: string): void {
    this.#deadline.expire(why);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#flushTimer);
    this.#deadline.stop();
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }

  get closed(): boolean {
    return this.#closed;
  }
}
