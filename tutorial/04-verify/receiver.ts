// Chapter 4: receive files into NAME.part, and put them in place only if their SHA-256 matches.
//
//     deno run --allow-net --allow-write receiver.ts [HOST] [PORT] [DIR]

import { createHash } from "node:crypto";
import {
  BUFFER_SIZE,
  DIGEST_SIZE,
  PORT,
  progress,
  readExact,
  readHeader,
  safePath,
  writeAll,
} from "./protocol.ts";

const host = Deno.args[0] ?? "0.0.0.0";
const port = Number(Deno.args[1] ?? PORT);
const dir = Deno.args[2] ?? ".";

const server = Deno.listen({ hostname: host, port });
console.log(`[*] Listening as ${host}:${server.addr.port}`);
const conn = await server.accept();
console.log(`[+] ${JSON.stringify(conn.remoteAddr)} is connected.`);

let failed = 0;
while (true) {
  const header = await readHeader(conn);
  if (header === null) throw new Error("the sender closed before the end of the transfer");
  if (header.name === "") break;
  const path = safePath(dir, header.name);
  let file: Deno.FsFile | undefined;
  if (typeof path === "string") {
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    // Bytes go to NAME.part: until the digest matches, they are not the file.
    file = await Deno.open(`${path}.part`, { write: true, createNew: true });
  } else {
    console.error(`[!] refused ${JSON.stringify(header.name)}: ${path.refused}`);
    failed++;
  }
  const hash = createHash("sha256");
  let done = 0;
  while (done < header.size) {
    const chunk = await readExact(conn, Math.min(BUFFER_SIZE, header.size - done));
    if (chunk === null) throw new Error(`connection closed after ${done} of ${header.size} bytes`);
    hash.update(chunk);
    if (file) await writeAll(file, chunk);
    done += chunk.length;
    if (file) progress("Receiving", header.name, done, header.size);
  }
  const theirs = await readExact(conn, DIGEST_SIZE);
  if (theirs === null) throw new Error("connection closed before the digest");
  if (!file || typeof path !== "string") continue;
  file.close();
  console.error();
  if (!hash.digest().equals(theirs)) {
    console.error(`[!] ${header.name}: the bytes do not match the sender's digest; discarded`);
    await Deno.remove(`${path}.part`);
    failed++;
    continue;
  }
  // link() fails if NAME exists, so a file already there is never replaced.
  await Deno.link(`${path}.part`, path);
  await Deno.remove(`${path}.part`);
  console.log(`[+] ${header.name}: ${header.size} bytes, SHA-256 verified`);
}
conn.close();
server.close();
if (failed > 0) {
  console.error(`[!] ${failed} file(s) refused or damaged`);
  Deno.exit(1);
}
