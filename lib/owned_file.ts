/**
 * Files ferry writes, held by descriptor. Every path may change between two calls (a local user
 * can swap a name for a symlink or a FIFO while a transfer runs), so nothing here checks a path
 * and then uses it: a file is created with O_EXCL, opened with O_NOFOLLOW (a symlink at the last
 * component fails) and O_NONBLOCK (a FIFO fails at once instead of blocking), checked by fstat
 * on the descriptor it will be written through, and its mode and time are set on that same
 * descriptor. `node:fs` gives Deno these flags and fchmod/futimes; Deno's own API does not.
 *
 * @module
 */

import fs from "node:fs";
import { readFullSync } from "./io.ts";

const { O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_WRONLY, O_RDONLY, O_DIRECTORY } = fs.constants;

/** Thrown when a name is taken by something that is not a regular file ferry may write. */
export class NotAFileError extends Error {
  constructor(path: string) {
    super(`Cannot write ${path}: something other than a regular file is there`);
    this.name = "NotAFileError";
  }
}

/** Runs a node:fs call, turning its errors into Deno's classes where callers look for them. */
function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "EEXIST") throw new Deno.errors.AlreadyExists((err as Error).message);
    if (code === "ENOENT") throw new Deno.errors.NotFound((err as Error).message);
    throw err;
  }
}

/** A regular file open for writing, by descriptor; writes go on at `position`. */
export class OwnedFile {
  /** How many are open now: an interrupted process says whether it left partial files. */
  static open = 0;
  /** How many of those a later run can resume (magic-wormhole's transfers cannot). */
  static resumable = 0;
  readonly fd: number;
  position: number;
  #closed = false;
  #resumable: boolean;

  private constructor(fd: number, position: number, resumable = true) {
    this.fd = fd;
    this.position = position;
    this.#resumable = resumable;
    OwnedFile.open++;
    if (resumable) OwnedFile.resumable++;
  }

  /**
   * Creates `path`, which must not exist in any form (O_EXCL: a symlink there, even a dangling
   * one, fails too). `mode` is masked by the umask, as for any new file: it is the final mode.
   * Not `resumable`: no later run can take it up (an interrupted process says so).
   */
  static create(path: string, mode: number, resumable = true): OwnedFile {
    const fd = call(() =>
      fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK, mode)
    );
    return new OwnedFile(fd, 0, resumable);
  }

  /**
   * Opens the existing regular file `path` to write from byte `offset` on. A symlink, a FIFO or
   * anything else there fails without blocking; so does a file shorter than `offset`, or (with
   * `expected`) another file than the one seen before.
   */
  static openAt(path: string, offset: number, expected?: { dev: number; ino: number }): OwnedFile {
    const fd = call(() => fs.openSync(path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK));
    const info = fs.fstatSync(fd);
    const same = expected === undefined || (info.dev === expected.dev && info.ino === expected.ino);
    if (!info.isFile() || info.size < offset || !same) {
      fs.closeSync(fd);
      throw new NotAFileError(path);
    }
    return new OwnedFile(fd, offset);
  }

  /** Writes all of `bytes` at the current position, without blocking the event loop. */
  async write(bytes: Uint8Array): Promise<number> {
    let done = 0;
    while (done < bytes.length) {
      done += await new Promise<number>((resolve, reject) =>
        fs.write(
          this.fd,
          bytes,
          done,
          bytes.length - done,
          this.position + done,
          (err, n) => err ? reject(err) : resolve(n),
        )
      );
    }
    this.position += done;
    return done;
  }

  /** Writes all of `bytes` at the current position, now (small pieces: cheaper than a trip). */
  writeSync(bytes: Uint8Array): number {
    let done = 0;
    while (done < bytes.length) {
      done += fs.writeSync(this.fd, bytes, done, bytes.length - done, this.position + done);
    }
    this.position += done;
    return done;
  }

  /**
   * Sets the final mode, on the descriptor, within the bits it was created with: a file made as
   * `mode | 0o600` under the umask ends as `mode` less the umask, never looser.
   */
  setMode(mode: number): void {
    // What it was created with (fstat costs ~8 us through node:fs: only when a mode is set).
    const allowed = fs.fstatSync(this.fd).mode & 0o777;
    fs.fchmodSync(this.fd, mode & allowed);
  }

  /** Sets the modification time, on the descriptor. */
  setTime(mtime: Date): void {
    fs.futimesSync(this.fd, mtime, mtime);
  }

  close(): void {
    if (!this.#closed) {
      OwnedFile.open--;
      if (this.#resumable) OwnedFile.resumable--;
    }
    this.#closed = true;
    try {
      fs.closeSync(this.fd);
    } catch {
      // Closed already.
    }
  }
}

