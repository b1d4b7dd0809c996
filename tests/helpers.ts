/**
 * Test helpers: run the real sender.ts / receiver.ts as subprocesses on loopback, make files,
 * compare trees. Every wait here is bounded in time.
 *
 * @module
 */

import { join } from "node:path";
import { xxhash128 } from "hash-wasm";
import { readFull } from "../lib/io.ts";
import { concat } from "../lib/spake2.ts";

export const ROOT = new URL("..", import.meta.url).pathname;
export const SENDER = join(ROOT, "sender.ts");
export const RECEIVER = join(ROOT, "receiver.ts");
/** The code phrase most tests use; passed through the environment, never argv. */
/** A code of ferry's own shape, every word in its list (so no typo check stops it). */
export const CODE = "42-absurd-ribbon-castle";

/**
 * The permissions (and V8 flags) each script asks for in its shebang line: the tests run the
 * scripts with exactly those, so a missing permission fails here rather than for a user.
 */
function shebangFlags(script: string): string[] {
  const first = Deno.readTextFileSync(script).split("\n")[0]!;
  return first.split(" ").filter((arg) => arg.startsWith("--allow-") || arg.startsWith("--v8-"));
}

/** Output of a finished process. */
export interface Finished {
  code: number;
  stdout: string;
  stderr: string;
}

/** A running receiver (or listening sender). */
export interface Running {
  port: number;
  /** What the listener printed on stderr up to its listening line (address, code). */
  banner: string;
  process: Deno.ChildProcess;
  /** Waits for exit (bounded) and returns everything it printed. */
  finish(timeoutMs?: number): Promise<Finished>;
  /** Sends SIGTERM and then finishes. */
  stop(): Promise<Finished>;
}

/** Options for the process helpers. */
export interface RunOptions {
  env?: Record<string, string>;
  stdin?: Uint8Array;
  cwd?: string;
  /** @default {60000} */
  timeoutMs?: number;
  /** Run inside this network namespace (`ip netns exec`; needs root). */
  netns?: string;
  /** Run with at most this many open file descriptors (`prlimit`). */
  fdLimit?: number;
  /** Run under this umask (through `sh`). */
  umask?: number;
}

function command(script: string, args: string[], options: RunOptions, stdin: boolean) {
  let deno = [Deno.execPath(), "run", ...shebangFlags(script), script, ...args];
  if (options.fdLimit) deno = ["prlimit", `--nofile=${options.fdLimit}`, "--", ...deno];
  if (options.umask !== undefined) {
    deno = ["sh", "-c", `umask ${options.umask.toString(8)} && exec "$@"`, "sh", ...deno];
  }
  const [program, ...rest] = options.netns ? ["ip", "netns", "exec", options.netns, ...deno] : deno;
  return new Deno.Command(program!, {
    args: rest,
    env: { NO_COLOR: "1", ...options.env },
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return new TextDecoder().decode(concat(...chunks));
}

/** Settles like `promise`, or rejects after `ms` (calling `onTimeout` first). */
export async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
  onTimeout: () => void = () => {},
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Error(`Timed out after ${ms} ms waiting for ${what}`));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads `stream` until `pattern` matches what arrived (bounded in time); returns the match and
 * leaves the reader locked for the caller to go on with.
 */
export async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  pattern: RegExp,
  timeoutMs = 20_000,
): Promise<{ match: RegExpExecArray; text: string }> {
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    const match = pattern.exec(text);
    if (match) return { match, text };
  }
  throw new Error(`Did not see ${pattern} in: ${text}`);
}

/** Runs a script to completion (bounded) and returns its exit code and output. */
export async function run(
  script: string,
  args: string[],
  options: RunOptions = {},
): Promise<Finished> {
  const child = command(script, args, options, options.stdin !== undefined).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(options.stdin).catch(() => {});
    await writer.close().catch(() => {});
  }
  const result = Promise.all([collect(child.stdout), collect(child.stderr), child.status]);
  const [stdout, stderr, status] = await withTimeout(
    result,
    options.timeoutMs ?? 60_000,
    `${script} ${args.join(" ")}`,
    () => child.kill("SIGKILL"),
  );
  return { code: status.code, stdout, stderr };
}

/** Runs sender.ts. */
export function send(args: string[], options: RunOptions = {}): Promise<Finished> {
  return run(SENDER, args, { ...options, env: { FERRY_CODE: CODE, ...options.env } });
}

/**
 * Starts a listener (receiver.ts, or sender.ts --listen) and waits until it prints its port.
 * Pass `--port 0` in args.
 */
export async function listen(
  script: string,
  args: string[],
  options: RunOptions = {},
): Promise<Running> {
  const started = await startUntil(script, args, /listening on \S+:(\d+)/, options);
  return { ...started, port: Number(started.match[1]) };
}

