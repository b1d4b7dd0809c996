// Chapter 2's wire: a header that says how long it is, then exactly the bytes it announced.
//
//     [4 bytes: header length, big-endian] [header: JSON {"name", "size"}] [size bytes of file]
//
// TCP delivers a stream of bytes, not messages: one read may return half a header, or a header
// and the first bytes of the file glued together. So we never "read once and hope"; we read
// exactly as many bytes as the length says.

export const PORT = 5001;
/** Bytes read from the file, or the socket, at a time. */
export const BUFFER_SIZE = 4096;
/** A header longer than this is refused before we allocate memory for it. */
const MAX_HEADER = 64 * 1024;

export interface Header {
  name: string;
  size: number;
}

/** Writes all of `bytes` (a socket or file may accept only part of a write). */
export async function writeAll(
  to: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await to.write(bytes.subarray(at));
}

/** Reads exactly `n` bytes; null if the peer closed before the first one. */
export async function readExact(conn: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const buffer = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await conn.read(buffer.subarray(got));
    if (r === null) {
      if (got === 0) return null;
      throw new Error(`connection closed after ${got} of ${n} bytes`);
    }
    got += r;
  }
  return buffer;
}

export async function sendHeader(conn: Deno.Conn, header: Header): Promise<void> {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const frame = new Uint8Array(4 + json.length);
  new DataView(frame.buffer).setUint32(0, json.length);
  frame.set(json, 4);
  await writeAll(conn, frame);
}

export async function readHeader(conn: Deno.Conn): Promise<Header | null> {
  const prefix = await readExact(conn, 4);
  if (prefix === null) return null;
  const length = new DataView(prefix.buffer).getUint32(0);
  if (length > MAX_HEADER) throw new Error(`header of ${length} bytes is too long`);
  const header = JSON.parse(new TextDecoder().decode((await readExact(conn, length))!));
  if (typeof header.name !== "string" || !Number.isSafeInteger(header.size) || header.size < 0) {
    throw new Error("header is not {name, size}");
  }
  return header;
}

/** A one-line progress display on stderr. */
export function progress(verb: string, name: string, done: number, size: number): void {
  const percent = size > 0 ? Math.floor((done / size) * 100) : 100;
  Deno.stderr.writeSync(new TextEncoder().encode(`\r${verb} ${name}: ${percent}%`));
}
