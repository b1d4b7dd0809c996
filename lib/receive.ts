/**
 * The receiver's half of a transfer, after the handshake, frame by frame: read the offer and
 * answer each entry as it arrives (the policy is lib/plan.ts), then take the files as they stream
 * in (placing them on disk is lib/place.ts), then the verdicts and DONE. Every byte arrives in a
 * record the AEAD authenticated, in order; digests are only for what does not travel: the prefix
 * of a resumed file and a file the receiver already has.
 *
 * Why over 400 lines: the receiver's frames in order (offer, files, verdicts, DONE); the policy
 * (lib/plan.ts) and the disk (lib/place.ts) are already out.
 *
 * @module
 */

import {
  CHUNK_SIZE,
  decodeFileEnd,
  decodeFileStart,
  decodeOffer,
  decodeOfferEnd,
  decodeSkip,
  decodeSmallFiles,
  encodeDone,
  encodeReplies,
  encodeRestart,
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
  FRAME_RESTART,
  FRAME_RESULT,
  FRAME_SKIP,
  FRAME_SMALL_FILES,
  frameName,
  KIND_DIR,
  KIND_FILE,
  KIND_STREAM,
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
import { digestOf, finishDigest, type IHasher, lazyHasher, sameDigest } from "./checksum.ts";
import { decompressPayload } from "./compress.ts";
import {
  ConnectionError,
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
import type { OwnedFile } from "./owned_file.ts";
import {
  finishFolders,
  isNoSpace,
  type MadeFolderEntry,
  openPart,
  PART_SUFFIX,
  placeFile,
  placeSmallFile,
  type ReceiveSummary,
  removePart,
  type Target,
} from "./place.ts";
import { DEFAULT_MAX_FILES, MAX_OFFER_NAME_BYTES, type Plan, Planner } from "./plan.ts";
import { formatBytes } from "./bar.ts";
import type { FileStatus, Reporter } from "./report.ts";
import { SafeRoot } from "./safe_path.ts";

/**
 * Chunks smaller than this are written synchronously: one short syscall beats a trip through
 * the async thread pool, which dominates folders of small files. Larger chunks are written
 * asynchronously while the next frame is opened.
 */
const SYNC_WRITE_MAX = 64 * 1024;

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
  timeoutMs?: number;
  /** `--hash`: digest every file as it is written, for the file-done events. @default {false} */
  hash?: boolean;
  /** Target paths other connections are writing right now (shared by all connections). */
  claims?: Set<string>;
}

/** Runs the receiver's side of one transfer on a sealed channel. */
export async function receiveEntries(
  channel: Channel,
  options: ReceiveOptions,
): Promise<ReceiveSummary> {
  const id = options.id ?? "1";
  const reporter = options.reporter;
  const claims = options.claims ?? new Set<string>();
  channel.setIdleTimeout(options.timeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);

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
    const frames = new FileFrames(channel, plans, options, {
      root,
      planner,
      hasher: fileHasher,
      results,
      id,
    });
    const bytes = await frames.run();

    // 4. Whatever the sender did not send or skip gets its verdict now.
    await settleUnsent(plans, results);
    finishFolders(madeFolders(plans));
    const { failed, exitCode } = tally(plans, (plan) => {
      report(reporter, id, plan, statusName(plan.status!));
    });
    // DONE counts the files written (identical ones were not) and their bytes.
    const written = plans.filter((plan) => plan.status === RESULT_OK).length;
    await channel.send(FRAME_DONE, encodeDone({ files: written, bytes }));
    return { exitCode, files, failed, bytes };
  } finally {
    planner.release();
  }
}

/** Gives every file the sender neither sent nor skipped its verdict, and sends the verdicts. */
async function settleUnsent(plans: Plan[], results: ResultBatch): Promise<void> {
  for (let index = 0; index < plans.length; index++) {
    const plan = plans[index]!;
    if (plan.entry.kind === KIND_DIR || plan.status !== undefined) continue;
    if (plan.reply.action === REPLY_REFUSE) plan.status = plan.reply.reason;
    else if (plan.reply.action === REPLY_HAVE) plan.status = WIRE.EXISTS;
    // Accepted but never sent: a failure, said with a code that is not a RESULT status
    // (1, the protocol-error code, would read as "identical").
    else {
      plan.status = WIRE.CANCELLED;
      plan.note = "the sender did not send it";
    }
    if (plan.reply.action !== REPLY_REFUSE) results.add(index, plan.status);
  }
  await results.flush();
}

