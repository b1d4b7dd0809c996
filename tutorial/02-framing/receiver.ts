// Chapter 2: the receiver reads exactly the header, then exactly `size` bytes.
//
//     deno run --allow-net --allow-write receiver.ts [HOST] [PORT] [DIR]

import { BUFFER_SIZE, PORT, progress, readExact, readHeader, writeAll } from "./protocol.ts";

const host = Deno.args[0] ?? "0.0.0.0";
const port = Number(Deno.args[1] ?? PORT);
const dir = Deno.args[2] ?? ".";

const server = Deno.listen({ hostname: host, port });
console.log(`[*] Listening as ${host}:${server.addr.port}`);
const conn = await server.accept();
console.log(`[+] ${JSON.stringify(conn.remoteAddr)} is connected.`);

const header = await readHeader(conn);
if (header === null) throw new Error("the sender closed before sending a header");
const filename = header.name.split("/").at(-1)!;
const path = `${dir}/${filename}`;

const file = await Deno.open(path, { write: true, create: true, truncate: true });
let done = 0;
try {
  // Exactly `size` bytes: a connection that ends early is an error, not a shorter file.
  while (done < header.size) {
    const chunk = await readExact(conn, Math.min(BUFFER_SIZE, header.size - done));
    if (chunk === null) throw new Error(`connection closed after ${done} of ${header.size} bytes`);
    await writeAll(file, chunk);
    done += chunk.length;
    progress("Receiving", filename, done, header.size);
  }
  console.error();
  console.log(`[+] ${filename}: ${done} bytes`);
} catch (err) {
  console.error(`\n[!] ${(err as Error).message}; ${filename} removed`);
  file.close();
  await Deno.remove(path);
  Deno.exit(1);
}
file.close();
conn.close();
server.close();
