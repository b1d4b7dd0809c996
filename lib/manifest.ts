/**
 * The sender's side of the offer: turns command-line paths into a list of entries, walking
 * folders recursively (relative names kept, empty folders included, symlinks reported and
 * skipped, never followed).
 *
 * @module
 */

import { basename, join, resolve } from "node:path";
import { type Entry, KIND_DIR, KIND_FILE, KIND_STREAM } from "../protocol.ts";
import { UsageError } from "./errors.ts";
import { nameProblem } from "./safe_path.ts";

/** An offered entry and where its bytes come from (`null`: standard input). */
export interface SourceEntry extends Entry {
  source: string | null;
}

/** Options for {@linkcode buildManifest}. */
export interface ManifestOptions {
  /** Name for a single file or stdin (`-`). @default {basename, or "stdin" for "-"} */
  name?: string;
  /** Called for each thing skipped (symlinks, special files, unsafe names). */
  onSkip?: (path: string, why: string) => void;
}

/** Builds the entry list for `paths`. Throws UsageError for a missing path or a name clash. */
export function buildManifest(
  paths: readonly string[],
  options: ManifestOptions = {},
): SourceEntry[] {
  const entries: SourceEntry[] = [];
  const skip = options.onSkip ?? (() => {});
  if (options.name !== undefined && paths.length > 1) {
    throw new UsageError("--name works with a single PATH only");
  }
  for (const path of paths) {
    if (path === "-") {
      const name = options.name ?? "stdin";
      entries.push({
        kind: KIND_STREAM,
        mode: 0o644,
        mtime: Date.now(),
        size: 0,
        name,
        source: null,
      });
      continue;
    }
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new UsageError(`no such file or folder: ${path}`);
      }
      throw err;
    }
    const name = options.name ?? basename(resolve(path));
    if (name === "" || name === "/") throw new UsageError(`cannot send the root folder: ${path}`);
    add(path, name, info, entries, skip);
  }
  // Our own names go through the same checks the receiver will apply.
  const seen = new Set<string>();
  const kept: SourceEntry[] = [];
  for (const entry of entries) {
    const problem = nameProblem(entry.name);
    if (problem) {
      skip(entry.source ?? entry.name, `${problem} in name`);
      continue;
    }
    if (seen.has(entry.name)) throw new UsageError(`two paths would both be named ${entry.name}`);
    seen.add(entry.name);
    kept.push(entry);
  }
  return kept;
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
  };
}

/** Adds one path as `name`: a file, or a folder and everything below it (sorted). */
function add(
  path: string,
  name: string,
  info: Deno.FileInfo,
  out: SourceEntry[],
  skip: (path: string, why: string) => void,
): void {
  if (info.isSymlink) {
    skip(path, "symlink (not followed)");
  } else if (info.isFile) {
    out.push(entryFor(name, info, KIND_FILE, path));
  } else if (info.isDirectory) {
    out.push(entryFor(name, info, KIND_DIR, path));
    const items: string[] = [];
    for (const item of Deno.readDirSync(path)) items.push(item.name);
    // Sorted, so the same folder always gives the same offer.
    items.sort();
    for (const item of items) {
      const child = join(path, item);
      add(child, `${name}/${item}`, Deno.lstatSync(child), out, skip);
    }
  } else {
    skip(path, "not a regular file or folder");
  }
}