/**
 * Sets a folder's mode and time through a descriptor opened without following a link, and only
 * if it is still the folder `expected` (dev and inode) that ferry made. Returns false if the
 * name now holds something else. The caller masks `mode` (see SafeRoot.made).
 */
export function finishFolder(
  path: string,
  expected: { dev: number; ino: number },
  mode: number,
  mtime: Date,
): boolean {
  let fd: number;
  try {
    fd = fs.openSync(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    const info = fs.fstatSync(fd);
    if (info.dev !== expected.dev || info.ino !== expected.ino) return false;
    fs.fchmodSync(fd, mode);
    fs.futimesSync(fd, mtime, mtime);
    return true;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads the small regular file at `path` into `into` if it is still the file `expected` that
 * was listed; returns the bytes read. Deno's own calls, which cost a third of node:fs's open
 * and fstat (10,000 small files). A link or another file put in its place is refused by the
 * identity check; a FIFO put there would block the open (a local user can stall this sender,
 * not make it read anything else).
 */
export function readListedSync(
  path: string,
  expected: { dev: number; ino: number } | undefined,
  into: Uint8Array,
): number {
  using file = Deno.openSync(path);
  const info = file.statSync();
  const same = expected === undefined || (info.dev === expected.dev && info.ino === expected.ino);
  if (!info.isFile || !same) throw new NotAFileError(path);
  return readFullSync(file, into);
}

/** A file open for reading by descriptor. */
export interface ReadHandle {
  read(buffer: Uint8Array): Promise<number | null>;
  readSync(buffer: Uint8Array): number | null;
  close(): void;
  /** Device and inode of what was opened, from fstat. */
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
}

/**
 * Opens the regular file at `path` for reading without following a symlink at the last
 * component and without blocking on a FIFO; anything but a regular file fails. With `expected`,
 * it must also be the same file (dev and inode) that was seen before: a file swapped after it
 * was listed is not read.
 */
export function openRegular(
  path: string,
  expected?: { dev: number; ino: number },
  from = 0,
): ReadHandle {
  const fd = call(() => fs.openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
  const info = fs.fstatSync(fd);
  const same = expected === undefined || (info.dev === expected.dev && info.ino === expected.ino);
  if (!info.isFile() || !same) {
    fs.closeSync(fd);
    throw new NotAFileError(path);
  }
  let position = from;
  // Zero bytes read into a non-empty buffer is the end of the file: null, as Deno readers say.
  const advance = (n: number) => {
    position += n;
    return n === 0 ? null : n;
  };
  return {
    dev: info.dev,
    ino: info.ino,
    size: info.size,
    read: (buffer) =>
      buffer.length === 0
        ? Promise.resolve(0)
        : new Promise((resolve, reject) =>
          fs.read(fd, buffer, 0, buffer.length, position, (err, n) =>
            err ? reject(err) : resolve(advance(n)))
        ),
    readSync: (buffer) =>
      buffer.length === 0 ? 0 : advance(fs.readSync(fd, buffer, 0, buffer.length, position)),
    close: () => fs.closeSync(fd),
  };
}
