/**
 * Folders the magic-wormhole way: one zip file. Writing uses fflate's streaming `Zip` with
 * stored entries, so the size is known before a byte is read (the offer must say it) and memory
 * stays flat; reading streams `Unzip` straight into the target folder, through ferry's own name
 * checks, folder budget and byte limit.
 *
 * @module
 */

import { Unzip, UnzipInflate, Zip, ZipPassThrough } from "fflate";
import { IntegrityError, RefusedError, WIRE } from "../errors.ts";
import { KIND_DIR, KIND_FILE, MAX_DEPTH } from "../../protocol.ts";
import type { SourceEntry } from "../manifest.ts";
import { OwnedFile } from "../owned_file.ts";
import { moveIntoPlace, PART_SUFFIX, removePart, removeQuietly, type Target } from "../place.ts";
import { nameProblem, SafeRoot } from "../safe_path.ts";

/** Zip's stored sizes are 32-bit; fflate writes no zip64. */
const ZIP_MAX_FILE = 0xffff_ffff;
const UNIX = 3;

/** One entry of a zip we write: its name inside the zip and how to get its bytes. */
interface ZipItem {
  entry: SourceEntry;
  /** Name inside the zip: relative to the folder sent. */
  name: string;
}

/** A folder, planned as a stored zip: its exact size and entry count. */
export interface ZipPlan {
  items: ZipItem[];
  zipSize: number;
  /** Sum of the files' sizes. */
  numBytes: number;
}

function zipEntry(item: ZipItem): ZipPassThrough {
  const isDir = item.entry.kind === KIND_DIR;
  const file = new ZipPassThrough(isDir ? `${item.name}/` : item.name);
  file.os = UNIX;
  // The receiver (python's zipfile) restores permissions from the high 16 bits.
  file.attrs = (((isDir ? 0o040000 : 0o100000) | (item.entry.mode & 0o777)) << 16) >>> 0;
  file.mtime = new Date(Math.max(item.entry.mtime, Date.UTC(1980, 0, 2)));
  return file;
}

/**
 * Plans the zip of `entries` (from a Manifest of one folder named `root`): a dry run with empty
 * files gives the bytes of headers, and stored data adds exactly its size.
 */
export function planZip(root: string, entries: Iterable<SourceEntry>): ZipPlan {
  const items: ZipItem[] = [];
  let numBytes = 0;
  for (const entry of entries) {
    if (entry.name === root) continue;
    if (entry.size > ZIP_MAX_FILE) {
      throw new RefusedError(
        `${entry.name} is over 4 GiB, more than a magic-wormhole zip holds`,
        WIRE.TOO_LARGE,
      );
    }
    items.push({ entry, name: entry.name.slice(root.length + 1) });
    numBytes += entry.kind === KIND_FILE ? entry.size : 0;
  }
  let headers = 0;
  const zip = new Zip((err, chunk) => {
    if (err) throw err;
    headers += chunk.length;
  });
  for (const item of items) {
    const file = zipEntry(item);
    zip.add(file);
    file.push(new Uint8Array(0), true);
  }
  zip.end();
  return { items, zipSize: headers + numBytes, numBytes };
}

/**
 * Streams the planned zip: `read(entry, into)` fills `into` with the next bytes of a file and
 * returns how many (0 at its end). Each zip chunk goes to `emit`, in order.
 */
export async function writeZip(
  plan: ZipPlan,
  read: (entry: SourceEntry) => AsyncIterable<Uint8Array>,
  emit: (chunk: Uint8Array) => Promise<void>,
): Promise<number> {
  const pending: Uint8Array[] = [];
  let failure: Error | undefined;
  const zip = new Zip((err, chunk) => {
    if (err) failure = err;
    else pending.push(chunk);
  });
  let total = 0;
  const drain = async () => {
    if (failure) throw failure;
    for (const chunk of pending.splice(0)) {
      total += chunk.length;
      await emit(chunk);
    }
  };
  for (const item of plan.items) {
    const file = zipEntry(item);
    zip.add(file);
    let sent = 0;
    if (item.entry.kind === KIND_FILE) {
      for await (const piece of read(item.entry)) {
        sent += piece.length;
        if (sent > item.entry.size) break;
        file.push(piece, false);
        await drain();
      }
    }
    if (item.entry.kind === KIND_FILE && sent !== item.entry.size) {
      throw new IntegrityError(`${item.entry.name} changed while it was being sent`);
    }
    file.push(new Uint8Array(0), true);
    await drain();
  }
  zip.end();
  await drain();
  return total;
}

