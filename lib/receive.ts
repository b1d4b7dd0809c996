/**
 * The receiver's half of a transfer, after the handshake: read the offer, deciding for every
 * entry as it arrives (send, resume, already have it, refuse), then write the files as they stream
 * in, each to `NAME.ferry-part`, renamed into place only once all its bytes are in. Every byte arrives
 * in a record the AEAD authenticated, in order; digests are only for what does not travel: the
 * prefix of a resumed file and a file the receiver already has.
 *
 * @module
 */

import {
  CHUNK_SIZE,
  decodeFileEnd,
  decodeFileStart,
  decodeIndex,
  decodeOffer,
  decodeOfferEnd,
  decodeSmallFiles,
  encodeDone,
  encodeReplies,
  encodeResults,
  type Entry,
  type FileResult,
  FRAME_DATA,
  FRAME_DONE,
  FRAME_FILE,
  FRAME_FILE_END,
  FRAME_OFFER,
  FRAME_OFFER_END,
  FRAME_REPLY,
  FRAME_RESULT,
  FRAME_SKIP,
  FRAME_SMALL_FILES,
  frameName,
  KIND_DIR,
  KIND_FILE,
  KIND_STREAM,
  MAX_DEPTH,
  MAX_ENTRIES,
  MAX_SMALL_FILES_BODY,
  type Reply,
  REPLY_HAVE,
  REPLY_REFUSE,
  REPLY_RESUME,
  REPLY_SEND,
  RESULT_IDENTICAL,
  RESULT_OK,
} from "../protocol.ts";
import { type Channel, DEFAULT_IDLE_TIMEOUT_MS } from "./channel.ts";
import { digestOf, finishDigest, hashPrefix, type IHasher, lazyHasher } from "./checksum.ts";
import { decompressPayload } from "./compress.ts";
import {
  EXIT,
  exitCodeForResult,
  IntegrityError,
  isRefusal,
  ProtocolError,
  RefusedError,
  WIRE,
  WIRE_MESSAGES,
  type WireCode,
  worse,
} from "./errors.ts";
import { writeAll, type Writer } from "./io.ts";
import { finishFolder, openRegular, OwnedFile } from "./owned_file.ts";
import type { FileStatus, Reporter } from "./report.ts";
import {
  lstatOrUndefined,
  type MadeFolder,
  nameProblem,
  type PathRefusal,
  SafeRoot,
  utf8Length,
} from "./safe_path.ts";

/**
 * Chunks smaller than this are written synchronously: one short syscall beats a trip through
 * the async thread pool, which dominates folders of small files. Larger chunks are written
 * asynchronously while the next frame is opened.
 */
const SYNC_WRITE_MAX = 64 * 1024;

/**
 * Suffix of ferry's partial files, kept for resume. Ferry's own, so that it never mistakes
 * someone else's `NAME.ferry-part` (a browser's download) for one: a file it did not create is never
 * truncated, resumed, linked or removed.
 */
export const PART_SUFFIX = ".ferry-part";
/** Default most entries accepted in one offer (`--max-files`). */
export const DEFAULT_MAX_FILES = 100_000;
/** Most bytes of names accepted in one offer. */
export const MAX_OFFER_NAME_BYTES = 64 * 1024 * 1024;

/** Options for {@linkcode receiveEntries}. */
export interface ReceiveOptions {
  /** Target folder (`--dir`). */
  dir: string;
  /** Replace existing files atomically (`--overwrite`). @default {false} */
  overwrite?: boolean;
  /** Write the single offered file here instead of into `dir` (`--stdout`). */
  stdout?: Writer;
  /** Most bytes accepted in one transfer (`--max-size`). @default {Infinity} */
  maxSize?: number;
  /** Most entries accepted in one offer (`--max-files`). @default {100000} */
  maxFiles?: number;
  reporter: Reporter;
  /** Label for events from this connection. @default {"1"} */
  id?: string;
  /** Idle timeout once the transfer runs. @default {30000} */
  idleTimeoutMs?: number;
  /** `--hash`: digest every file as it is written, for the file-done events. @default {false} */
  hash?: boolean;
  /** Target paths other connections are writing right now (shared by all connections). */
  claims?: Set<string>;
}

