/**
 * `--legacy`: the classic Python tutorial's plaintext wire, so ferry talks to `sender.py` and
 * `receiver.py` as they were written.
 *
 * The sender writes `name<SEPARATOR>size` in one send, then the raw file bytes, then closes.
 * There is no framing, no reply, no encryption and no checksum: the only check is the size.
 *
 * Why over 400 lines: both ends of that wire live here, with the repair of a header glued to
 * its first data bytes, which needs the sender's and the receiver's view of the same bytes.
 *
 * @module
 */

import {
  ConnectionError,
  EXIT,
  IntegrityError,
  ProtocolError,
  RefusedError,
  UsageError,
  WIRE,
} from "./errors.ts";
import { KIND_FILE } from "../protocol.ts";
import { DEFAULT_IDLE_TIMEOUT_MS } from "./channel.ts";
import type { SourceEntry } from "./manifest.ts";
import { writeAll, type Writer } from "./io.ts";
import type { Reporter } from "./report.ts";
import type { ByteStream } from "./transport.ts";
import { openRegular, OwnedFile } from "./owned_file.ts";
import { nameProblem, SafeRoot } from "./safe_path.ts";
import {
  moveIntoPlace,
  PART_SUFFIX,
  type ReceiveSummary,
  removePart,
  removeQuietly,
  type Target,
} from "./place.ts";

/** A legacy connection closed before it said anything: a port probe, not a transfer. */
export class EmptyConnectionError extends ConnectionError {
  constructor() {
    super("sender closed before sending a header");
    this.name = "EmptyConnectionError";
  }
}

/** The tutorial's separator between name and size. */
export const SEPARATOR = "<SEPARATOR>";
/** The tutorial reads its header with one recv() of this many bytes. */
export const LEGACY_BUFFER_SIZE = 4096;
/** Digits in the size field, at most (a 64-bit size). */
const MAX_SIZE_DIGITS = 20;
/** Pause after the header so the tutorial's single recv() gets it alone. */
export const HEADER_PAUSE_MS = 250;

const encoder = new TextEncoder();
const SEPARATOR_BYTES = encoder.encode(SEPARATOR);

/** Options for {@linkcode sendLegacy}. */
export interface LegacySendOptions {
  reporter: Reporter;
  /** @default {HEADER_PAUSE_MS} */
  headerPauseMs?: number;
}

/** The one regular file a legacy transfer can carry; anything else is a usage error. */
export function legacyEntry(entries: readonly SourceEntry[]): SourceEntry & { source: string } {
  const entry = entries[0];
  if (entries.length !== 1 || !entry || entry.kind !== KIND_FILE || entry.source === null) {
    throw new UsageError(
      "--legacy sends exactly one regular file (the tutorial's wire has no more)",
    );
  }
  return entry as SourceEntry & { source: string };
}

/** Sends one regular file the tutorial's way. */
export async function sendLegacy(
  conn: ByteStream,
  entries: readonly SourceEntry[],
  options: LegacySendOptions,
): Promise<void> {
  const entry = legacyEntry(entries);
  const reporter = options.reporter;
  await writeAll(conn, encoder.encode(`${entry.name}${SEPARATOR}${entry.size}`));
  // The tutorial's receiver takes its header from a single recv(4096): if file bytes arrived in
  // the same read, its int(filesize) would fail. A short pause lets the header travel alone.
  await new Promise((resolve) => setTimeout(resolve, options.headerPauseMs ?? HEADER_PAUSE_MS));
  reporter.start("1", 1, entry.size);
  reporter.fileStart("1", entry.name, entry.size, 0);
  // The very file that was listed, never a link or FIFO put in its place since.
  const file = openRegular(entry.source, entry.identity);
  using _closing = { [Symbol.dispose]: () => file.close() };
  // Two buffers: the next chunk is read from disk while this one goes out.
  const buffers = [new Uint8Array(1 << 20), new Uint8Array(1 << 20)];
  let turn = 0;
  const readNext = (from: number) =>
    from < entry.size
      ? file.read(buffers[turn]!.subarray(0, Math.min(1 << 20, entry.size - from)))
      : Promise.resolve(null);
  let sent = 0;
  let next = readNext(0);
  while (true) {
    const got = await next;
    if (got === null) break;
    const chunk = buffers[turn]!.subarray(0, got);
    turn ^= 1;
    next = readNext(sent + got);
    try {
      await writeAll(conn, chunk);
    } catch (err) {
      throw new ConnectionError("receiver closed the connection", WIRE.CANCELLED, { cause: err });
    }
    sent += got;
    reporter.progress("1", got);
  }
  reporter.fileDone("1", { name: entry.name, size: entry.size, status: "ok" });
  reporter.finish("1", { files: 1, bytes: sent, failed: 0, exitCode: EXIT.OK });
}