/** Limits for {@linkcode Unzipper}. */
export interface UnzipLimits {
  /** Most bytes all files may unpack to (the offer's `numbytes`, bounded by --max-size). */
  maxBytes: number;
  maxFiles: number;
}

/** Where a zip unpacks: `folder` under `root`, checked or made through that root. */
export interface UnzipPlace {
  root: SafeRoot;
  folder: string;
}

/**
 * Unpacks a zip as its bytes arrive, into `folder` (which ferry made, or --overwrite allows).
 * Every name goes through the same checks as names in a ferry offer, and every folder and file
 * is made inside the folders the root checked or made, by identity. Each entry may bring one
 * new folder, and one name a full depth of them, as in a ferry offer. Each file is written as
 * NAME.ferry-part (created, never opened if there) and moved into place when whole. A name that
 * fails is refused and counted; bytes past `maxBytes` fail the whole folder.
 */
export class Unzipper {
  refused: string[] = [];
  files = 0;
  bytes = 0;
  #unzip = new Unzip();
  #root: SafeRoot;
  #folder: string;
  #limits: UnzipLimits;
  #overwrite: boolean;
  #error: Error | undefined;
  /** Files open now, and where they go. */
  #open = new Map<OwnedFile, Target>();

  constructor(place: UnzipPlace, limits: UnzipLimits, overwrite: boolean) {
    this.#root = place.root;
    this.#folder = place.folder;
    this.#limits = limits;
    this.#overwrite = overwrite;
    this.#unzip.register(UnzipInflate);
    this.#unzip.onfile = (file) => {
      if (this.#error) return;
      try {
        this.#start(file);
      } catch (err) {
        this.#error = err as Error;
      }
    };
  }

  /** Feeds the next bytes of the zip; `final` at its end. */
  push(chunk: Uint8Array, final = false): void {
    if (this.#error) throw this.#error;
    try {
      this.#unzip.push(chunk, final);
    } catch (err) {
      this.#error ??= new IntegrityError(`the folder's zip is damaged: ${(err as Error).message}`);
    }
    if (this.#error) {
      this.close();
      throw this.#error;
    }
  }

  /** Closes any file still open (after a failure); its .ferry-part is removed. */
  close(): void {
    for (const [file, target] of this.#open) {
      file.close();
      removePart(target);
    }
    this.#open.clear();
  }

  #start(file: { name: string; ondata: (...a: never[]) => void; start(): void }): void {
    const isDir = file.name.endsWith("/");
    const name = isDir ? file.name.slice(0, -1) : file.name;
    const problem = nameProblem(name) ??
      (name.endsWith(PART_SUFFIX) ? "reserved suffix" : undefined);
    if (problem !== undefined || ++this.files > this.#limits.maxFiles) {
      this.refused.push(`${JSON.stringify(name).slice(0, 80)}: ${problem ?? "too many files"}`);
      return;
    }
    // Each entry may bring one new folder, and one name a full depth of them (plus the top).
    this.#root.folderBudget = this.files + MAX_DEPTH + 1;
    const path = `${this.#folder}/${name}`;
    const refusal = isDir ? this.#root.ensureDir(path) : this.#root.ensureParent(path);
    if (refusal) {
      this.refused.push(`${name}: ${refusal === "symlink" ? "a link is in the way" : refusal}`);
      return;
    }
    if (isDir) return;
    const target = { root: this.#root, name: path };
    const out = this.#root.within(path + PART_SUFFIX, (part) => {
      removeQuietly(part);
      return OwnedFile.create(part, 0o644, false);
    });
    this.#open.set(out, target);
    (file as unknown as { ondata: (err: Error | null, data: Uint8Array, final: boolean) => void })
      .ondata = (err, data, final) => {
        if (this.#error) return;
        try {
          if (err) throw new IntegrityError(`${name} in the zip is damaged: ${err.message}`);
          this.bytes += data.length;
          if (this.bytes > this.#limits.maxBytes) {
            throw new RefusedError(
              `the folder unpacks to more than the ${this.#limits.maxBytes} bytes it announced`,
              WIRE.TOO_LARGE,
            );
          }
          out.writeSync(data);
          if (final) {
            out.close();
            this.#open.delete(out);
            if (moveIntoPlace(target, this.#overwrite) !== 0) {
              removePart(target);
              this.refused.push(`${name}: exists`);
            }
          }
        } catch (e) {
          this.#error = e as Error;
        }
      };
    file.start();
  }
}