/** How a transfer went, from the receiver's side. */
export interface ReceiveSummary {
  exitCode: number;
  files: number;
  failed: number;
  bytes: number;
}

/** What the receiver decided for one entry, and what became of it. */
interface Plan {
  entry: Entry;
  reply: Reply;
  target: string;
  /** Hasher state after the resumed prefix (for --hash). */
  prefixState?: Uint8Array;
  /** A NAME.ferry-part was there when we decided: replaced, or removed once the file is in. */
  stalePart?: boolean;
  /** A folder this session made: only such folders get the peer's mode and time. */
  made?: MadeFolder | undefined;
  started: boolean;
  status?: number;
}

interface Current {
  index: number;
  plan: Plan;
  file: OwnedFile | null;
  part: string;
  written: number;
  offset: number;
  /** The write in flight, if any. */
  writing: Promise<void>;
}

/** Runs the receiver's side of one transfer on a sealed channel. */
export async function receiveEntries(
  channel: Channel,
  options: ReceiveOptions,
): Promise<ReceiveSummary> {
  const id = options.id ?? "1";
  const reporter = options.reporter;
  const claims = options.claims ?? new Set<string>();
  channel.setIdleTimeout(options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);

  // 1-2. Read the offer and answer every entry: send, resume, already have it, or refuse. Each
  // OFFER frame is answered as it comes, while the sender is still listing the rest; there is
  // no round trip per file.
  const hasher = lazyHasher();
  const root = new SafeRoot(options.dir);
  const planner = new Planner(root, options, hasher, claims);
  try {
    const plans = await answerOffer(channel, planner, options.maxFiles ?? DEFAULT_MAX_FILES);
    let toReceive = 0;
    let files = 0;
    for (const plan of plans) {
      if (plan.entry.kind === KIND_DIR) continue;
      files++;
      if (plan.reply.action !== REPLY_REFUSE) toReceive += plan.entry.size;
    }
    reporter.start(id, files, toReceive);

    // 3. Files stream in back to back; each is renamed into place once all of it is in.
    const results = new ResultBatch(channel);
    const fileHasher = options.hash ? await hasher() : null;
    const bytes = await receiveFiles(channel, plans, options, fileHasher, results, id);

    // 4. Whatever the sender did not send or skip gets its verdict now.
    for (let index = 0; index < plans.length; index++) {
      const plan = plans[index]!;
      if (plan.entry.kind === KIND_DIR || plan.status !== undefined) continue;
      if (plan.reply.action === REPLY_REFUSE) plan.status = plan.reply.reason;
      else if (plan.reply.action === REPLY_HAVE) plan.status = WIRE.EXISTS;
      // Accepted but never sent: a failure, said with a code that is not a RESULT status
      // (1, the protocol-error code, would read as "identical").
      else plan.status = WIRE.CANCELLED;
      if (plan.reply.action !== REPLY_REFUSE) results.add(index, plan.status);
    }
    await results.flush();
    applyFolderTimes(plans);
    let failed = 0;
    let exitCode: number = EXIT.OK;
    for (const plan of plans) {
      if (plan.entry.kind === KIND_DIR) continue;
      if (plan.status === RESULT_OK || plan.status === RESULT_IDENTICAL) continue;
      failed++;
      exitCode = worse(exitCode, exitCodeForResult(plan.status!));
      if (plan.reply.action === REPLY_REFUSE || plan.status === WIRE.EXISTS) {
        report(reporter, id, plan, "refused");
      }
    }
    await channel.send(FRAME_DONE, encodeDone({ files: files - failed, bytes }));
    return { exitCode, files, failed, bytes };
  } finally {
    planner.release();
  }
}

/**
 * Reads the offer, bounded in entries and in name bytes, and answers each OFFER frame as soon as
 * it is decided. With --stdout the answers wait for OFFER_END: only then is it known whether the
 * offer holds exactly one file.
 */