/** The parsed tutorial header. */
export interface LegacyHeader {
  name: string;
  size: number;
  /** The size digits as received, kept to resolve a header glued to digit file bytes. */
  digits: string;
  /** File bytes that arrived in the same read as the header. */
  rest: Uint8Array;
}

/**
 * Parses `name<SEPARATOR>size` from the first bytes of a connection; bytes after the size
 * digits are file data that came in the same read. Returns undefined if more bytes are needed.
 */
export function parseLegacyHeader(buf: Uint8Array, eof: boolean): LegacyHeader | undefined {
  const at = indexOf(buf, SEPARATOR_BYTES);
  if (at < 0) {
    if (buf.length > LEGACY_BUFFER_SIZE || eof) {
      throw new ProtocolError("Cannot read legacy header: no <SEPARATOR> in the first 4096 bytes");
    }
    return undefined;
  }
  let end = at + SEPARATOR_BYTES.length;
  while (end < buf.length && end - at - SEPARATOR_BYTES.length < MAX_SIZE_DIGITS) {
    const byte = buf[end]!;
    if (byte < 0x30 || byte > 0x39) break;
    end++;
  }
  const digits = new TextDecoder().decode(buf.subarray(at + SEPARATOR_BYTES.length, end));
  if (digits === "") {
    if (end === buf.length && !eof) return undefined;
    throw new ProtocolError("Cannot read legacy header: the size is not a number");
  }
  let rawName: string;
  try {
    rawName = new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(0, at));
  } catch {
    throw new ProtocolError("Cannot read legacy header: the name is not valid UTF-8");
  }
  // Like the tutorial: keep only the base name.
  const name = rawName.includes("/") ? rawName.slice(rawName.lastIndexOf("/") + 1) : rawName;
  const size = Number(digits);
  if (!Number.isSafeInteger(size)) {
    throw new ProtocolError("Cannot read legacy header: size too large");
  }
  return { name, size, digits, rest: buf.subarray(end) };
}

/**
 * When the header and the first file bytes arrive in one read and the file starts with digits,
 * the greedy parse takes some of them as the size. Given everything received, finds the split
 * for which the size matches the bytes that followed it; returns how many digits belong to it.
 */
export function resolveGluedDigits(digits: string, bytesAfterDigits: number): number | undefined {
  for (let k = digits.length - 1; k >= 1; k--) {
    if (Number(digits.slice(0, k)) === digits.length - k + bytesAfterDigits) return k;
  }
  return undefined;
}

/** Options for {@linkcode receiveLegacy}. */
export interface LegacyReceiveOptions {
  dir: string;
  overwrite?: boolean;
  stdout?: Writer;
  maxSize?: number;
  reporter: Reporter;
  id?: string;
  /** @default {30000} */
  timeoutMs?: number;
  /** Targets being written by this receiver's sessions: a second one for a name is refused. */
  claims?: Set<string>;
}

