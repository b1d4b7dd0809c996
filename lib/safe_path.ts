/**
 * Safe paths: names from the peer are untrusted. This module decides which names may be written
 * at all, and makes sure writing one never leaves the target folder, even through a symlink.
 *
 * @module
 */

import { resolve } from "node:path";
import { MAX_COMPONENT_BYTES, MAX_DEPTH, MAX_NAME_BYTES } from "../protocol.ts";
import { hasInvisibleChar, RefusedError, WIRE } from "./errors.ts";

/** Characters that look like a slash or backslash but are not one. */
const LOOKALIKE_SEPARATORS = new Set([
  0x2044, // fraction slash
  0x2215, // division slash
  0x2216, // set minus
  0x2571, // box drawings light diagonal
  0x27cb, // mathematical rising diagonal
  0x29f5, // reverse solidus operator
  0x29f8, // big solidus
  0x29f9, // big reverse solidus
  0x31d3, // CJK stroke sp
  0xfe68, // small reverse solidus
  0xff0f, // fullwidth solidus
  0xff3c, // fullwidth reverse solidus
]);

/**
 * Returns why `name` may not be written, or undefined if it is a safe relative POSIX path.
 *
 * @example
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(nameProblem("docs/a.txt"), undefined);
 * assertEquals(nameProblem("../etc/passwd"), "'..' component");
 * ```
 */
export function nameProblem(name: string): string | undefined {
  if (name === "") return "empty name";
  if (utf8Length(name) > MAX_NAME_BYTES) return "name too long";
  if (name.startsWith("/")) return "absolute path";
  // In any component: a receiver on Windows would take "dir/C:x" as a drive too.
  if (/(^|\/)[A-Za-z]:/.test(name)) return "drive letter";
  if (name.includes("\\")) return "backslash";
  // Every character refused in this loop is a single UTF-16 unit: no need to decode pairs.
  for (let i = 0; i < name.length; i++) {
    const unit = name.charCodeAt(i);
    if (unit < 0x20 || (unit >= 0x7f && unit < 0xa0)) return "control character";
    if (unit >= 0x2000 && LOOKALIKE_SEPARATORS.has(unit)) return "look-alike slash";
  }
  if (hasInvisibleChar(name)) return "invisible or bidirectional-override character";
  const parts = name.split("/");
  if (parts.length > MAX_DEPTH) return "too many nested folders";
  for (const part of parts) {
    if (part === "") return "empty path component";
    if (part === "." || part === "..") return `'${part}' component`;
    if (utf8Length(part) > MAX_COMPONENT_BYTES) return "path component too long";
  }
  return undefined;
}

/**
 * Bytes `text` takes in UTF-8, counted without encoding it (this runs for every offered name).
 * A UTF-16 unit below 0x80 is one byte, below 0x800 two, else three; the two halves of a
 * surrogate pair are two bytes each (four for the character).
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    bytes += unit < 0x800 || (unit >= 0xd800 && unit <= 0xdfff) ? 1 : 2;
  }
  return bytes;
}

/** A folder SafeRoot made: its identity, and the mode bits the umask allows (0o777 & ~umask). */
export interface MadeFolder {
  dev: number;
  ino: number;
  allowed: number;
}

/** Why a path could not be prepared. */
export type PathRefusal = "symlink" | "not-a-folder" | "too-many-folders";

/**
 * What a callback run inside a checked folder may return: anything but a promise. Such a
 * callback runs while the working directory is the checked folder; an `await` in it would let
 * other code run there, or run its own rest after the working directory has moved on.
 */
export type NotPromise<T> = T extends PromiseLike<unknown> ? never : T;

/** Device and inode: which folder a name led to when it was checked. */
interface FolderId {
  dev: number;
  ino: number;
}

/** A folder ferry checked or made is no longer what its path leads to (a local user swapped it). */
export class SwappedFolderError extends RefusedError {
  constructor(name: string) {
    super(
      `${name || "the target folder"} was replaced while ferry was writing in it; nothing written`,
      WIRE.SYMLINK,
    );
    this.name = "SwappedFolderError";
  }
}

/**
 * The target folder. Folders below it are created one component at a time, and every existing
 * component is checked with lstat: a symlink anywhere on the way is refused, never followed.
 * Every folder checked or made is remembered by device and inode, and every create, link,
 * rename and unlink below it happens inside that very folder ({@linkcode SafeRoot.within}), so
 * one renamed or swapped for a symlink afterwards cannot send a file elsewhere.
 *
 * File system calls here are synchronous on purpose: each is one short syscall on a local disk,
 * while a trip through the async thread pool costs several times more, and a folder of 10,000
 * small files makes tens of thousands of them.
 */
