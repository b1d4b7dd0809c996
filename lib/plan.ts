/**
 * What the receiver answers for each offered entry, decided as the offer arrives: send it,
 * resume it, already have it, or refuse it (and why). The policy lives here; the frames are in
 * lib/receive.ts, the disk in lib/place.ts.
 *
 * @module
 */

import { formatBytes } from "./bar.ts";
import { statfsSync } from "node:fs";
import {
  type Entry,
  KIND_DIR,
  KIND_STREAM,
  MAX_DEPTH,
  type Reply,
  REPLY_HAVE,
  REPLY_REFUSE,
  REPLY_RESUME,
  REPLY_SEND,
} from "../protocol.ts";
import { finishDigest, hashPrefix, type IHasher } from "./checksum.ts";
import { WIRE, type WireCode } from "./errors.ts";
import { NotAFileError, openRegular } from "./owned_file.ts";
import { PART_SUFFIX } from "./place.ts";
import {
  type MadeFolder,
  nameProblem,
  type PathRefusal,
  SafeRoot,
  SwappedFolderError,
  utf8Length,
} from "./safe_path.ts";

/** Default most entries accepted in one offer (`--max-files`). */
export const DEFAULT_MAX_FILES = 100_000;
/** Most bytes of names accepted in one offer. */
export const MAX_OFFER_NAME_BYTES = 64 * 1024 * 1024;

/** What the planner needs of the receiver's options. */
export interface PlanOptions {
  /** Replace existing files (`--overwrite`). */
  overwrite?: boolean;
  /** Most bytes accepted in one transfer (`--max-size`). */
  maxSize?: number;
  /** Set when the single offered file goes to standard output (`--stdout`). */
  stdout?: unknown;
}

/** What the receiver decided for one entry, and what became of it. */
export interface Plan {
  entry: Entry;
  reply: Reply;
  target: string;
  /** Hasher state after the resumed prefix (for --hash). */
  prefixState?: Uint8Array;
  /**
   * HAVE: the digest of our file; RESUME: of our `.ferry-part`'s first `offset` bytes. Never
   * sent: the sender sends its own, and we compare.
   */
  digest?: Uint8Array;
  /** Device and inode of the file HAVE or RESUME was decided on: only that one is read or resumed. */
  identity?: { dev: number; ino: number };
  /** A RESUME whose prefix did not match: the file comes again from 0, once. */
  restarted?: boolean;
  /** A NAME.ferry-part was there when we decided: replaced, or removed once the file is in. */
  stalePart?: boolean;
  /** A folder this session made: only such folders get the peer's mode and time. */
  made?: MadeFolder | undefined;
  started: boolean;
  status?: number;
  /** Its file-done event went out: each entry gets exactly one. */
  reported?: boolean;
  /** Why it was refused, in numbers, for our own log: "6.00 MiB offered, 1.95 MiB free". */
  note?: string;
}

function refuse(reason: WireCode): Reply {
  return { action: REPLY_REFUSE, offset: 0, reason };
}

const SEND: Reply = { action: REPLY_SEND, offset: 0, reason: 0 };
const HAVE: Reply = { action: REPLY_HAVE, offset: 0, reason: 0 };

/** Decides, entry by entry in offer order, what to do with each; remembers what it decided. */
export class Planner {
  readonly plans: Plan[] = [];
  readonly toStdout: boolean;
  /** With --stdout: how many files the whole offer holds (set once it has ended). */
  stdoutFiles = 0;
  #root: SafeRoot;
  #options: PlanOptions;
  #hasher: () => Promise<IHasher>;
  /** Targets being written by any connection, and those this one added. */
  #claims: Set<string>;
  #myClaims: string[] = [];
  /** Names offered so far that passed the name checks. */
  #names = new Set<string>();
  /** NAME, for every NAME.ferry-part among them. */
  #partBases = new Set<string>();
  #fileNames = new Set<string>();
  #accepted = 0;
  /** Bytes free under --dir when the offer began (Infinity when we may not ask). */
  #free: number;

