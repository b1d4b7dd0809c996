// Chapter 4's wire: chapter 3's, with each file's SHA-256 after its bytes.
//
//     [4 bytes: header length] [header: JSON {"name", "size"}] [size bytes] [32 bytes: SHA-256]
//     [4 bytes: header length] [header: {"name": "", "size": 0}]                the end
//
// "name" is a path relative to what was sent, with "/" between folders: "photos/2024/a.jpg".
// It comes from the network, so the receiver trusts it no more than any other byte: see
// safePath() below.

export const PORT = 5001;
/** Bytes in a SHA-256 digest. */
export const DIGEST_SIZE = 32;
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

/** The header that ends a transfer: without it, a connection that drops between two files
 * would look like a transfer that ended. */
export const END: Header = { name: "", size: 0 };

/**
 * Where `name` goes under `dir`, or why it may not go anywhere. A name from the network could be
 * "../../.ssh/authorized_keys" or "/etc/passwd": every part must be an ordinary name.
 */
export function safePath(dir: string, name: string): string | { refused: string } {
  if (name.startsWith("/")) return { refused: "an absolute path" };
  if (name.includes("\\") || name.includes("\0")) return { refused: "a backslash or NUL" };
  for (const part of name.split("/")) {
    if (part === "" || part === "." || part === "..") return { refused: `a "${part}" part` };
  }
  return `${dir}/${name}`;
}

/** A one-line progress display on stderr. */
export function progress(verb: string, name: string, done: number, size: number): void {
  const percent = size > 0 ? Math.floor((done / size) * 100) : 100;
  Deno.stderr.writeSync(new TextEncoder().encode(`\r${verb} ${name}: ${percent}%`));
}
