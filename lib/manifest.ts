/**
 * The sender's side of the offer: turns command-line paths into a list of entries, walking
 * folders recursively (relative names kept, empty folders included, symlinks reported and
 * skipped, never followed). What cannot be sent (a link, a FIFO, an unreadable file or folder,
 * a name the receiver would refuse) is found before anything is sent: refused with its list,
 * or skipped with a warning when the user asked to ignore it.
 *
 * @module
 */

import { basename, resolve } from "node:path";
import { type Entry, KIND_DIR, KIND_FILE, KIND_STREAM } from "../protocol.ts";
import { UsageError } from "./errors.ts";
import { openRegular } from "./owned_file.ts";
import { nameProblem } from "./safe_path.ts";

/** An offered entry and where its bytes come from (`null`: standard input). */
export interface SourceEntry extends Entry {
  source: string | null;
  /**
   * Device and inode of the file as listed: it is read only if the name still holds that very
   * file (a file swapped for a link after the walk is not read).
   */
  identity?: { dev: number; ino: number };
}

/** Options for {@linkcode Manifest}. */
export interface ManifestOptions {
  /** Name for a single file or stdin (`-`). @default {basename, or "stdin" for "-"} */
  name?: string;
  /** Called for each thing skipped (symlinks, special files, unsafe names). */
  onSkip?: (path: string, why: string) => void;
  /**
   * Walk everything now and refuse (a UsageError with the list) if anything cannot be sent,
   * rather than skip it with a warning while sending. @default {false}
   */
  refuseUnsendable?: boolean;
}

/** Unsendable things named in the refusal; the rest are counted. */
const LISTED_UNSENDABLE = 10;

/**
 * The entries for `paths`, walked lazily: the command line is checked at once (a missing path,
 * a name clash or nothing to send is a UsageError before any connection), folders are walked
 * only as the entries are asked for. The sender walks while it offers, so the receiver plans
 * the first entries while the sender still lists the rest. A second pass (a listening sender
 * serving another receiver) reads the entries remembered from the first.
 */
export class Manifest implements Iterable<SourceEntry> {
  #walked: SourceEntry[] = [];
  #rest: Iterator<SourceEntry> | undefined;

  constructor(paths: readonly string[], options: ManifestOptions = {}) {
    const skip = options.onSkip ?? (() => {});
    // What cannot be sent, when it is to be refused rather than skipped while sending.
    const problems: string[] = [];
    const note = (path: string, why: string) => void problems.push(`${path} (${why})`);
    const unsendable = options.refuseUnsendable ? note : skip;
    if (options.name !== undefined && paths.length > 1) {
      throw new UsageError("--name works with a single PATH only");
    }
    const roots: Root[] = [];
    const seen = new Set<string>();
    for (const path of paths) {
      const root = rootOf(path, options.name);
      if (root.info !== null && !root.info.isFile && !root.info.isDirectory) {
        unsendable(
          path,
          root.info.isSymlink ? "symlink, not followed" : "not a regular file or folder",
        );
        continue;
      }
      // Our own names go through the same checks the receiver will apply.
      const problem = nameProblem(root.name);
      if (problem) {
        skip(path, badName(problem));
        continue;
      }
      if (seen.has(root.name)) throw new UsageError(`two paths would both be named ${root.name}`);
      seen.add(root.name);
      roots.push(root);
    }
    if (options.refuseUnsendable) refuseUnsendable(roots, problems, note);
    if (roots.length === 0) throw new UsageError("nothing to send");
    this.#rest = walk(roots, skip);
  }

  *[Symbol.iterator](): Iterator<SourceEntry> {
    for (let i = 0;; i++) {
      if (i < this.#walked.length) {
        yield this.#walked[i]!;
        continue;
      }
      const next = this.#rest?.next();
      if (next === undefined || next.done) {
        this.#rest = undefined;
        return;
      }
      this.#walked.push(next.value);
      yield next.value;
    }
  }
}

/**
 * Walks all of `roots` (entries are not kept: memory stays flat) and throws a UsageError naming
 * what cannot be sent: the command-line paths already in `problems`, then what `note` adds.
 */
function refuseUnsendable(
  roots: readonly Root[],
  problems: string[],
  note: (path: string, why: string) => void,
): void {
  for (const _ of walk(roots, note)) { /* only the problems are wanted */ }
  if (problems.length === 0) return;
  const more = problems.length > LISTED_UNSENDABLE
    ? `, and ${problems.length - LISTED_UNSENDABLE} more`
    : "";
  throw new UsageError(
    `cannot send ${problems.length} of the entries: ` +
      `${problems.slice(0, LISTED_UNSENDABLE).join(", ")}${more}; ` +
      "fix them, or pass --ignore-unsendable-files to send the rest",
  );
}