async function answerOffer(channel: Channel, planner: Planner, maxFiles: number): Promise<Plan[]> {
  const limit = Math.min(maxFiles, MAX_ENTRIES);
  let count = 0;
  let nameBytes = 0;
  const held: Entry[] = [];
  const answer = async (entries: readonly Entry[]) => {
    const replies: Reply[] = [];
    for (const entry of entries) {
      const plan = planner.plan(entry);
      // Only HAVE and RESUME read the disk; everything else is decided without waiting.
      if (plan.reply.action === REPLY_HAVE || plan.reply.action === REPLY_RESUME) {
        await planner.digest(plan);
      }
      replies.push(plan.reply);
    }
    for (const batch of encodeReplies(replies)) await channel.send(FRAME_REPLY, batch);
    // Out now: the next OFFER frame may already be here, and the sender waits for these.
    await channel.flush();
  };
  while (true) {
    const frame = await channel.recv();
    if (frame.type === FRAME_OFFER_END) {
      const end = decodeOfferEnd(frame.payload);
      if (end.count !== count) {
        throw new ProtocolError(
          `Cannot accept offer: it announced ${end.count} entries but listed ${count}`,
        );
      }
      planner.stdoutFiles = held.filter((e) => e.kind !== KIND_DIR).length;
      await answer(held);
      return planner.plans;
    }
    if (frame.type !== FRAME_OFFER) {
      throw new ProtocolError(`Cannot accept offer: unexpected ${frameName(frame.type)}`);
    }
    nameBytes += frame.payload.length;
    const entries = decodeOffer(frame.payload);
    count += entries.length;
    if (count > limit) {
      throw new RefusedError(
        `Cannot accept offer: more than ${limit} entries (--max-files)`,
        WIRE.TOO_LARGE,
      );
    }
    if (nameBytes > MAX_OFFER_NAME_BYTES) {
      throw new RefusedError("Cannot accept offer: the list of names is too large", WIRE.TOO_LARGE);
    }
    if (planner.toStdout) held.push(...entries);
    else await answer(entries);
  }
}

const NO_DIGEST = new Uint8Array(0);

function refuse(reason: WireCode): Reply {
  return { action: REPLY_REFUSE, offset: 0, digest: NO_DIGEST, reason };
}

const SEND: Reply = { action: REPLY_SEND, offset: 0, digest: NO_DIGEST, reason: 0 };

/** Decides, entry by entry in offer order, what to do with each; remembers what it decided. */
class Planner {
  readonly plans: Plan[] = [];
  readonly toStdout: boolean;
  /** With --stdout: how many files the whole offer holds (set once it has ended). */
  stdoutFiles = 0;
  #root: SafeRoot;
  #options: ReceiveOptions;
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

  constructor(
    root: SafeRoot,
    options: ReceiveOptions,
    hasher: () => Promise<IHasher>,
    claims: Set<string>,
  ) {
    this.#root = root;
    this.#options = options;
    this.#hasher = hasher;
    this.#claims = claims;
    this.toStdout = options.stdout !== undefined;
  }

  /**
   * Plans the next entry of the offer. A HAVE or RESUME reply still lacks its digest: that
   * reads the disk, so {@linkcode Planner.digest} adds it.
   */
  plan(entry: Entry): Plan {
    const plan: Plan = { entry, reply: SEND, target: "", started: false };
    this.plans.push(plan);
    plan.reply = this.#decide(entry, plan);
    return plan;
  }

  /** Fills in the digest of a HAVE (the file we have) or RESUME (the `.ferry-part` prefix) reply. */
  async digest(plan: Plan): Promise<void> {
    const mine = await this.#hasher();
    const resume = plan.reply.action === REPLY_RESUME;
    const path = resume ? plan.target + PART_SUFFIX : plan.target;
    // Never a link or a FIFO, whatever came there since the name was looked at.
    await hashPrefix(path, plan.reply.offset, mine, (p) => openRegular(p));
    // With --hash, the file's own digest goes on from the resumed prefix.
    if (resume) plan.prefixState = mine.save();
    plan.reply = { ...plan.reply, digest: finishDigest(mine) };
  }

