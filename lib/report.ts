/**
 * What the user sees, in one of four modes: tqdm-like progress bars on stderr on a terminal
 * (lib/report_bars.ts), one JSON event per line on stdout with `--json` (lib/report_json.ts),
 * plain lines on stderr otherwise, and nothing but errors with `--quiet`. The {@linkcode
 * Reporter} keeps one set of counts per transfer, which every mode reads, and hands each event to
 * the mode in use.
 *
 * Why over 400 lines: the counts every mode reads, and the words of every line a person reads,
 * are kept in one place; the modes' own machinery is in lib/report_bars.ts and lib/report_json.ts.
 *
 * @module
 */

import { DEFAULT_PORT } from "../protocol.ts";
import { formatBytes, renderBar } from "./bar.ts";
import { DIGEST_NAME, digestHex } from "./checksum.ts";
import { escapeForTerminal, exitCodeOf, formatError } from "./errors.ts";
import { writeOut } from "./io.ts";
import { BarScreen, writeErr } from "./report_bars.ts";
import { JsonEvents } from "./report_json.ts";
import { formatHost, isLoopback, type Link } from "./transport.ts";

/** Options for {@linkcode Reporter}. */
export interface ReporterOptions {
  /** One JSON object per line on stdout. @default {false} */
  json?: boolean;
  /** Errors only. @default {false} */
  quiet?: boolean;
  /** Draw bars; defaults to whether stderr is a terminal. */
  tty?: boolean;
  /**
   * Where `--hash` lines go without --json (`HEX  NAME`, as `xxhsum -H2` prints them, so that
   * `xxhsum -c` can check them): stdout, unless that carries the file. @default {"stdout"}
   */
  hashLines?: "stdout" | "stderr";
}

/** Per-file outcome, as in the `file-done` event. */
export type FileStatus = "ok" | "identical" | "refused" | "failed";

interface Line {
  name: string;
  size: number;
  bytes: number;
  /** Bytes that were already there when the file started (resumed). */
  resumed: number;
  started: number;
}

interface Transfer {
  resumed: number;
  files: number;
  doneFiles: number;
  /**
   * Files whose bytes are all through, still waiting for their verdict (a sender hears it
   * later): counted with the done ones, so the count keeps pace with the bytes.
   */
  through: Set<string>;
  /** Files that were already there, identical; files the receiver refused. */
  identical: number;
  refused: number;
  /** The label of the one file of a single-file transfer, kept once it has ended. */
  single?: string;
  totalSize: number;
  totalBytes: number;
  started: number;
  current?: Line;
}

/** Reporters that draw bars: Ctrl-C takes their bars off the screen before ferry exits. */
const drawing = new Set<Reporter>();

/**
 * Clears every reporter's bars, once the process is about to end (see lib/cli.ts runMain);
 * returns whether any were on the screen.
 */
export function clearAllBars(): boolean {
  let cleared = false;
  for (const reporter of drawing) cleared = reporter.clearBars() || cleared;
  return cleared;
}

/** Files done, or through and waiting for their verdict. */
function filesThrough(t: Transfer): number {
  return Math.min(t.files, t.doneFiles + t.through.size);
}

/** A file's name for its bar, escaped, marked when it resumed. */
function nameLabel(line: Line): string {
  return escapeForTerminal(line.name) + (line.resumed > 0 ? " (resumed)" : "");
}

/**
 * The last line of a transfer, in words: `12 files, 1.10 GiB in 3.1 s, 362 MiB/s, 6 already
 * there (identical), 2 refused`. Files already there are not counted as moved.
 */