/** A command-line path, its name on the other side, and what it is (`null`: stdin). */
interface Root {
  path: string;
  name: string;
  info: Deno.FileInfo | null;
}

function rootOf(path: string, name: string | undefined): Root {
  if (path === "-") return { path, name: name ?? "stdin", info: null };
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UsageError(`no such file or folder: ${path}`);
    }
    throw err;
  }
  name ??= basename(resolve(path));
  if (name === "" || name === "/") throw new UsageError(`cannot send the root folder: ${path}`);
  return { path, name, info };
}

function* walk(
  roots: readonly Root[],
  skip: (path: string, why: string) => void,
): Generator<SourceEntry> {
  for (const root of roots) {
    if (root.info === null) {
      yield {
        kind: KIND_STREAM,
        mode: 0o644,
        mtime: Date.now(),
        size: 0,
        name: root.name,
        source: null,
      };
    } else {
      // "dir/" and "dir" are the same folder; its children are named "dir/x" either way.
      yield* add(root.path.replace(/(.)\/+$/, "$1"), root.name, root.info, skip);
    }
  }
}

function entryFor(name: string, info: Deno.FileInfo, kind: number, source: string): SourceEntry {
  return {
    kind,
    mode: (info.mode ?? (kind === KIND_DIR ? 0o755 : 0o644)) & 0o7777,
    // The wire has no times before 1970 (u64 milliseconds).
    mtime: Math.max(0, info.mtime?.getTime() ?? Date.now()),
    size: kind === KIND_FILE ? info.size : 0,
    name,
    source,
    ...(info.ino !== null ? { identity: { dev: info.dev, ino: info.ino } } : {}),
  };
}

/** One path as `name`: a file, or a folder and everything below it (sorted, names checked). */
function* add(
  path: string,
  name: string,
  info: Deno.FileInfo,
  skip: (path: string, why: string) => void,
): Generator<SourceEntry> {
  if (info.isFile) {
    if (readable(path, info)) yield entryFor(name, info, KIND_FILE, path);
    else skip(path, "permission denied");
    return;
  }
  yield entryFor(name, info, KIND_DIR, path);
  const items: string[] = [];
  // Folders are listed while the offer goes out, so something may vanish meanwhile: like tar
  // and rsync, we say so and go on (the receiver gets an empty folder).
  const listing = ifStillThere(() => Deno.readDirSync(path), path, skip);
  for (const item of listing ?? []) items.push(item.name);
  // Sorted, so the same folder always gives the same offer.
  items.sort();
  for (const item of items) {
    const child = `${path}/${item}`;
    const childName = `${name}/${item}`;
    const childInfo = ifStillThere(() => Deno.lstatSync(child), child, skip);
    if (childInfo === undefined) continue;
    // A name the receiver would refuse is skipped here, and so is everything below it.
    const problem = nameProblem(childName);
    if (problem) skip(child, badName(problem));
    else if (childInfo.isSymlink) skip(child, "symlink, not followed");
    else if (childInfo.isFile) {
      if (readable(child, childInfo)) yield entryFor(childName, childInfo, KIND_FILE, child);
      else skip(child, "permission denied");
    } else if (childInfo.isDirectory) yield* add(child, childName, childInfo, skip);
    else skip(child, "not a regular file or folder");
  }
}

/** Why a name is skipped: "control character in name", but "name too long" as it is. */
function badName(problem: string): string {
  return problem.includes("name") ? problem : `${problem} in name`;
}

/**
 * Whether we may read the file: opened to find out only when its mode does not let everyone
 * read it (a 0600 file of another user), so a tree of ordinary files costs no extra system call.
 * Opened as it will be read: never through a link, never blocking on a FIFO swapped in since it
 * was listed, and only if it is still the file listed.
 */
function readable(path: string, info: Deno.FileInfo): boolean {
  if (((info.mode ?? 0o444) & 0o004) !== 0) return true;
  try {
    openRegular(path, info.ino === null ? undefined : { dev: info.dev, ino: info.ino }).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `look`; if `path` has vanished or may not be looked into, reports it as skipped and
 * answers undefined.
 */
function ifStillThere<T>(
  look: () => T,
  path: string,
  skip: (path: string, why: string) => void,
): T | undefined {
  try {
    return look();
  } catch (err) {
    if (err instanceof Deno.errors.PermissionDenied) {
      skip(path, "permission denied");
      return undefined;
    }
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    skip(path, "vanished while the folder was being listed");
    return undefined;
  }
}