/** Starts a script and waits (bounded) until its stderr matches `pattern`. */
export async function startUntil(
  script: string,
  args: string[],
  pattern: RegExp,
  options: RunOptions = {},
): Promise<Running & { match: RegExpExecArray }> {
  const child = command(script, args, options, false).spawn();
  const stdoutDone = collect(child.stdout);
  const decoder = new TextDecoder();
  let stderr = "";
  const reader = child.stderr.getReader();
  const found = (async () => {
    while (true) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`${script} exited before printing ${pattern}: ${stderr}`);
      stderr += decoder.decode(value, { stream: true });
      const match = pattern.exec(stderr);
      if (match) return match;
    }
  })();
  const match = await withTimeout(
    found,
    options.timeoutMs ?? 30_000,
    `${pattern}`,
    () => child.kill("SIGKILL"),
  );
  const stderrDone = (async () => {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return stderr;
      stderr += decoder.decode(value, { stream: true });
    }
  })();
  const finish = async (timeoutMs = 60_000): Promise<Finished> => {
    const [stdout, err, status] = await withTimeout(
      Promise.all([stdoutDone, stderrDone, child.status]),
      timeoutMs,
      `${script} to exit`,
      () => child.kill("SIGKILL"),
    );
    return { code: status.code, stdout, stderr: err };
  };
  return {
    port: 0,
    match,
    banner: stderr,
    process: child,
    finish,
    stop: async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      return await finish();
    },
  };
}

/**
 * One transfer: receiver.ts `--once` with `receiverArgs`, then sender.ts to it with
 * `senderArgs`; returns what both printed and their exit codes.
 */
export async function sendOnce(
  senderArgs: string[],
  receiverArgs: string[],
  options: RunOptions = {},
): Promise<{ sent: Finished; received: Finished }> {
  const receiver = await startReceiver(["--once", ...receiverArgs]);
  const sent = await send([`127.0.0.1:${receiver.port}`, ...senderArgs], options);
  const received = await receiver.finish();
  return { sent, received };
}

/** Starts receiver.ts with the test code, on a free port. */
export function startReceiver(args: string[], options: RunOptions = {}): Promise<Running> {
  return listen(RECEIVER, ["--port", "0", "--host", "127.0.0.1", ...args], {
    ...options,
    env: { FERRY_CODE: CODE, ...options.env },
  });
}

/** Runs `fn` with two fresh folders (source and target), removed afterwards whatever happens. */
export async function withDirs(
  fn: (src: string, dst: string) => Promise<void> | void,
): Promise<void> {
  const src = await tempDir();
  const dst = await tempDir();
  try {
    await fn(src, dst);
  } finally {
    await Deno.remove(src, { recursive: true });
    await Deno.remove(dst, { recursive: true });
  }
}

/** A fresh temporary folder. */
export function tempDir(): Promise<string> {
  return Deno.makeTempDir({ prefix: "ferry-test-" });
}

/** Deterministic pseudo-random bytes (fast, no crypto needed for test data). */
export function randomBytes(size: number, seed = 1): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Writes `size` pseudo-random bytes to `path` in 1 MiB pieces. */
export async function writeRandomFile(path: string, size: number, seed = 1): Promise<void> {
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  let left = size;
  let n = 0;
  while (left > 0) {
    const piece = randomBytes(Math.min(left, 1 << 20), seed + n++);
    let done = 0;
    while (done < piece.length) done += await file.write(piece.subarray(done));
    left -= piece.length;
  }
}

/** Lists a tree as `relative path -> {kind, size, mode}` for comparison. */
export async function listTree(
  root: string,
): Promise<Map<string, { kind: string; size: number; mode: number }>> {
  const out = new Map<string, { kind: string; size: number; mode: number }>();
  async function walk(dir: string, prefix: string) {
    for await (const item of Deno.readDir(dir)) {
      const path = join(dir, item.name);
      const name = prefix ? `${prefix}/${item.name}` : item.name;
      const info = await Deno.lstat(path);
      const kind = info.isSymlink ? "symlink" : info.isDirectory ? "dir" : "file";
      out.set(name, { kind, size: info.isFile ? info.size : 0, mode: (info.mode ?? 0) & 0o7777 });
      if (info.isDirectory) await walk(path, name);
    }
  }
  await walk(root, "");
  return out;
}

/** True if two files have the same bytes (streamed, bounded memory). */
export async function sameFile(a: string, b: string): Promise<boolean> {
  const [ia, ib] = await Promise.all([Deno.stat(a), Deno.stat(b)]);
  if (ia.size !== ib.size) return false;
  using fa = await Deno.open(a);
  using fb = await Deno.open(b);
  const ba = new Uint8Array(1 << 20);
  const bb = new Uint8Array(1 << 20);
  while (true) {
    const na = await readFull(fa, ba);
    const nb = await readFull(fb, bb);
    if (na !== nb) return false;
    if (na === 0) return true;
    for (let i = 0; i < na; i++) if (ba[i] !== bb[i]) return false;
  }
}

/**
 * `xxh128:HEX` of a whole file, as `--hash` reports it, computed here in one call of hash-wasm
 * (not through ferry's streaming hasher).
 */
export async function xxh128Of(path: string): Promise<string> {
  return `xxh128:${await xxhash128(await Deno.readFile(path))}`;
}

/** Parses every stdout line as JSON (throws on any line that is not). */
export function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

/** True if anything (even a dangling symlink) is at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
