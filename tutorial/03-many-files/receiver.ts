// Chapter 3: receive files and folders; a name that points outside DIR is refused.
//
//     deno run --allow-net --allow-write receiver.ts [HOST] [PORT] [DIR]

import {
  BUFFER_SIZE,
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

let refused = 0;
while (true) {
  const header = await readHeader(conn);
  if (header === null) throw new Error("the sender closed before the end of the transfer");
  if (header.name === "") break;
  const path = safePath(dir, header.name);
  // A refused file's bytes are still on their way: read them and throw them away.
  let file: Deno.FsFile | undefined;
  if (typeof path === "string") {
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    // createNew: never replace a file that is already there.
    file = await Deno.open(path, { write: true, createNew: true });
  } else {
    console.error(`[!] refused ${JSON.stringify(header.name)}: ${path.refused}`);
    refused++;
  }
  let done = 0;
  while (done < header.size) {
    const chunk = await readExact(conn, Math.min(BUFFER_SIZE, header.size - done));
    if (chunk === null) throw new Error(`connection closed after ${done} of ${header.size} bytes`);
    if (file) await writeAll(file, chunk);
    done += chunk.length;
    if (file) progress("Receiving", header.name, done, header.size);
  }
  if (file) {
    file.close();
    console.error();
  }
}
conn.close();
server.close();
if (refused > 0) {
  console.error(`[!] ${refused} file(s) refused`);
  Deno.exit(1);
}