export class SafeRoot {
  readonly root: string;
  #prefix: string;
  #known = new Set<string>([""]);
  #listings = new Map<string, Map<string, Deno.DirEntry>>();
  /** Folders this root made, with their device and inode: only those get the peer's mode. */
  #made = new Map<string, MadeFolder>();
  /** Every folder checked or made, by relative name ("" is the root itself). */
  #ids = new Map<string, FolderId>();
  /** The checked folder the working directory is in, inside a {@linkcode SafeRoot.batch}. */
  #here: string | undefined;
  /** The working directory was changed in this batch: it goes back when the batch ends. */
  #away = false;
  #depth = 0;
  /** Where the working directory goes when a batch ends (see {@linkcode homeFolder}). */
  #home: string | undefined;
  /**
   * Most folders this root may make so far; the caller raises it as entries are offered, so a
   * few deep names cannot make tens of thousands of folders (each costs the disk an inode).
   */
  folderBudget = Infinity;
  constructor(root: string) {
    // Absolute: inside a batch the working directory is elsewhere.
    this.root = resolve(root);
    this.#prefix = this.root.endsWith("/") ? this.root : `${this.root}/`;
  }

  /**
   * Runs `fn` with the working directory in the folder that holds `name`: the very folder this
   * root checked or made (same device and inode), whatever its path leads to now. `fn` gets the
   * last component and uses it as a relative path, so what it creates, links, renames, removes
   * or reads is in that folder even if a folder on the way was renamed or swapped for a symlink
   * since. Deno has no openat(); for synchronous calls a working directory is the same thing:
   * it holds the folder, not its path. Throws SwappedFolderError if the folder is not there.
   * `fn` cannot be async: its type refuses a promise, and so does a check when it returns.
   */
  within<T>(name: string, fn: (leaf: string) => NotPromise<T>): T {
    return this.batch(() => {
      this.#enter(parentOf(name));
      return fn(name.slice(name.lastIndexOf("/") + 1));
    });
  }