/** Receives one file the tutorial's way: header, then bytes until the sender closes. */
export async function receiveLegacy(
  conn: ByteStream,
  options: LegacyReceiveOptions,
): Promise<ReceiveSummary> {
  const id = options.id ?? "1";
  const reporter = options.reporter;
  const idleMs = options.timeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const buf = new Uint8Array(1 << 20);
  const header = await readHeader(conn, buf, idleMs);
  // Looked at and written in --dir itself, as it was when first entered (SafeRoot.within).
  const place = { root: new SafeRoot(options.dir), name: header.name };
  const target = checkTarget(header, place, options);
  reporter.start(id, 1, header.size);
  reporter.fileStart(id, header.name, header.size, 0);
  const file = options.stdout ? undefined : createPart(place, target, options.claims);
  let body: { received: number; excess: boolean };
  try {
    body = await receiveBody(conn, options.stdout ?? file!, header, buf, {
      idleMs,
      onBytes: (n) => reporter.progress(id, n),
    });
  } finally {
    file?.setMode(0o644);
    file?.close();
    options.claims?.delete(target);
  }
  let received = body.received;
  // Only when file bytes shared the header's read (a non-digit followed the digits there) can
  // some of the "size" digits be file bytes. A header that came alone and a short transfer
  // after it is a short transfer, never a smaller file.
  if (!body.excess && received !== header.size && !options.stdout && header.rest.length > 0) {
    const k = resolveGluedDigits(header.digits, received);
    if (k !== undefined) {
      await prependBytes(place, encoder.encode(header.digits.slice(k)));
      received = Number(header.digits.slice(0, k));
      header.size = received;
    }
  }
  if (body.excess || received > header.size) {
    if (!options.stdout) removePart(place);
    throw new IntegrityError(
      `${header.name}: the sender sent more than the ${header.size} bytes it declared`,
    );
  }
  if (received < header.size) {
    throw new IntegrityError(
      `${header.name}: connection closed after ${received} of ${header.size} bytes` +
        (options.stdout ? "" : `; partial data kept in ${header.name}${PART_SUFFIX}`),
    );
  }
  if (!options.stdout) {
    const status = moveIntoPlace(place, options.overwrite ?? false);
    if (status !== 0) throw new RefusedError(`${header.name} already exists`, WIRE.EXISTS);
  }
  reporter.fileDone(id, { name: header.name, size: header.size, status: "ok" });
  reporter.finish(id, { files: 1, bytes: received, failed: 0, exitCode: EXIT.OK });
  return { exitCode: EXIT.OK, files: 1, failed: 0, bytes: received };
}

/**
 * Reads until `name<SEPARATOR>size` is complete, into `buf`. The whole header must come within
 * one idle period: a peer that trickles a byte now and then must not hold the connection (each
 * read alone would reset the idle clock).
 */
async function readHeader(conn: ByteStream, buf: Uint8Array, idleMs: number) {
  let filled = 0;
  let eof = false;
  const deadline = Date.now() + idleMs;
  while (true) {
    // A full buffer without a complete header is not the tutorial's wire. (Reading into an
    // empty buffer returns at once: without this check the loop would spin forever.)
    if (filled >= LEGACY_BUFFER_SIZE * 2) {
      throw new ProtocolError(
        `Cannot read legacy header: no size after <SEPARATOR> in ${filled} bytes`,
      );
    }
    const left = Math.max(1, deadline - Date.now());
    const got = await readIdle(conn, buf.subarray(filled, LEGACY_BUFFER_SIZE * 2), left, idleMs);
    if (got === null) eof = true;
    else filled += got;
    if (eof && filled === 0) throw new EmptyConnectionError();
    const header = parseLegacyHeader(buf.subarray(0, filled), eof);
    if (header) return header;
    if (eof) throw new ConnectionError("sender closed in the middle of the header");
  }
}

/**
 * The same checks as for ferry's own offers: safe name, size, no overwrite, no link, no race.
 * Returns the name the session claims while it writes.
 */