  constructor(
    root: SafeRoot,
    options: PlanOptions,
    hasher: () => Promise<IHasher>,
    claims: Set<string>,
  ) {
    this.#root = root;
    this.#options = options;
    this.#hasher = hasher;
    this.#claims = claims;
    this.toStdout = options.stdout !== undefined;
    this.#free = this.toStdout ? Infinity : freeSpace(root.root);
  }

  /**
   * Plans the next entry of the offer. A HAVE or RESUME reply reads nothing yet: our digest is
   * taken only once the sender has committed to its own ({@linkcode Planner.digest}).
   */
  plan(entry: Entry): Plan {
    const plan: Plan = { entry, reply: SEND, target: "", started: false };
    this.plans.push(plan);
    plan.reply = this.#decide(entry, plan);
    return plan;
  }

  /**
   * Our digest for a HAVE (the file we have) or RESUME (the `.ferry-part`'s first `offset`
   * bytes), to compare with the one the sender just sent; sets `plan.digest` and returns the
   * bytes read, or undefined if that file is not the one we decided on any more (swapped,
   * replaced, gone): then there is nothing to compare, and nothing is said of what is there.
   */
  async digest(plan: Plan): Promise<number | undefined> {
    const mine = await this.#hasher();
    const resume = plan.reply.action === REPLY_RESUME;
    const name = resume ? plan.entry.name + PART_SUFFIX : plan.entry.name;
    const length = resume ? plan.reply.offset : plan.entry.size;
    let read: number;
    try {
      // Opened inside the folder that was checked for it, never a link or a FIFO, and only the
      // very file we decided on, whatever came there since.
      const open = () => this.#root.within(name, (leaf) => openRegular(leaf, plan.identity));
      read = await hashPrefix(name, length, mine, open);
    } catch (err) {
      if (err instanceof SwappedFolderError || err instanceof NotAFileError) return undefined;
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
    if (read !== length) return undefined;
    // With --hash, the file's own digest goes on from the resumed prefix.
    if (resume) plan.prefixState = mine.save();
    plan.digest = finishDigest(mine);
    return read;
  }

  /** Lets other connections write to the targets this one claimed. */
  release(): void {
    for (const claim of this.#myClaims) this.#claims.delete(claim);
  }

  /** Why `name` cannot be taken whatever is on disk: unsafe, offered twice, below a file. */
  #nameRefusal(name: string): WireCode | undefined {
    if (nameProblem(name) !== undefined) return WIRE.BAD_NAME;
    if (this.#names.has(name)) return WIRE.DUPLICATE;
    this.#names.add(name);
    if (insideAFile(name, this.#fileNames)) return WIRE.BAD_NAME;
    // NAME.ferry-part is where NAME is written first: of NAME and NAME.ferry-part, the later is refused.
    if (name.endsWith(PART_SUFFIX)) {
      const base = name.slice(0, -PART_SUFFIX.length);
      this.#partBases.add(base);
      if (this.#names.has(base)) return WIRE.DUPLICATE;
    } else if (this.#partBases.size > 0 && this.#partBases.has(name)) {
      return WIRE.DUPLICATE;
    }
    return undefined;
  }

  #decide(entry: Entry, plan: Plan): Reply {
    const name = entry.name;
    const refusal = this.#nameRefusal(name);
    if (refusal !== undefined) return refuse(refusal);
    if (this.toStdout) {
      // --stdout takes exactly one file and no folders.
      return entry.kind === KIND_DIR || this.stdoutFiles !== 1 ? refuse(WIRE.ONE_FILE_ONLY) : SEND;
    }
    const root = this.#root;
    // Too long a path for the system refuses this entry alone, before anything is made.
    if (utf8Length(root.path(name)) + PART_SUFFIX.length >= PATH_MAX) return refuse(WIRE.BAD_NAME);
    // Each offered entry may bring one new folder, and one name a full depth of them.
    root.folderBudget = this.#names.size + MAX_DEPTH;
    if (entry.kind === KIND_DIR) {
      const refusal = root.ensureDir(name);
      plan.target = root.path(name);
      if (refusal) return refuse(pathRefusalCode(refusal, WIRE.EXISTS));
      plan.made = root.made(name);
      return SEND;
    }
    this.#fileNames.add(name);
    if (this.#accepted + entry.size > (this.#options.maxSize ?? Infinity)) {
      return refuse(WIRE.TOO_LARGE);
    }
    // Files that cannot fit are refused now, not found out when the disk fills. (A resumed
    // file needs less; counting all of it errs on the safe side.)
    if (this.#accepted + entry.size > this.#free) {
      const free = formatBytes(Math.max(0, this.#free - this.#accepted));
      plan.note = `${formatBytes(entry.size)} offered, ${free} free`;
      return refuse(WIRE.NO_SPACE);
    }
    const parentRefusal = root.ensureParent(name);
    if (parentRefusal) return refuse(pathRefusalCode(parentRefusal, WIRE.BAD_NAME));
    plan.target = root.path(name);
    // Another sender is sending the same name right now: a duplicate, not a busy receiver.
    if (this.#claims.has(plan.target)) return refuse(WIRE.DUPLICATE);
    let reply: Reply;
    try {
      reply = decide(entry, plan, root, this.#options.overwrite ?? false);
    } catch (err) {
      // Its folder is not the one checked for it any more: say nothing of what is there now.
      if (err instanceof SwappedFolderError) return refuse(WIRE.SYMLINK);
      throw err;
    }
    if (reply.action !== REPLY_REFUSE) {
      this.#claims.add(plan.target);
      this.#myClaims.push(plan.target);
      this.#accepted += entry.size;
    }
    return reply;
  }
}

/**
 * Bytes an unprivileged writer may still use under `dir` (`statfs`), or Infinity when Deno does
 * not let us ask (it needs --allow-sys=statfs; the receiver's shebang gives it).
 */
export function freeSpace(dir: string): number {
  const may = Deno.permissions.querySync({ name: "sys", kind: "statfs" });
  if (may.state !== "granted") return Infinity;
  try {
    const stats = statfsSync(dir);
    return Number(stats.bavail) * Number(stats.bsize);
  } catch {
    return Infinity;
  }
}

/** Longest path the system takes, in bytes, with its final NUL (Linux PATH_MAX). */
const PATH_MAX = 4096;

/** The wire code for a path SafeRoot would not prepare; `other` for "not a folder". */
function pathRefusalCode(refusal: PathRefusal, other: WireCode): WireCode {
  if (refusal === "symlink") return WIRE.SYMLINK;
  if (refusal === "too-many-folders") return WIRE.TOO_LARGE;
  return other;
}

/** True if some ancestor folder of `name` was offered as a file. */
function insideAFile(name: string, fileNames: Set<string>): boolean {
  let cut = name.indexOf("/");
  while (cut >= 0) {
    if (fileNames.has(name.slice(0, cut))) return true;
    cut = name.indexOf("/", cut + 1);
  }
  return false;
}

/**
 * Send, resume, already-have or refuse, from what is on disk now. For HAVE and RESUME, our own
 * digest is taken next ({@linkcode Planner.digest}).
 */
function decide(entry: Entry, plan: Plan, root: SafeRoot, overwrite: boolean): Reply {
  const existing = root.existing(entry.name);
  if (existing?.isSymlink) return refuse(WIRE.SYMLINK);
  // A folder, FIFO, socket or device is never opened, compared or replaced.
  if (existing && !existing.isFile) return refuse(WIRE.EXISTS);
  if (existing && !overwrite) {
    if (entry.kind === KIND_STREAM || existing.size !== entry.size) return refuse(WIRE.EXISTS);
    plan.identity = { dev: existing.dev, ino: existing.ino! };
    return HAVE;
  }
  const part = root.existing(entry.name + PART_SUFFIX);
  if (part?.isSymlink) return refuse(WIRE.SYMLINK);
  if (part && !part.isFile) return refuse(WIRE.EXISTS);
  plan.stalePart = part !== undefined;
  if (part && entry.kind !== KIND_STREAM && part.size > 0 && part.size <= entry.size) {
    plan.identity = { dev: part.dev, ino: part.ino! };
    return { action: REPLY_RESUME, offset: part.size, reason: 0 };
  }
  return SEND;
}
