/**
 * Placing received files on disk: each large file is written to `NAME.ferry-part` and moved into
 * place once all its bytes are in; a small one is created whole under its name; folders ferry made
 * get the peer's mode and time at the end. Every step goes through a descriptor ferry created or
 * checked (lib/owned_file.ts), and every create, link, rename and unlink happens inside the folder
 * ferry checked or made, by its identity, not its path (SafeRoot.within). Used by the receiver's
 * frame loop and by the tutorial's wire alike.
 *
 * @module
 */

import { type Entry, RESULT_OK } from "../protocol.ts";
import { WIRE } from "./errors.ts";
import { finishFolder, OwnedFile } from "./owned_file.ts";
import { lstatOrUndefined, type MadeFolder, type SafeRoot } from "./safe_path.ts";

/**
 * Suffix of ferry's partial files, kept for resume. Ferry's own, so that it never mistakes
 * someone else's `NAME.part` (a browser's download) for one: a file it did not create is never
 * truncated, resumed, linked or removed.
 */
export const PART_SUFFIX = ".ferry-part";

/** Where a file goes: a name under a receiving folder whose folders were checked or made. */
export interface Target {
  root: SafeRoot;
  name: string;
}

/** How a transfer went, from the receiver's side. */
export interface ReceiveSummary {
  exitCode: number;
  files: number;
  failed: number;
  bytes: number;
}

/** Permissions from the peer are masked: no setuid/setgid/sticky, never world-writable. */
export function safeMode(entry: Entry): number {
  return entry.mode & 0o775;
}

/**
 * Opens the partial file of `target` for `entry`: ours to resume from `offset` (the very file
 * whose prefix was compared, `identity`), or created anew (a `stale` one of ours is removed
 * first; O_EXCL then fails on anything that appeared meanwhile).
 */
export function openPart(
  target: Target,
  entry: Entry,
  offset: number,
  stale: boolean,
  identity?: { dev: number; ino: number },
): OwnedFile {
  return target.root.within(target.name + PART_SUFFIX, (part) => {
    if (offset > 0) return OwnedFile.openAt(part, offset, identity);
    if (stale) removeQuietly(part);
    // The owner's bits are added for the writing; placeFile() sets the final mode within these.
    return OwnedFile.create(part, safeMode(entry) | 0o600);
  });
}

/** Removes the partial file of `target`, if it is there and its folder is still ours. */
export function removePart(target: Target): void {
  try {
    target.root.within(target.name + PART_SUFFIX, removeQuietly);
  } catch {
    // Its folder is gone or not ours any more: nothing of ours to remove there.
  }
}

/**
 * Gives a complete partial file its (masked) mode and time, closes it, then moves it into place
 * at `target`. Returns RESULT_OK, or WIRE.EXISTS if the name was taken meanwhile.
 */
export function placeFile(
  file: OwnedFile,
  entry: Entry,
  target: Target,
  overwrite: boolean,
): number {
  try {
    file.setMode(safeMode(entry));
    file.setTime(new Date(entry.mtime));
  } finally {
    file.close();
  }
  return moveIntoPlace(target, overwrite);
}

/**
 * A small file arrives whole and its size is checked in memory, so it needs no .ferry-part: it
 * is created under its final name with O_EXCL (no-clobber: it fails if the name appeared
 * meanwhile), written and given its time through that descriptor. With `overwrite` it goes
 * through a partial file and a rename. A `stale` partial file of ours is removed once it is in.
 */
export function placeSmallFile(
  entry: Entry,
  target: Target,
  data: Uint8Array,
  options: { overwrite: boolean; stale: boolean },
): number {
  if (options.overwrite) {
    const file = openPart(target, entry, 0, options.stale);
    try {
      file.writeSync(data);
    } catch (err) {
      file.close();
      throw err;
    }
    return placeFile(file, entry, target, true);
  }
  return target.root.within(target.name, (leaf) => {
    let file: OwnedFile;
    try {
      file = OwnedFile.create(leaf, safeMode(entry));
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) return WIRE.EXISTS;
      throw err;
    }
    try {
      file.writeSync(data);
      file.setTime(new Date(entry.mtime));
    } catch (err) {
      // Created by us but not completely written (a full disk): no short file under the name.
      file.close();
      removeQuietly(leaf);
      throw err;
    }
    file.close();
    if (options.stale) removeQuietly(leaf + PART_SUFFIX);
    return RESULT_OK;
  });
}

/**
 * Renames the partial file of `target` to its name, in the folder checked or made for it.
 * Without overwrite, a hard link makes the step atomic and no-clobber: it fails if the name
 * appeared meanwhile, and the .ferry-part is kept.
 */
export function moveIntoPlace(target: Target, overwrite: boolean): number {
  return target.root.within(target.name, (name) => {
    const part = name + PART_SUFFIX;
    if (overwrite) {
      Deno.renameSync(part, name);
      return RESULT_OK;
    }
    try {
      Deno.linkSync(part, name);
      Deno.removeSync(part);
      return RESULT_OK;
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) return WIRE.EXISTS;
      // Some file systems cannot hard-link; check then rename instead.
      if (lstatOrUndefined(name)) return WIRE.EXISTS;
      Deno.renameSync(part, name);
      return RESULT_OK;
    }
  });
}

/** Removes `path` (never following a link: unlink removes the link itself), if it is there. */
export function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // Already gone.
  }
}

/** A folder to finish: the offered entry, where it is, and what SafeRoot recorded making it. */
export interface MadeFolderEntry {
  entry: Entry;
  target: string;
  made: MadeFolder;
}

/**
 * Gives the folders this session made their peer's mode and time; an existing folder keeps
 * its own. Deepest first, so setting a child's time does not disturb its parent's afterwards.
 * Synchronous, like the file writes: two short syscalls per folder, where a trip through the
 * async thread pool each cost more than the calls (100 folders: 5-9 ms async, 0.8 sync). Each
 * is set through a descriptor, and only if the name still holds the very folder that was made.
 */
export function finishFolders(folders: MadeFolderEntry[]): void {
  folders.sort((a, b) => b.entry.name.length - a.entry.name.length);
  for (const { entry, target, made } of folders) {
    try {
      const mode = (safeMode(entry) | 0o700) & made.allowed;
      finishFolder(target, made, mode, new Date(entry.mtime));
    } catch {
      // Not ours to fix: the files are in place, the folder keeps its current time.
    }
  }
}

/** ENOSPC or EDQUOT, however the runtime words it. */
export function isNoSpace(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: string }).code;
  return code === "ENOSPC" || code === "EDQUOT" ||
    /os error (28|122)\b|No space left/.test(err.message);
}