function summaryWords(
  fields: { files: number; bytes: number; failed: number },
  t: Transfer | undefined,
  seconds: number,
  resumed: number,
): string {
  const identical = t?.identical ?? 0;
  const refused = Math.min(t?.refused ?? 0, fields.failed);
  const moved = Math.max(0, fields.files - identical);
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const parts: string[] = [];
  if (moved > 0 || identical === 0) {
    const rate = seconds > 0 && fields.bytes > 0
      ? `, ${formatBytes(fields.bytes / seconds)}/s`
      : "";
    // Under a tenth of a second, "0.0 s" would say nothing: milliseconds then.
    const took = seconds < 0.1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(1)} s`;
    parts.push(`${plural(moved, "file")}, ${formatBytes(fields.bytes)} in ${took}${rate}`);
  }
  if (resumed > 0) parts.push(`${formatBytes(resumed)} resumed`);
  if (identical > 0) parts.push(`${identical} already there (identical)`);
  if (refused > 0) parts.push(`${refused} refused`);
  if (fields.failed - refused > 0) parts.push(`${fields.failed - refused} failed`);
  return parts.join(", ");
}

/** Reports events to the user in the chosen style. One instance per process. */
export class Reporter {
  readonly json: boolean;
  readonly quiet: boolean;
  readonly tty: boolean;
  readonly hashLines: "stdout" | "stderr";
  #transfers = new Map<string, Transfer>();
  /** Who is at the other end of each connection, to tell their bars apart. */
  #peers = new Map<string, string>();
  /** The terminal mode's bars, when stderr is a terminal (and neither --json nor --quiet). */
  #screen: BarScreen | undefined;
  /** The --json mode's events. */
  #events: JsonEvents | undefined;

  constructor(options: ReporterOptions = {}) {
    this.json = options.json ?? false;
    this.quiet = options.quiet ?? false;
    this.tty = !this.json && !this.quiet && (options.tty ?? Deno.stderr.isTerminal());
    this.hashLines = options.hashLines ?? "stdout";
    if (this.json) this.#events = new JsonEvents();
    if (this.tty) {
      this.#screen = new BarScreen((columns) => this.#allBars(columns));
      drawing.add(this);
    }
  }

  /**
   * Takes the bars off the screen for good (Ctrl-C: what they said is out of date); returns
   * whether there were any.
   */
  clearBars(): boolean {
    const drawn = this.#screen?.drawn ?? false;
    this.#screen?.stop();
    this.#transfers.clear();
    return drawn;
  }

  /** Emits a JSON event line (only with --json). Field names are part of the CLI contract. */
  event(name: string, fields: Record<string, unknown> = {}): void {
    this.#events?.event(name, fields);
  }

  /**
   * We are listening: a `listening` event, and the address on stderr even with --quiet. A code
   * we made up is shown there too (the other side needs it); one we were given never is. Then
   * what to run on the other machine, with the address it can reach us at: `peers` is the
   * script the other side runs ("sender.ts" or "receiver.ts --connect").
   */
  listening(
    host: string,
    waiting: {
      port: number;
      also: string[];
      tell: string[];
      reachAt: string | undefined;
      otherAddresses?: string[];
    },
    generatedCode: string | undefined,
    peers: "sender.ts" | "sender.ts --legacy" | "receiver.ts --connect",
    into?: string,
  ): void {
    const { port, also, tell, reachAt } = waiting;
    this.event("listening", { host, port });
    const address = formatHost(host, port);
    // A receiver says where the files go (unless it just said it made the folder).
    if (into !== undefined) this.info(`ferry: receiving into ${into}`);
    this.notice(
      generatedCode === undefined
        ? `ferry: listening on ${address}`
        : `ferry: listening on ${address} — code ${generatedCode}`,
    );
    if (also.length > 0) this.info(`ferry: also ${also.join(", and ")}`);
    // Without an address to give, the other side finds us on the LAN or at the relay.
    const bare = reachAt?.includes(":") ? `[${reachAt}]` : reachAt;
    const where = reachAt === undefined
      ? ""
      : ` ${port === DEFAULT_PORT ? bare : formatHost(reachAt, port)}`;
    // The tutorial's wire has no code; the other ways in need their flags.
    const code = peers === "sender.ts --legacy"
      ? ""
      : `FERRY_CODE=${generatedCode ?? "<the code>"} `;
    const what = peers === "receiver.ts --connect" ? "" : " FILE...";
    const flags = tell.map((flag) => ` ${flag}`).join("");
    const here = reachAt !== undefined && isLoopback(reachAt);
    const on = here ? "in another terminal" : "on the other computer";
    this.info(`ferry: ${on}, run: ${code}./${peers}${where}${flags}${what}`);
    const others = waiting.otherAddresses ?? [];
    if (others.length > 0) this.info(`ferry: this machine is also at ${others.join(", ")}`);
  }

  /**
   * A peer is connected: a `connected` event with the way it came (`direct`, `lan`, `relay`),
   * and a line saying so unless it is the plain direct way nobody needs to be told of.
   */
  connected(link: Link, id: string, say = link.path !== "direct"): void {
    this.event("connected", { conn: id, peer: link.peer, path: link.path });
    this.#peers.set(id, link.peer);
    if (!say) return;
    // A relayed link's peer is the relay ("relay 10.0.0.9:4001"): connected through it.
    this.info(
      link.path === "relay"
        ? `ferry: connected through the ${link.peer}`
        : `ferry: connected to ${link.peer} (${
          link.path === "lan" ? "found on the LAN" : "directly"
        })`,
    );
  }

  /** The code to pass on (magic-wormhole's way): what the other person runs. Always shown. */
  code(command: string): void {
    this.notice(`ferry: on the other computer, run: ${command}`);
  }

  /** A line of human text on stderr (not with --quiet or --json). */
  info(text: string): void {
    if (this.quiet || this.json) return;
    this.#say(text);
  }

  /** A line on stderr even with --quiet: the listening address and code must always be seen. */
  notice(text: string): void {
    this.#say(text);
  }

  /** A warning on stderr (not with --quiet). */
  warn(text: string): void {
    if (this.quiet) return;
    this.#say(`ferry: warning: ${escapeForTerminal(text)}`);
  }

  /** A session of a waiting side failed: its one line, without any of `secrets`. */
  sessionFailed(error: unknown, secrets: readonly string[]): void {
    this.error(formatError(error, secrets), exitCodeOf(error));
  }

  /** An error line on stderr, always; with --json also an `error` event. */
  error(line: string, exitCode: number): void {
    this.event("error", { message: line.replace(/^ferry: /, ""), exit_code: exitCode });
    this.#say(line);
  }

  /** A transfer (one connection) begins: `files` files, `size` bytes in all. */
  start(id: string, files: number, size: number): void {
    this.#transfers.set(id, {
      resumed: 0,
      files,
      doneFiles: 0,
      through: new Set(),
      identical: 0,
      refused: 0,
      totalSize: size,
      totalBytes: 0,
      started: performance.now(),
    });
    this.event("started", { conn: id, files, bytes: size });
  }

  fileStart(id: string, name: string, size: number, offset: number): void {
    const t = this.#transfers.get(id);
    if (t) {
      if (t.current && t.current.bytes >= t.current.size) t.through.add(t.current.name);
      t.current = { name, size, bytes: offset, resumed: offset, started: performance.now() };
      if (t.files === 1) t.single = nameLabel(t.current);
      t.totalBytes += offset;
      t.resumed += offset;
    }
    this.event("file-start", { conn: id, name, size, offset });
    this.#draw(false);
  }

  /**
   * A resumed file is sent again from 0 (its prefix was not the receiver's): the `counted`
   * bytes already shown for it, `resumed` of them resumed, no longer count.
   */
  fileRestart(id: string, name: string, counted: number, resumed: number): void {
    const t = this.#transfers.get(id);
    if (!t) return;
    t.through.delete(name);
    t.totalBytes -= counted;
    t.resumed -= resumed;
  }

  /** `delta` more bytes of the current file went through. */
  progress(id: string, delta: number): void {
    const t = this.#transfers.get(id);
    if (!t?.current) return;
    t.current.bytes += delta;
    t.totalBytes += delta;
    if (t.current.bytes >= t.current.size) t.through.add(t.current.name);
    this.#events?.progress(id, {
      name: t.current.name,
      bytes: t.current.bytes,
      size: t.current.size,
      total_bytes: t.totalBytes,
      total_size: t.totalSize,
    });
    this.#draw(false);
  }

  fileDone(id: string, fields: {
    name: string;
    size: number;
    status: FileStatus;
    /** The file's digest (with --hash); turned into text only when printed. */
    digest?: Uint8Array;
    /**
     * The path for the `--hash` line, where it differs from `name`: the sender's path as it
     * read it, so that `xxhsum -c` checks the list where the sender ran. @default {name}
     */
    hashPath?: string;
    resumed?: number;
    reason?: string;
  }): void {
    const t = this.#transfers.get(id);
    if (t) {
      t.through.delete(fields.name);
      t.doneFiles++;
      if (fields.status === "identical") t.identical++;
      if (fields.status === "refused") t.refused++;
      if (t.current?.name === fields.name) delete t.current;
      if (fields.status !== "ok") t.totalSize -= Math.max(0, fields.size - (fields.resumed ?? 0));
    }
    if (this.json) {
      const { digest, hashPath: _, ...rest } = fields;
      this.event("file-done", {
        conn: id,
        ...rest,
        ...(digest ? { hash: `${DIGEST_NAME}:${digestHex(digest)}` } : {}),
      });
    } else if (fields.digest) {
      this.#screen?.clear();
      const path = fields.hashPath ?? fields.name;
      const line = `${digestHex(fields.digest)}  ${escapeForTerminal(path)}\n`;
      if (this.hashLines === "stdout") writeOut(line);
      else writeErr(line);
    }
    if (fields.status === "refused" || fields.status === "failed") {
      this.warn(`${fields.name}: ${fields.status}${fields.reason ? ` (${fields.reason})` : ""}`);
    }
    this.#draw(false);
  }

  /** A transfer that failed before its end: its bars go (its error line says why). */
  abandon(id: string): void {
    this.#events?.forget(id);
    this.#peers.delete(id);
    if (this.#transfers.delete(id)) this.#draw(true);
  }

  /** The transfer ended: a `done` event, and a summary line unless --quiet. */
  finish(id: string, fields: {
    files: number;
    bytes: number;
    failed: number;
    exitCode: number;
    /** Bytes that crossed the socket for this transfer (after compression and sealing). */
    wireBytes?: number;
  }): void {
    const t = this.#transfers.get(id);
    const seconds = t ? (performance.now() - t.started) / 1000 : 0;
    // This transfer's last bar stays on the screen, above the bars still running.
    if (t) this.#screen?.keep((columns) => this.#barLines(t, columns));
    this.#transfers.delete(id);
    this.#peers.delete(id);
    this.#events?.forget(id);
    const resumed = t?.resumed ?? 0;
    this.event("done", {
      conn: id,
      files: fields.files,
      bytes: fields.bytes,
      failed: fields.failed,
      seconds: Number(seconds.toFixed(3)),
      wire_bytes: fields.wireBytes ?? fields.bytes,
      resumed_bytes: resumed,
      exit_code: fields.exitCode,
    });
    this.info(`ferry: ${summaryWords(fields, t, seconds, resumed)}`);
  }

  /** A line of text on stderr: the bars, if any, step aside for it. */
  #say(text: string): void {
    if (this.#screen) this.#screen.say(text);
    else writeErr(`${text}\n`);
  }

  /** The bar lines of one transfer: the current file (when there are several), then the total. */
  #barLines(t: Transfer, columns: number, peer?: string): string[] {
    const now = performance.now();
    const lines: string[] = [];
    const seconds = (now - t.started) / 1000;
    if (t.current && t.files > 1) {
      const c = t.current;
      const cs = (now - c.started) / 1000;
      lines.push(renderBar(nameLabel(c), c.bytes, c.size, cs, c.resumed, columns));
    }
    const label = (peer ? `${peer} ` : "") +
      (t.files > 1 || t.single === undefined
        ? `total ${filesThrough(t)}/${t.files} files`
        : t.single);
    lines.push(renderBar(label, t.totalBytes, t.totalSize, seconds, t.resumed, columns));
    return lines;
  }

  #draw(force: boolean): void {
    this.#screen?.draw(force);
  }

  /** Every transfer's bars; with several at once, each total bar says whose it is. */
  #allBars(columns: number): string[] {
    const many = this.#transfers.size > 1;
    return [...this.#transfers].flatMap(([id, t]) =>
      this.#barLines(t, columns, many ? this.#peers.get(id) : undefined)
    );
  }
}
