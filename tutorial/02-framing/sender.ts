// Chapter 2: the sender, with a framed header.
//
//     deno run --allow-net --allow-read sender.ts HOST PORT FILE

import { BUFFER_SIZE, progress, sendHeader, writeAll } from "./protocol.ts";

const host = Deno.args[0] ?? "127.0.0.1";
const port = Number(Deno.args[1] ?? 5001);
const filename = Deno.args[2] ?? "data.csv";
const filesize = (await Deno.stat(filename)).size;

console.log(`[+] Connecting to ${host}:${port}`);
const conn = await Deno.connect({ hostname: host, port });
console.log("[+] Connected.");

// The header now says how long it is, so the receiver can tell where it ends.
await sendHeader(conn, { name: filename.split("/").at(-1)!, size: filesize });

const file = await Deno.open(filename);
const buffer = new Uint8Array(BUFFER_SIZE);
let sent = 0;
while (true) {
  const n = await file.read(buffer);
  if (n === null) break;
  await writeAll(conn, buffer.subarray(0, n));
  sent += n;
  progress("Sending", filename, sent, filesize);
}
console.error();
file.close();
conn.close();