function checkTarget(header: LegacyHeader, place: Target, options: LegacyReceiveOptions): string {
  const problem = nameProblem(header.name);
  if (problem) {
    throw new RefusedError(`unsafe file name from legacy sender (${problem})`, WIRE.BAD_NAME);
  }
  if (header.size > (options.maxSize ?? Infinity)) {
    throw new RefusedError(
      `${header.name}: ${header.size} bytes is over --max-size`,
      WIRE.TOO_LARGE,
    );
  }
  const target = place.root.path(place.name);
  if (options.stdout) return target;
  const existing = place.root.existing(place.name);
  if (existing && (!options.overwrite || !existing.isFile)) {
    throw new RefusedError(
      `${header.name} already exists (pass --overwrite to replace it)`,
      WIRE.EXISTS,
    );
  }
  if (place.root.existing(place.name + PART_SUFFIX)?.isSymlink) {
    throw new RefusedError(`${header.name}${PART_SUFFIX} is a symlink`, WIRE.SYMLINK);
  }
  if (options.claims?.has(target)) {
    throw new RefusedError(
      `${header.name} is being received from another sender`,
      WIRE.DUPLICATE,
    );
  }
  return target;
}

/**
 * Everything after the header, until the sender closes, is the file: written to `out`, never
 * more than the header declared (`excess` then). Two buffers: the next bytes are read from the
 * socket while the last ones are written.
 */
async function receiveBody(
  conn: ByteStream,
  out: Writer,
  header: LegacyHeader,
  buf: Uint8Array,
  { idleMs, onBytes }: { idleMs: number; onBytes: (n: number) => void },
): Promise<{ received: number; excess: boolean }> {
  const buffers = [buf, new Uint8Array(buf.length)];
  let turn = 0;
  let received = 0;
  let writing = Promise.resolve();
  try {
    let chunk = header.rest;
    while (true) {
      if (received + chunk.length > header.size) return { received, excess: true };
      await writing;
      writing = writeAll(out, chunk);
      // A failed write (a full disk) is thrown where it is awaited, not as an unhandled rejection.
      writing.catch(() => {});
      received += chunk.length;
      onBytes(chunk.length);
      turn ^= 1;
      const got = await readIdle(conn, buffers[turn]!, idleMs);
      if (got === null) break;
      chunk = buffers[turn]!.subarray(0, got);
    }
    await writing;
    return { received, excess: false };
  } finally {
    await writing.catch(() => {});
  }
}

/**
 * Creates the partial file anew, exclusively (O_EXCL: nothing planted there is followed or
 * truncated). A stale one of ours, from a transfer no session is running, is removed first.
 */
function createPart(place: Target, target: string, claims?: Set<string>): OwnedFile {
  claims?.add(target);
  return place.root.within(place.name + PART_SUFFIX, (part) => {
    try {
      Deno.removeSync(part);
    } catch {
      // None there: the usual case.
    }
    return OwnedFile.create(part, 0o644 | 0o600);
  });
}

/**
 * Rewrites our partial file with `prefix` in front, streaming (no whole-file buffer). Both files
 * are opened, and the result renamed over the partial file, inside the folder checked for it.
 */
async function prependBytes(place: Target, prefix: Uint8Array): Promise<void> {
  const [src, dst] = place.root.within(place.name + PART_SUFFIX, (part) => {
    removeQuietly(`${part}.fix`);
    const src = openRegular(part);
    try {
      return [src, OwnedFile.create(`${part}.fix`, 0o600)] as const;
    } catch (err) {
      src.close();
      throw err;
    }
  });
  try {
    await writeAll(dst, prefix);
    const buf = new Uint8Array(1 << 20);
    while (true) {
      const got = await src.read(buf);
      if (got === null) break;
      await writeAll(dst, buf.subarray(0, got));
    }
  } finally {
    src.close();
    dst.close();
  }
  place.root.within(place.name + PART_SUFFIX, (part) => Deno.renameSync(`${part}.fix`, part));
}

/** Reads with a time limit of `waitMs` (reported as the `idleMs` of --timeout). */
async function readIdle(
  conn: ByteStream,
  buf: Uint8Array,
  waitMs: number,
  idleMs = waitMs,
): Promise<number | null> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, waitMs);
  try {
    return await conn.read(buf);
  } catch (err) {
    if (timedOut) {
      throw new ConnectionError(
        `legacy sender stopped sending for ${idleMs / 1000} s`,
        WIRE.TIMEOUT,
      );
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
