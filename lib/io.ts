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
export function writeAllSync(file: Deno.FsFile, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += file.writeSync(data.subarray(done));
}

/** Reads a file synchronously until `buf` is full or EOF; returns the bytes read. */
export function readFullSync(file: Deno.FsFile, buf: Uint8Array): number {
  let filled = 0;
  while (filled < buf.length) {
    const got = file.readSync(buf.subarray(filled));
    if (got === null) break;
    filled += got;
  }
  return filled;
}