  /**
   * Runs `fn`, which makes synchronous {@linkcode SafeRoot.within} calls, and leaves the
   * checked folders only at the end: entering a folder costs a chdir and a stat (~7 us), and
   * one SMALL_FILES frame holds dozens of files of one folder. The working directory then goes
   * back where ferry started, or to the root if ferry may not read that folder: under narrowed
   * permissions (`--allow-read=DIR --allow-write=DIR`) going back would ask for access outside
   * `--dir`. (`--dir` is made absolute when parsed, so either way it means the same folder.)
   */
  batch<T>(fn: () => NotPromise<T>): T {
    // Where to come back to is settled before the first folder is entered.
    if (this.#depth++ === 0) this.#home ??= homeFolder(this.root);
    try {
      const result = fn();
      if (isThenable(result)) {
        throw new TypeError("Cannot run an async callback inside a checked folder");
      }
      return result;
    } finally {
      if (--this.#depth === 0 && this.#away) {
        this.#here = undefined;
        this.#away = false;
        this.#leave();
      }
    }
  }

  /**
   * Leaves the checked folders: back to where ferry started when we may read it, else to the
   * root (by its path: nothing is written there without a check on entry). Asking whether a
   * permission is granted asks the user nothing; going back without it would.
   */
  #leave(): void {
    try {
      Deno.chdir(this.#home ?? this.root);
    } catch {
      // Gone: stay; every write still checks the folder it enters.
    }
  }

  /** Makes the working directory folder `rel`, checked to be the one we know. */
  #enter(rel: string): void {
    if (this.#here === rel) return;
    const id = rel === "" ? this.#rootId() : this.#ids.get(rel);
    if (id === undefined) throw new Error(`Cannot write in ${rel}: not a folder ferry checked`);
    this.#here = undefined;
    try {
      Deno.chdir(this.path(rel));
    } catch {
      throw new SwappedFolderError(rel);
    }
    this.#away = true;
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(".");
    } catch (err) {
      // Under narrowed permissions (--allow-read=DIR) a link out of --dir leads where we may
      // not even look: not the folder we checked either.
      if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
        throw new SwappedFolderError(rel);
      }
      throw err;
    }
    if (info.dev !== id.dev || info.ino !== id.ino) throw new SwappedFolderError(rel);
    // Only a folder that passed the check is taken as where we are.
    this.#here = rel;
  }

  /** The root's identity, taken the first time it is needed (the folder --dir named then). */
  #rootId(): FolderId {
    let id = this.#ids.get("");
    if (id === undefined) {
      const info = Deno.statSync(this.root);
      id = { dev: info.dev, ino: info.ino! };
      this.#ids.set("", id);
    }
    return id;
  }

  /**
   * Path of a relative name that passed {@linkcode nameProblem} (no `.`, `..`, empty components
   * or leading `/`), so it can be appended as it is.
   */
  path(name: string): string {
    return name === "" ? this.root : this.#prefix + name;
  }

  /** Makes sure every folder of `relDir` exists and is a real folder (not a symlink). */
  ensureDir(relDir: string): PathRefusal | undefined {
    if (this.#known.has(relDir)) return undefined;
    let sofar = "";
    for (const part of relDir.split("/")) {
      sofar = sofar === "" ? part : `${sofar}/${part}`;
      if (this.#known.has(sofar)) continue;
      const full = this.path(sofar);
      if (this.#made.size < this.folderBudget) {
        // Most folders are new, so making one comes first: a failed lstat costs an exception.
        // mkdir never follows a symlink in the last component; it fails with EEXIST.
        let refusal: PathRefusal | "exists" | undefined;
        try {
          refusal = this.#make(sofar);
        } catch (err) {
          // Its parent is not the folder we checked any more: as good as a symlink on the way.
          if (err instanceof SwappedFolderError) return "symlink";
          throw err;
        }
        if (refusal !== "exists") {
          if (refusal) return refusal;
          this.#known.add(sofar);
          continue;
        }
      }
      // There already, or over the budget: only a real folder that is already there will do.
      const info = lstatOrUndefined(full);
      if (info === undefined) return "too-many-folders";
      if (info.isSymlink) return "symlink";
      if (!info.isDirectory) return "not-a-folder";
      this.#ids.set(sofar, { dev: info.dev, ino: info.ino! });
      this.#known.add(sofar);
    }
    return undefined;
  }

  /** Makes one folder, inside its parent as checked; "exists" if something is there already. */
  #make(rel: string): PathRefusal | "exists" | undefined {
    const made = this.within(rel, (leaf) => {
      try {
        // 0o777 less the umask, as mkdir(1) does; the mode it got tells us the umask.
        Deno.mkdirSync(leaf, { mode: 0o777 });
      } catch (err) {
        if (err instanceof Deno.errors.AlreadyExists) return undefined;
        throw err;
      }
      // Gone between the two calls: a local user moved the new folder away.
      const info = lstatOrUndefined(leaf);
      if (info === undefined) throw new SwappedFolderError(rel);
      return info;
    });
    if (made === undefined) return "exists";
    this.#listings.set(rel, new Map());
    if (!made.isDirectory) return made.isSymlink ? "symlink" : "not-a-folder";
    this.#made.set(rel, { dev: made.dev, ino: made.ino!, allowed: made.mode! & 0o777 });
    this.#ids.set(rel, { dev: made.dev, ino: made.ino! });
    return undefined;
  }

  /** Device, inode and umask-allowed bits of folder `relDir` if this root made it. */
  made(relDir: string): MadeFolder | undefined {
    return this.#made.get(relDir);
  }

  /** Makes sure the parent folders of file `name` exist safely. */
  ensureParent(name: string): PathRefusal | undefined {
    return this.ensureDir(parentOf(name));
  }

  /**
   * What is at `name` now (lstat: links are not followed), or undefined. Read inside the
   * folder this root checked or made for it, as a write would be: a folder swapped for a link
   * since cannot make ferry tell a peer what is outside. The parent folder is listed once and
   * remembered, so checking thousands of new names costs no failed lstat each. The listing is
   * only a first look: the final move into place is still no-clobber.
   */
  existing(name: string): Deno.FileInfo | undefined {
    const parent = parentOf(name);
    let listing = this.#listings.get(parent);
    if (listing === undefined) {
      listing = this.within(name, () => {
        const items = new Map<string, Deno.DirEntry>();
        for (const item of Deno.readDirSync(".")) items.set(item.name, item);
        return items;
      });
      this.#listings.set(parent, listing);
    }
    if (!listing.has(name.slice(name.lastIndexOf("/") + 1))) return undefined;
    return this.within(name, (leaf) => lstatOrUndefined(leaf));
  }
}

/**
 * The folder a batch returns to: the working directory ferry started in if it may read it
 * without asking, else `root`.
 */
function homeFolder(root: string): string {
  try {
    const cwd = Deno.cwd();
    const may = Deno.permissions.querySync({ name: "read", path: cwd });
    return may.state === "granted" ? cwd : root;
  } catch {
    return root;
  }
}

/** True for a promise or anything else with a `then` to await. */
function isThenable(value: unknown): boolean {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

function parentOf(name: string): string {
  const cut = name.lastIndexOf("/");
  return cut < 0 ? "" : name.slice(0, cut);
}

/** lstat that answers undefined instead of throwing NotFound. */
export function lstatOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}
