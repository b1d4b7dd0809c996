// Chapter 5: one receiver, many senders at once; each connection is served on its own.
//
//     deno run --allow-net --allow-write receiver.ts [HOST] [PORT] [DIR]

import { createHash } from "node:crypto";
import {
  BUFFER_SIZE,
  DIGEST_SIZE,
  PORT,
  readExact,
  readHeader,
  safePath,
  writeAll,
} from "./protocol.ts";

const host = Deno.args[0] ?? "0.0.0.0";
const port = Number(Deno.args[1] ?? PORT);
const dir = Deno.args[2] ?? ".";

/** Receives one sender's files; returns how many were refused or damaged. */
async function receive(conn: Deno.Conn, who: string): Promise<number> {
  let failed = 0;
  while (true) {
    const header = await readHeader(conn);
    if (header === null) throw new Error("the sender closed before the end of the transfer");
    if (header.name === "") return failed;
    const path = safePath(dir, header.name);
    let file: Deno.FsFile | undefined;
    if (typeof path === "string") {
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      // createNew also keeps two senders of one name apart: the second one is refused.
      file = await Deno.open(`${path}.part`, { write: true, createNew: true });
    } else {
      console.error(`[!] ${who}: refused ${JSON.stringify(header.name)}: ${path.refused}`);
      failed++;
    }
    const hash = createHash("sha256");
    try {
      let done = 0;
      while (done < header.size) {
        const chunk = await readExact(conn, Math.min(BUFFER_SIZE, header.size - done));
        if (chunk === null) throw new Error(`closed after ${done} of ${header.size} bytes`);
        hash.update(chunk);
        if (file) await writeAll(file, chunk);
        done += chunk.length;
      }
      const theirs = await readExact(conn, DIGEST_SIZE);
      if (theirs === null) throw new Error("connection closed before the digest");
      if (!file || typeof path !== "string") continue;
      file.close();
      file = undefined;
      if (!hash.digest().equals(theirs)) {
        console.error(`[!] ${who}: ${header.name} does not match its digest; discarded`);
        await Deno.remove(`${path}.part`);
        failed++;
        continue;
      }
      await Deno.link(`${path}.part`, path);
      await Deno.remove(`${path}.part`);
      console.log(`[+] ${who}: ${header.name}, ${header.size} bytes, SHA-256 verified`);
    } finally {
      // A sender that goes away mid-file leaves no half file behind.
      if (file && typeof path === "string") {
        file.close();
        await Deno.remove(`${path}.part`);
      }
    }
  }
}

const server = Deno.listen({ hostname: host, port });
console.log(`[*] Listening as ${host}:${server.addr.port}`);
// No await before the next accept(): a slow or silent sender holds up nobody but itself.
for await (const conn of server) {
  const { hostname, port: from } = conn.remoteAddr as Deno.NetAddr;
  const who = `${hostname}:${from}`;
  console.log(`[+] ${who} is connected.`);
  receive(conn, who)
    .then((failed) => console.log(`[+] ${who}: done${failed ? `, ${failed} file(s) failed` : ""}`))
    .catch((err) => console.error(`[!] ${who}: ${err.message}`))
    .finally(() => conn.close());
}
