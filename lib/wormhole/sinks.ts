/**
 * Where a magic-wormhole offer's bytes go on the receiving side: its checks (names as strict as
 * in a ferry offer, sizes against --max-size and --max-files), then a file written as
 * NAME.ferry-part and moved into place, standard output, or a folder unpacked from its zip.
 *
 * @module
 */

import { ProtocolError, RefusedError, WIRE } from "../errors.ts";
import { writeAll } from "../io.ts";
import { OwnedFile } from "../owned_file.ts";
import { moveIntoPlace, PART_SUFFIX, removePart, removeQuietly, type Target } from "../place.ts";
import type { Reporter } from "../report.ts";
import { nameProblem, SafeRoot } from "../safe_path.ts";
import { Unzipper } from "./zip.ts";

/** What deciding on an offer needs of the receiver's settings. */
export interface AcceptOptions {
  dir: string;
  overwrite: boolean;
  maxSize: number;
  maxFiles: number;
  /** Write a single file to standard output instead of into `dir`. */
  stdout: boolean;
  reporter: Reporter;
}

/** Where an accepted offer's bytes go, and how it ends. */
export interface Sink {
  name: string;
  size: number;
  write(record: Uint8Array): Promise<void>;
  /** All bytes are in and acknowledged: put them in place. Returns files written. */
  finish(): number;
  abandon(): void;
}

function count(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new ProtocolError(`the offer's ${what} is not a size`);
  }
  return value;
}

function checkedName(value: unknown): string {
  const name = typeof value === "string" ? value : "";
  const problem = nameProblem(name) ??
    (name.includes("/") ? "a path, not a name" : undefined) ??
    (name.endsWith(PART_SUFFIX) ? "reserved suffix" : undefined);
  if (problem) {
    throw new RefusedError(
      `refusing the name ${JSON.stringify(name).slice(0, 80)}: ${problem}`,
      WIRE.BAD_NAME,
    );
  }
  return name;
}

/** Checks an offer against our limits and prepares where its bytes go; throws to refuse. */
export function acceptOffer(offer: Record<string, unknown>, options: AcceptOptions): Sink {
  const file = offer.file as Record<string, unknown> | undefined;
  const directory = offer.directory as Record<string, unknown> | undefined;
  if (typeof file === "object" && file !== null) {
    const name = checkedName(file.filename);
    const size = count(file.filesize, "filesize");
    if (size > options.maxSize) {
      throw new RefusedError(`${name} is ${size} bytes, over --max-size`, WIRE.TOO_LARGE);
    }
    if (options.stdout) return stdoutSink(name, size, Deno.stdout);
    return fileSink({ root: new SafeRoot(options.dir), name }, size, options.overwrite);
  }
  if (typeof directory === "object" && directory !== null) {
    if (directory.mode !== "zipfile/deflated") {
      throw new RefusedError("unknown folder transfer mode", WIRE.PROTOCOL);
    }
    if (options.stdout) {
      throw new RefusedError("a folder cannot go to --stdout", WIRE.ONE_FILE_ONLY);
    }
    const name = checkedName(directory.dirname);
    const size = count(directory.zipsize, "zipsize");
    const numBytes = count(directory.numbytes, "numbytes");
    const numFiles = count(directory.numfiles, "numfiles");
    if (Math.max(size, numBytes) > options.maxSize || numFiles > options.maxFiles) {
      throw new RefusedError(`${name}/ is over --max-size or --max-files`, WIRE.TOO_LARGE);
    }
    return folderSink(new SafeRoot(options.dir), name, size, numBytes, options);
  }
  throw new RefusedError("unknown offer type", WIRE.PROTOCOL);
}

function fileSink(target: Target, size: number, overwrite: boolean): Sink {
  const name = target.name;
  if (!overwrite && target.root.existing(name)) {
    throw new RefusedError(`refusing to overwrite existing '${name}'`, WIRE.EXISTS);
  }
  let out: OwnedFile;
  try {
    // magic-wormhole has no offset to resume from: a NAME.ferry-part of ours left by an
    // interrupted run is replaced (unlink removes a link itself, never what it points to).
    out = target.root.within(name + PART_SUFFIX, (part) => {
      removeQuietly(part);
      return OwnedFile.create(part, 0o666, false);
    });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new RefusedError(`${name}${PART_SUFFIX} is in the way`, WIRE.EXISTS);
    }
    throw err;
  }
  return {
    name,
    size,
    write: async (record) => {
      await out.write(record);
    },
    finish: () => {
      out.close();
      if (moveIntoPlace(target, overwrite) !== 0) {
        throw new RefusedError(
          `${name} appeared meanwhile; the data is kept as ${name}${PART_SUFFIX}`,
          WIRE.EXISTS,
        );
      }
      return 1;
    },
    abandon: () => {
      out.close();
      removePart(target);
    },
  };
}

function stdoutSink(
  name: string,
  size: number,
  stdout: { write(bytes: Uint8Array): Promise<number> },
): Sink {
  return {
    name,
    size,
    write: (record) => writeAll(stdout, record),
    finish: () => 1,
    abandon: () => {},
  };
}

function folderSink(
  root: SafeRoot,
  name: string,
  size: number,
  numBytes: number,
  options: AcceptOptions,
): Sink {
  // Made (or, with --overwrite, found) through the root, which keeps the folder's identity
  // from this moment: a local user who swaps it for a link afterwards sends nothing elsewhere.
  const refusal = root.ensureDir(name);
  const made = root.made(name) !== undefined;
  if (refusal !== undefined || (!made && !options.overwrite)) {
    throw new RefusedError(
      refusal === "symlink"
        ? `refusing ${name}/: a link is in the way`
        : `refusing to overwrite existing '${name}'`,
      refusal === "symlink" ? WIRE.SYMLINK : WIRE.EXISTS,
    );
  }
  const unzipper = new Unzipper(
    { root, folder: name },
    { maxBytes: numBytes, maxFiles: options.maxFiles },
    options.overwrite,
  );
  return {
    name: `${name}/`,
    size,
    write: (record) => Promise.resolve(unzipper.push(record)),
    finish: () => {
      unzipper.push(new Uint8Array(0), true);
      for (const refused of unzipper.refused) {
        options.reporter.warn(`refused from the zip: ${refused}`);
      }
      if (unzipper.refused.length > 0) {
        throw new RefusedError(
          `${unzipper.refused.length} entr${
            unzipper.refused.length === 1 ? "y" : "ies"
          } of ${name}/ refused`,
          WIRE.BAD_NAME,
        );
      }
      return unzipper.files;
    },
    abandon: () => {
      unzipper.close();
      if (made) options.reporter.warn(`${name}/ is incomplete`);
    },
  };
}