  /** Lets other connections write to the targets this one claimed. */
  release(): void {
    for (const claim of this.#myClaims) this.#claims.delete(claim);
  }

  #decide(entry: Entry, plan: Plan): Reply {
    const name = entry.name;
    if (nameProblem(name) !== undefined) return refuse(WIRE.BAD_NAME);
    if (this.#names.has(name)) return refuse(WIRE.DUPLICATE);
    this.#names.add(name);
    if (insideAFile(name, this.#fileNames)) return refuse(WIRE.BAD_NAME);
    // NAME.ferry-part is where NAME is written first: of NAME and NAME.ferry-part, the later is refused.
    if (name.endsWith(PART_SUFFIX)) {
      const base = name.slice(0, -PART_SUFFIX.length);
      this.#partBases.add(base);
      if (this.#names.has(base)) return refuse(WIRE.DUPLICATE);
    } else if (this.#partBases.size > 0 && this.#partBases.has(name)) {
      return refuse(WIRE.DUPLICATE);
    }
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
    const parentRefusal = root.ensureParent(name);
    if (parentRefusal) return refuse(pathRefusalCode(parentRefusal, WIRE.BAD_NAME));
    plan.target = root.path(name);
    if (this.#claims.has(plan.target)) return refuse(WIRE.BUSY);
    const reply = decide(entry, plan, root, this.#options.overwrite ?? false);
    if (reply.action !== REPLY_REFUSE) {
      this.#claims.add(plan.target);
      this.#myClaims.push(plan.target);
      this.#accepted += entry.size;
    }
    return reply;
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
 * Send, resume, already-have or refuse, from what is on disk now. HAVE and RESUME come without
 * their digest ({@linkcode Planner.digest}).
 */
function decide(entry: Entry, plan: Plan, root: SafeRoot, overwrite: boolean): Reply {
  const existing = root.existing(entry.name);
  if (existing?.isSymlink) return refuse(WIRE.SYMLINK);
  // A folder, FIFO, socket or device is never opened, compared or replaced.
  if (existing && !existing.isFile) return refuse(WIRE.EXISTS);
  if (existing && !overwrite) {
    if (entry.kind === KIND_STREAM || existing.size !== entry.size) return refuse(WIRE.EXISTS);
    return { action: REPLY_HAVE, offset: existing.size, digest: NO_DIGEST, reason: 0 };
  }
  const part = root.existing(entry.name + PART_SUFFIX);
  if (part?.isSymlink) return refuse(WIRE.SYMLINK);
  if (part && !part.isFile) return refuse(WIRE.EXISTS);
  plan.stalePart = part !== undefined;
  if (part && entry.kind !== KIND_STREAM && part.size > 0 && part.size <= entry.size) {
    return { action: REPLY_RESUME, offset: part.size, digest: NO_DIGEST, reason: 0 };
  }
  return SEND;
}

/** Verdicts for the sender, gathered into few RESULT frames; it needs them only at the end. */
class ResultBatch {
  #channel: Channel;
  #pending: FileResult[] = [];
  constructor(channel: Channel) {
    this.#channel = channel;
  }
  add(index: number, status: number): void {
    this.#pending.push({ index, status });
  }
  /** Sends the gathered verdicts once there are a frame's worth; called between frames. */
  async flushIfFull(): Promise<void> {
    if (this.#pending.length >= RESULT_BATCH) await this.flush();
  }
  async flush(): Promise<void> {
    for (const batch of encodeResults(this.#pending)) await this.#channel.send(FRAME_RESULT, batch);
    this.#pending = [];
  }
}

/** Verdicts per RESULT frame, at most, before they are sent. */
const RESULT_BATCH = 4096;

/** Checks that entry `index` may start at `offset`; returns its plan. */
function startable(plans: Plan[], index: number, offset: number): Plan {
  const plan = plans[index];
  if (
    !plan || plan.started || plan.entry.kind === KIND_DIR ||
    (plan.reply.action !== REPLY_SEND && plan.reply.action !== REPLY_RESUME)
  ) {
    throw new ProtocolError(`Cannot start file ${index}: it was not accepted`);
  }
  const resuming = plan.reply.action === REPLY_RESUME && offset === plan.reply.offset;
  if (offset !== 0 && !resuming) {
    throw new ProtocolError(`Cannot start file ${index} at byte ${offset}`);
  }
  plan.started = true;
  return plan;
}

/**
 * Receives FILE/DATA/FILE_END, SMALL_FILES and SKIP frames until DONE; returns bytes received.
 * `hasher` (with --hash) digests each file for its file-done event.
 */
async function receiveFiles(
  channel: Channel,
  plans: Plan[],
  options: ReceiveOptions,
  hasher: IHasher | null,
  results: ResultBatch,
  id: string,
): Promise<number> {
  const reporter = options.reporter;
  let streamBudget = options.maxSize ?? Infinity;
  for (const plan of plans) {
    if (plan.entry.kind === KIND_FILE && plan.reply.action !== REPLY_REFUSE) {
      streamBudget -= plan.entry.size;
    }
  }
  let streamBytes = 0;
  let total = 0;
  let current: Current | null = null;
  let keepPart = true;
  const settle = (
    index: number,
    plan: Plan,
    status: number,
    digest?: Uint8Array | null,
    offset = 0,
  ) => {
    plan.status = status;
    results.add(index, status);
    report(reporter, id, plan, statusName(status), {
      ...(digest ? { digest } : {}),
      resumed: offset,
    });
  };
  try {
    while (true) {
      await results.flushIfFull();
      const frame = await channel.recv();
      if (frame.type === FRAME_DONE) {
        if (current) throw new ProtocolError("Cannot finish: a file was left open");
        return total;
      }
      if (frame.type === FRAME_SMALL_FILES) {
        // Whole small files, each checked against its declared size before any byte is written.
        if (current) throw new ProtocolError("Cannot start a file: the previous one did not end");
        const body = decompressPayload(frame.payload, MAX_SMALL_FILES_BODY, "SMALL_FILES");
        for (const small of decodeSmallFiles(body)) {
          const plan = startable(plans, small.index, 0);
          reporter.fileStart(id, plan.entry.name, plan.entry.size, 0);
          const data = small.data;
          let status: number = WIRE.INTEGRITY;
          if (data.length === plan.entry.size) {
            if (options.stdout) {
              await writeAll(options.stdout, data);
              status = RESULT_OK;
            } else {
              status = placeSmallFile(plan, data, options);
            }
          }
          total += data.length;
          reporter.progress(id, data.length);
          settle(small.index, plan, status, hasher && digestOf(hasher, data));
        }
        continue;
      }
      if (frame.type === FRAME_FILE) {
        if (current) throw new ProtocolError("Cannot start a file: the previous one did not end");
        const start = decodeFileStart(frame.payload);
        const plan = startable(plans, start.index, start.offset);
        const resuming = start.offset > 0;
        hasher?.init();
        if (resuming) hasher?.load(plan.prefixState!);
        const part = plan.target + PART_SUFFIX;
        const file = options.stdout ? null : openPart(plan, part, start.offset);
        current = {
          index: start.index,
          plan,
          file,
          part,
          written: start.offset,
          offset: start.offset,
          writing: Promise.resolve(),
        };
        reporter.fileStart(id, plan.entry.name, plan.entry.size, start.offset);
        continue;
      }
      if (frame.type === FRAME_DATA) {
        if (!current) throw new ProtocolError("Cannot take DATA: no file is open");
        const data = decompressPayload(frame.payload, CHUNK_SIZE, "DATA");
        const stream = current.plan.entry.kind === KIND_STREAM;
        // Streams have no declared size: all of them together get what --max-size leaves over.
        const over = stream
          ? streamBytes + data.length > streamBudget
          : current.written + data.length > current.plan.entry.size;
        if (stream) streamBytes += data.length;
        if (over) {
          keepPart = false;
          throw current.plan.entry.kind === KIND_STREAM
            ? new RefusedError(`${current.plan.entry.name}: larger than --max-size`, WIRE.TOO_LARGE)
            : new IntegrityError(
              `${current.plan.entry.name}: the sender sent more bytes than it declared`,
            );
        }
        hasher?.update(data);
        // The write runs while the next frame is opened; at most one write is in flight.
        await current.writing;
        if (current.file && data.length < SYNC_WRITE_MAX) {
          current.file.writeSync(data);
        } else {
          current.writing = writeAll(current.file ?? options.stdout!, data);
          // Its failure (a full disk) is thrown where it is awaited, not as an unhandled rejection.
          current.writing.catch(() => {});
        }
        current.written += data.length;
        total += data.length;
        reporter.progress(id, data.length);
        continue;
      }
      if (frame.type === FRAME_FILE_END) {
        if (!current) throw new ProtocolError("Cannot end a file: none is open");
        const end = decodeFileEnd(frame.payload);
        const done = current;
        await done.writing;
        current = null;
        const entry = done.plan.entry;
        const sizeOk = end.size === done.written &&
          (entry.kind === KIND_STREAM || done.written === entry.size);
        let status: number = WIRE.INTEGRITY;
        if (sizeOk) {
          status = done.file ? placeFile(done.plan, done.file, options) : RESULT_OK;
        } else if (done.file) {
          // A file of the wrong size is never kept, not even for resume.
          done.file.close();
          removeQuietly(done.part);
        }
        settle(done.index, done.plan, status, hasher && finishDigest(hasher), done.offset);
        continue;
      }
      if (frame.type === FRAME_SKIP) {
        const index = decodeIndex(frame.payload);
        const plan = plans[index];
        if (!plan || plan.reply.action !== REPLY_HAVE || plan.status !== undefined) {
          throw new ProtocolError(`Cannot skip entry ${index}: it was not offered as identical`);
        }
        settle(index, plan, RESULT_IDENTICAL);
        continue;
      }
      throw new ProtocolError(`Cannot continue: unexpected ${frameName(frame.type)}`);
    }
  } catch (err) {
    if (isNoSpace(err)) {
      throw new RefusedError(
        current
          ? `receiver has no space left for ${current.plan.entry.name}; ` +
            "the partial file is kept for resume"
          : "receiver has no space left",
        WIRE.NO_SPACE,
      );
    }
    throw err;
  } finally {
    if (current) {
      // An interrupted file stays as NAME.ferry-part for the next run, unless its bytes were bad.
      await current.writing.catch(() => {});
      current.file?.close();
      if (!keepPart) removeQuietly(current.part);
    }
  }
}

/**
 * Opens the partial file for entry `plan`: ours to resume from `offset`, or created anew (a
 * stale one of ours is removed first; O_EXCL then fails on anything that appeared meanwhile).
 */
function openPart(plan: Plan, part: string, offset: number): OwnedFile {
  if (offset > 0) return OwnedFile.openAt(part, offset);
  if (plan.stalePart) removeQuietly(part);
  plan.stalePart = false;
  // The owner's bits are added for the writing; placeFile() sets the final mode within these.
  return OwnedFile.create(part, safeMode(plan.entry) | 0o600);
}

/** Gives a complete partial file its (masked) mode and time, then moves it into place. */
function placeFile(plan: Plan, file: OwnedFile, options: ReceiveOptions): number {
  try {
    file.setMode(safeMode(plan.entry));
    file.setTime(new Date(plan.entry.mtime));
  } finally {
    file.close();
  }
  return moveIntoPlace(file.path, plan.target, options.overwrite ?? false);
}

/**
 * A small file arrives whole and its size is checked in memory, so it needs no .ferry-part: it is created
 * under its final name, with its mode, in one call (two with its time). `createNew` (O_EXCL)
 * keeps this no-clobber: it fails if the name appeared meanwhile. Per-call overhead is what a
 * folder of small files costs, and this is two calls instead of five.
 */
function placeSmallFile(plan: Plan, data: Uint8Array, options: ReceiveOptions): number {
  if (options.overwrite) {
    const file = openPart(plan, plan.target + PART_SUFFIX, 0);
    try {
      file.writeSync(data);
    } catch (err) {
      file.close();
      throw err;
    }
    return placeFile(plan, file, options);
  }
  let file: OwnedFile;
  try {
    file = OwnedFile.create(plan.target, safeMode(plan.entry));
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return WIRE.EXISTS;
    throw err;
  }
  try {
    file.writeSync(data);
    file.setTime(new Date(plan.entry.mtime));
  } catch (err) {
    // Created by us but not completely written (a full disk): no short file under the name.
    file.close();
    removeQuietly(plan.target);
    throw err;
  }
  file.close();
  if (plan.stalePart) removeQuietly(plan.target + PART_SUFFIX);
  return RESULT_OK;
}

/** Permissions from the peer are masked: no setuid/setgid/sticky, never world-writable. */
function safeMode(entry: Entry): number {
  return entry.mode & 0o775;
}

/**
 * Renames `part` to `target`. Without overwrite, a hard link makes the step atomic and
 * no-clobber: it fails if `target` appeared meanwhile, and the .ferry-part is kept.
 */
export function moveIntoPlace(part: string, target: string, overwrite: boolean): number {
  if (overwrite) {
    Deno.renameSync(part, target);
    return RESULT_OK;
  }
  try {
    Deno.linkSync(part, target);
    Deno.removeSync(part);
    return RESULT_OK;
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return WIRE.EXISTS;
    // Some file systems cannot hard-link; check then rename instead.
    if (lstatOrUndefined(target)) return WIRE.EXISTS;
    Deno.renameSync(part, target);
    return RESULT_OK;
  }
}

function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // Already gone.
  }
}

function applyFolderTimes(plans: readonly Plan[]): void {
  // Deepest first, so setting a child's time does not disturb its parent's afterwards.
  // Synchronous, like the file writes: two short syscalls per folder, where a trip through
  // the async thread pool each cost more than the calls (100 folders: 5-9 ms async, 0.8 sync).
  // Only folders this session made: an existing folder keeps its mode and time. Each is set
  // through a descriptor, and only if the name still holds the very folder that was made.
  const dirs = plans.filter((p) =>
    p.entry.kind === KIND_DIR && p.reply.action === REPLY_SEND && p.made !== undefined
  );
  dirs.sort((a, b) => b.entry.name.length - a.entry.name.length);
  for (const plan of dirs) {
    try {
      const mode = (safeMode(plan.entry) | 0o700) & plan.made!.allowed;
      finishFolder(plan.target, plan.made!, mode, new Date(plan.entry.mtime));
    } catch {
      // Not ours to fix: the files are in place, the folder keeps its current time.
    }
  }
}

function report(
  reporter: Reporter,
  id: string,
  plan: Plan,
  status: FileStatus,
  extra: { digest?: Uint8Array; resumed?: number } = {},
): void {
  const code = plan.status ?? plan.reply.reason;
  reporter.fileDone(id, {
    name: plan.entry.name,
    size: plan.entry.size,
    status,
    ...(status === "ok" ? extra : {}),
    ...(status === "refused" || status === "failed"
      ? { reason: WIRE_MESSAGES[code as WireCode] ?? `error ${code}` }
      : {}),
  });
}

function statusName(status: number): FileStatus {
  if (status === RESULT_OK) return "ok";
  if (status === RESULT_IDENTICAL) return "identical";
  return isRefusal(status) ? "refused" : "failed";
}

/** ENOSPC or EDQUOT, however the runtime words it. */
export function isNoSpace(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: string }).code;
  return code === "ENOSPC" || code === "EDQUOT" ||
    /os error (28|122)\b|No space left/.test(err.message);
}