/**
 * Counts the files that did not arrive; the worst outcome decides the exit code. Those not
 * reported yet (refused in REPLY, never sent, a HAVE with no SKIP) go to `onUnreported`, once.
 */
function tally(
  plans: Plan[],
  onUnreported: (plan: Plan) => void,
): { failed: number; exitCode: number } {
  let failed = 0;
  let exitCode: number = EXIT.OK;
  for (const plan of plans) {
    if (plan.entry.kind === KIND_DIR) continue;
    if (plan.status === RESULT_OK || plan.status === RESULT_IDENTICAL) continue;
    failed++;
    exitCode = worse(exitCode, exitCodeForResult(plan.status!));
    if (!plan.reported) onUnreported(plan);
  }
  return { failed, exitCode };
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
    // Nothing here reads a file: HAVE and RESUME are compared once the sender sends its digest.
    for (const entry of entries) replies.push(planner.plan(entry).reply);
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

/**
 * Bytes a receiver reads, for digests that turn out different, before it has received any file
 * data in the session (PROTOCOL.md section 9).
 */
export const COMPARE_ALLOWANCE = 16 * 1024 * 1024;

/** Verdicts per RESULT frame, at most, before they are sent. */
const RESULT_BATCH = 4096;

/**
 * Checks that entry `index` may start at `offset`; returns its plan. A RESUME may start at our
 * offset (once) or at 0; after a RESTART only at 0.
 */
function startable(plans: Plan[], index: number, offset: number): Plan {
  const plan = plans[index];
  if (
    !plan || plan.started || plan.entry.kind === KIND_DIR ||
    (plan.reply.action !== REPLY_SEND && plan.reply.action !== REPLY_RESUME)
  ) {
    throw new ProtocolError(`Cannot start file ${index}: it was not accepted`);
  }
  const resuming = plan.reply.action === REPLY_RESUME && !plan.restarted &&
    offset === plan.reply.offset;
  if (offset !== 0 && !resuming) {
    throw new ProtocolError(`Cannot start file ${index} at byte ${offset}`);
  }
  plan.started = true;
  return plan;
}

/** The file being received between FILE and FILE_END. */
interface Current {
  index: number;
  plan: Plan;
  file: OwnedFile | null;
  target: Target;
  written: number;
  offset: number;
  /** The write in flight, if any. */
  writing: Promise<void>;
  /** A resume whose prefix did not match: its bytes are read and dropped until FILE_END. */
  dropping: boolean;
}

/**
 * Takes FILE/DATA/FILE_END, SMALL_FILES and SKIP frames until DONE, one handler per frame type.
 * The state between frames is the file in progress (`#current`), if any. `hasher` (with --hash)
 * digests each file for its file-done event.
 */
class FileFrames {
  #channel: Channel;
  #plans: Plan[];
  #options: ReceiveOptions;
  #root: SafeRoot;
  #planner: Planner;
  #hasher: IHasher | null;
  #results: ResultBatch;
  #id: string;
  #current: Current | null = null;
  /**
   * Bytes we may still read to compare a digest that turns out different: a fixed allowance,
   * plus twice the file bytes received. One that turns out equal costs nothing (its bytes need
   * not travel). Once it is spent, digests are no longer compared (see #compare).
   */
  #compareBudget = COMPARE_ALLOWANCE;
  /** False once the file in progress is known bad: then its partial file is not kept. */
  #keepPart = true;
  /** Bytes all streams may still write: what --max-size leaves after the accepted files. */
  #streamBudget: number;
  #total = 0;

  constructor(
    channel: Channel,
    plans: Plan[],
    options: ReceiveOptions,
    { root, planner, hasher, results, id }: {
      root: SafeRoot;
      planner: Planner;
      hasher: IHasher | null;
      results: ResultBatch;
      id: string;
    },
  ) {
    this.#channel = channel;
    this.#plans = plans;
    this.#options = options;
    this.#root = root;
    this.#planner = planner;
    this.#hasher = hasher;
    this.#results = results;
    this.#id = id;
    this.#streamBudget = options.maxSize ?? Infinity;
    for (const plan of plans) {
      if (plan.entry.kind === KIND_FILE && plan.reply.action !== REPLY_REFUSE) {
        this.#streamBudget -= plan.entry.size;
      }
    }
  }

  /** Handles frames until the sender's DONE; returns the file bytes received. */
  async run(): Promise<number> {
    try {
      while (true) {
        await this.#results.flushIfFull();
        const frame = await this.#channel.recv();
        if (frame.type === FRAME_DONE) {
          if (this.#current) throw new ProtocolError("Cannot finish: a file was left open");
          return this.#total;
        }
        if (frame.type === FRAME_DATA) await this.#data(frame.payload);
        else if (frame.type === FRAME_SMALL_FILES) await this.#smallFiles(frame.payload);
        else if (frame.type === FRAME_FILE) await this.#file(frame.payload);
        else if (frame.type === FRAME_FILE_END) await this.#fileEnd(frame.payload);
        else if (frame.type === FRAME_SKIP) await this.#skip(frame.payload);
        else throw new ProtocolError(`Cannot continue: unexpected ${frameName(frame.type)}`);
      }
    } catch (err) {
      const current = this.#current;
      // The sender gone in the middle of a file: say what is kept and how to go on.
      if (err instanceof ConnectionError && current && this.#keepPart && !this.#options.stdout) {
        const name = current.plan.entry.name;
        throw new ConnectionError(
          `the sender went away during ${name}; ${formatBytes(current.written)} of it kept ` +
            `as ${name}${PART_SUFFIX}: run the same command again to resume`,
          err.wireCode,
          { cause: err },
        );
      }
      if (!isNoSpace(err)) throw err;
      throw new RefusedError(
        current
          ? `receiver has no space left for ${current.plan.entry.name}; ` +
            "the partial file is kept for resume"
          : "receiver has no space left",
        WIRE.NO_SPACE,
      );
    } finally {
      const current = this.#current;
      if (current) {
        // An interrupted file stays as NAME.ferry-part for the next run, unless its bytes were bad.
        await current.writing.catch(() => {});
        current.file?.close();
        if (!this.#keepPart && current.file) removePart(current.target);
      }
    }
  }

  /** Whole small files, each checked against its declared size before any byte is written. */
  async #smallFiles(payload: Uint8Array): Promise<void> {
    if (this.#current) throw new ProtocolError("Cannot start a file: the previous one did not end");
    const body = decompressPayload(payload, MAX_SMALL_FILES_BODY, "SMALL_FILES");
    this.#channel.progress(body.length);
    this.#compareBudget += 2 * body.length;
    const { stdout, overwrite } = this.#options;
    const items = decodeSmallFiles(body);
    if (stdout) {
      // --stdout takes one file: written out as it is.
      for (const small of items) {
        const plan = this.#startSmall(small.index);
        const whole = small.data.length === plan.entry.size;
        if (whole) await writeAll(stdout, small.data);
        this.#endSmall(small, plan, whole ? RESULT_OK : WIRE.INTEGRITY);
      }
      return;
    }
    // Into --dir: one batch, so that the frame's folder is entered once, not once per file.
    this.#root.batch(() => {
      for (const small of items) {
        const plan = this.#startSmall(small.index);
        let status: number = WIRE.INTEGRITY;
        if (small.data.length === plan.entry.size) {
          const place = { overwrite: overwrite ?? false, stale: plan.stalePart ?? false };
          status = placeSmallFile(plan.entry, this.#targetOf(plan), small.data, place);
        }
        this.#endSmall(small, plan, status);
      }
    });
  }

  /** Where the file of `plan` goes: its name under the folder this session checked. */
  #targetOf(plan: Plan): Target {
    return { root: this.#root, name: plan.entry.name };
  }

  #startSmall(index: number): Plan {
    const plan = startable(this.#plans, index, 0);
    this.#options.reporter.fileStart(this.#id, plan.entry.name, plan.entry.size, 0);
    return plan;
  }

  #endSmall(small: { index: number; data: Uint8Array }, plan: Plan, status: number): void {
    this.#total += small.data.length;
    this.#options.reporter.progress(this.#id, small.data.length);
    const digest = this.#hasher && digestOf(this.#hasher, small.data);
    this.#settle(small.index, plan, status, digest);
  }

  /**
   * A file starts, at 0 or at the resume offset the receiver replied. A resume comes with the
   * sender's digest of the bytes before it: if ours differ, we say RESTART at once, drop what
   * follows of this FILE, and take the file again from 0.
   */
  async #file(payload: Uint8Array): Promise<void> {
    if (this.#current) throw new ProtocolError("Cannot start a file: the previous one did not end");
    const start = decodeFileStart(payload);
    const plan = startable(this.#plans, start.index, start.offset);
    if (start.offset > 0 && !(await this.#compare(plan, start.digest!))) {
      plan.started = false;
      plan.restarted = true;
      await this.#channel.send(FRAME_RESTART, encodeRestart(start.index));
      await this.#channel.flush();
      this.#current = {
        index: start.index,
        plan,
        file: null,
        target: this.#targetOf(plan),
        written: start.offset,
        offset: start.offset,
        writing: Promise.resolve(),
        dropping: true,
      };
      return;
    }
    this.#hasher?.init();
    if (start.offset > 0) this.#hasher?.load(plan.prefixState!);
    const target = this.#targetOf(plan);
    const file = this.#options.stdout
      ? null
      : openPart(target, plan.entry, start.offset, plan.stalePart ?? false, plan.identity);
    plan.stalePart = false;
    this.#current = {
      index: start.index,
      plan,
      file,
      target,
      written: start.offset,
      offset: start.offset,
      writing: Promise.resolve(),
      dropping: false,
    };
    this.#options.reporter.fileStart(this.#id, plan.entry.name, plan.entry.size, start.offset);
  }

  /** A chunk of the file in progress: never more than declared (or, for streams, allowed). */
  async #data(payload: Uint8Array): Promise<void> {
    const current = this.#current;
    if (!current) throw new ProtocolError("Cannot take DATA: no file is open");
    const data = decompressPayload(payload, CHUNK_SIZE, "DATA");
    this.#channel.progress(data.length);
    this.#compareBudget += 2 * data.length;
    const entry = current.plan.entry;
    if (entry.kind === KIND_STREAM) {
      // Streams have no declared size: all of them together get what --max-size leaves over.
      this.#streamBudget -= data.length;
      if (this.#streamBudget < 0) {
        this.#keepPart = false;
        throw new RefusedError(`${entry.name}: larger than --max-size`, WIRE.TOO_LARGE);
      }
    } else if (current.written + data.length > entry.size) {
      this.#keepPart = false;
      throw new IntegrityError(`${entry.name}: the sender sent more bytes than it declared`);
    }
    if (current.dropping) {
      current.written += data.length;
      return;
    }
    this.#hasher?.update(data);
    // The write runs while the next frame is opened; at most one write is in flight.
    await current.writing;
    if (current.file && data.length < SYNC_WRITE_MAX) {
      current.file.writeSync(data);
    } else {
      current.writing = writeAll(current.file ?? this.#options.stdout!, data);
      // Its failure (a full disk) is thrown where it is awaited, not as an unhandled rejection.
      current.writing.catch(() => {});
    }
    current.written += data.length;
    this.#total += data.length;
    this.#options.reporter.progress(this.#id, data.length);
  }

  /** The file in progress is complete: checked against its size, then moved into place. */
  async #fileEnd(payload: Uint8Array): Promise<void> {
    const done = this.#current;
    if (!done) throw new ProtocolError("Cannot end a file: none is open");
    const end = decodeFileEnd(payload);
    await done.writing;
    this.#current = null;
    // The rest of a FILE we said RESTART for: it comes again from 0.
    if (done.dropping) return;
    const entry = done.plan.entry;
    const sizeOk = end.size === done.written &&
      (entry.kind === KIND_STREAM || done.written === entry.size);
    let status: number = WIRE.INTEGRITY;
    if (sizeOk) {
      const overwrite = this.#options.overwrite ?? false;
      status = done.file ? placeFile(done.file, entry, done.target, overwrite) : RESULT_OK;
    } else if (done.file) {
      // A file of the wrong size is never kept, not even for resume.
      done.file.close();
      removePart(done.target);
    }
    const digest = this.#hasher && finishDigest(this.#hasher);
    this.#settle(done.index, done.plan, status, digest, done.offset);
    // A sender that resumed waits for this verdict (or a RESTART) before its DONE.
    if (done.offset > 0) await this.#results.flush();
  }

  /**
   * For a file we said HAVE to, the sender sends its digest instead of the file: identical if
   * it is ours, else the file exists (and differs). We only ever say same or different.
   */
  async #skip(payload: Uint8Array): Promise<void> {
    const skip = decodeSkip(payload);
    const plan = this.#plans[skip.index];
    if (!plan || plan.reply.action !== REPLY_HAVE || plan.status !== undefined) {
      throw new ProtocolError(`Cannot skip entry ${skip.index}: it was not offered as identical`);
    }
    const same = await this.#compare(plan, skip.digest);
    // With --hash an identical file gets its line too: the digest is the one we just compared.
    const digest = same && this.#hasher ? plan.digest : undefined;
    this.#settle(skip.index, plan, same ? RESULT_IDENTICAL : WIRE.EXISTS, digest);
  }

  /**
   * Reads our side of a HAVE or RESUME now that the sender has committed to its digest, and
   * says whether the two are the same. The sender digested those bytes too: when they prove
   * equal, that counts toward the minimum rate (they need not travel); when they differ, only
   * within the channel's small allowance, and our read is charged to #compareBudget. With the
   * budget spent, nothing is read: the answer is "different" (exists, or RESTART from 0).
   */
  async #compare(plan: Plan, theirs: Uint8Array): Promise<boolean> {
    if (this.#compareBudget <= 0) return false;
    // The bytes we read are the bytes the sender digested: the whole file, or the prefix.
    const read = await this.#planner.digest(plan);
    if (read === undefined) return false;
    if (sameDigest(theirs, plan.digest!)) {
      this.#channel.progress(read);
      return true;
    }
    this.#channel.unproven(read);
    this.#compareBudget -= read;
    return false;
  }

  #settle(index: number, plan: Plan, status: number, digest?: Uint8Array | null, offset = 0) {
    plan.status = status;
    this.#results.add(index, status);
    report(this.#options.reporter, this.#id, plan, statusName(status), {
      ...(digest ? { digest } : {}),
      resumed: offset,
    });
  }
}

