/**
 * Small I/O loops that Deno leaves to us: read until full, write until done.
 *
 * @module
 */

/** Anything with Deno's read(): files, connections, stdin. */
export interface Reader {
  read(p: Uint8Array): Promise<number | null>;
}

/** Anything with Deno's write(): files, connections, stdout. */
export interface Writer {
  write(p: Uint8Array): Promise<number>;
}

/** Reads until `buf` is full or EOF; returns the bytes read. */
export async function readFull(reader: Reader, buf: Uint8Array): Promise<number> {
  let filled = 0;
  while (filled < buf.length) {
    const got = await reader.read(buf.subarray(filled));
    if (got === null) break;
    filled += got;
  }
  return filled;
}

/** Writes all of `data` (a single write may take only part of it). */
export async function writeAll(writer: Writer, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.length) done += await writer.write(data.subarray(done));
}

/** Writes all of `data` to a file synchronously. */
export function writeAllSync(file: { writeSync(p: Uint8Array): number }, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += file.writeSync(data.subarray(done));
}

/** Reads a file synchronously until `buf` is full or EOF; returns the bytes read. */
export function readFullSync(
  file: { readSync(p: Uint8Array): number | null },
  buf: Uint8Array,
): number {
  let filled = 0;
  while (filled < buf.length) {
    const got = file.readSync(buf.subarray(filled));
    if (got === null) break;
    filled += got;
  }
  return filled;
}

/*
 * Lines for stdout (JSON events, --hash lines) go out in batches: 10,000 small files make 20,000
 * events, and one write each cost ~12% of such a transfer. What is pending is written when the
 * event loop next gets to its timers, once 64 KiB are pending, and before the process exits
 * ({@linkcode flushOutput}).
 */
let pendingOut = "";
let outTimer: ReturnType<typeof setTimeout> | undefined;
/** Set once stdout is gone (`--json | head -1`): the transfer goes on, its events are dropped. */
let stdoutGone = false;

/** Queues one line (with its newline) for stdout. */
export function writeOut(line: string): void {
  if (stdoutGone) return;
  pendingOut += line;
  if (pendingOut.length >= 64 * 1024) flushOutput();
  else outTimer ??= setTimeout(flushOutput, 0);
}

/** Writes whatever stdout lines are pending. Call it before anything else writes to stdout. */
export function flushOutput(): void {
  clearTimeout(outTimer);
  outTimer = undefined;
  if (pendingOut === "") return;
  const bytes = new TextEncoder().encode(pendingOut);
  pendingOut = "";
  try {
    writeAllSync(Deno.stdout, bytes);
  } catch {
    stdoutGone = true;
  }
}
