// Chapter 6: many senders at once; a NAME.part left by an interrupted transfer is resumed.
//
//     deno run --allow-net --allow-read --allow-write receiver.ts [HOST] [PORT] [DIR]

import { createHash } from "node:crypto";
import {
  BUFFER_SIZE,
  DIGEST_SIZE,
  PORT,
  readExact,
  readHeader,
  REFUSED,
  safePath,
  sendOffset,
  writeAll,
} from "./protocol.ts";

const host = Deno.args[0] ?? "0.0.0.0";
const port = Number(Deno.args[1] ?? PORT);
const dir = Deno.args[2] ?? ".";
/** Files being received right now: a second sender of the same name is refused. */
const busy = new Set<string>();

/** Receives one file into `path`.part, resuming it; true if it is now in place, verified. */
async function receiveFile(conn: Deno.Conn, path: string, size: number): Promise<boolean> {
  const part = `${path}.part`;
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  const file = await Deno.open(part, { read: true, write: true, create: true });
  try {
    // Keep what an earlier, interrupted transfer wrote; it is hashed along with the rest.
    const hash = createHash("sha256");
    let have = 0;
    const buffer = new Uint8Array(BUFFER_SIZE);
    for (let n; have < size && (n = await file.read(buffer)) !== null; have += n) {
      hash.update(buffer.subarray(0, Math.min(n, size - have)));
    }
    have = Math.min(have, size);
    await file.truncate(have);
    await file.seek(have, Deno.SeekMode.Start);
    await sendOffset(conn, BigInt(have));
    if (have > 0) console.log(`[+] ${path}: resuming at byte ${have}`);
    for (let done = have; done < size;) {
      const chunk = await readExact(conn, Math.min(BUFFER_SIZE, size - done));
      if (chunk === null) throw new Error(`closed after ${done} of ${size} bytes; part kept`);
      hash.update(chunk);
      await writeAll(file, chunk);
      done += chunk.length;
    }
    const theirs = await readExact(conn, DIGEST_SIZE);
    if (theirs === null) throw new Error("connection closed before the digest; part kept");
    if (!hash.digest().equals(theirs)) {
      // The kept bytes, or the new ones, were not the sender's file: start again next time.
      await Deno.remove(part);
      return false;
    }
    await Deno.link(part, path);
    await Deno.remove(part);
    return true;
  } finally {
    file.close();
  }
}

/** Receives one sender's files; returns how many were refused or damaged. */
async function receive(conn: Deno.Conn, who: string): Promise<number> {
  let failed = 0;
  while (true) {
    const header = await readHeader(conn);
    if (header === null) throw new Error("the sender closed before the end of the transfer");
    if (header.name === "") return failed;
    const path = safePath(dir, header.name);
    const refusal = typeof path !== "string"
      ? path.refused
      : busy.has(path)
      ? "another sender is sending it"
      : await Deno.lstat(path).then(() => "it exists", () => undefined);
    if (refusal !== undefined || typeof path !== "string") {
      console.error(`[!] ${who}: refused ${JSON.stringify(header.name)}: ${refusal}`);
      await sendOffset(conn, REFUSED);
      failed++;
      continue;
    }
    busy.add(path);
    const ok = await receiveFile(conn, path, header.size).finally(() => busy.delete(path));
    if (ok) console.log(`[+] ${who}: ${header.name}, ${header.size} bytes, SHA-256 verified`);
    else console.error(`[!] ${who}: ${header.name} does not match its digest; discarded`);
    if (!ok) failed++;
  }
}

const server = Deno.listen({ hostname: host, port });
console.log(`[*] Listening as ${host}:${server.addr.port}`);
for await (const conn of server) {
  const { hostname, port: from } = conn.remoteAddr as Deno.NetAddr;
  const who = `${hostname}:${from}`;
  console.log(`[+] ${who} is connected.`);
  receive(conn, who)
    .then((failed) => console.log(`[+] ${who}: done${failed ? `, ${failed} file(s) failed` : ""}`))
    .catch((err) => console.error(`[!] ${who}: ${err.message}`))
    .finally(() => conn.close());
}