/** The folders this session made, with what finishFolders() needs. */
function madeFolders(plans: readonly Plan[]): MadeFolderEntry[] {
  const folders: MadeFolderEntry[] = [];
  for (const plan of plans) {
    if (plan.entry.kind !== KIND_DIR || plan.reply.action !== REPLY_SEND || !plan.made) continue;
    folders.push({ entry: plan.entry, target: plan.target, made: plan.made });
  }
  return folders;
}

function report(
  reporter: Reporter,
  id: string,
  plan: Plan,
  status: FileStatus,
  extra: { digest?: Uint8Array; resumed?: number } = {},
): void {
  const code = plan.status ?? plan.reply.reason;
  plan.reported = true;
  reporter.fileDone(id, {
    name: plan.entry.name,
    size: plan.entry.size,
    status,
    ...(status === "ok" ? extra : {}),
    ...(status === "identical" && extra.digest ? { digest: extra.digest } : {}),
    ...(status === "refused" || status === "failed"
      ? {
        reason: (WIRE_MESSAGES[code as WireCode] ?? `error ${code}`) +
          (plan.note ? `: ${plan.note}` : ""),
      }
      : {}),
  });
}

function statusName(status: number): FileStatus {
  if (status === RESULT_OK) return "ok";
  if (status === RESULT_IDENTICAL) return "identical";
  return isRefusal(status) ? "refused" : "failed";
}
