// Chapter 5: the sender is chapter 4's; many of them may send to one receiver at once.
//
//     deno run --allow-net --allow-read sender.ts HOST PORT PATH...

import { createHash } from "node:crypto";
import { BUFFER_SIZE, END, progress, sendHeader, writeAll } from "./protocol.ts";

const host = Deno.args[0] ?? "127.0.0.1";
const port = Number(Deno.args[1] ?? 5001);
const paths = Deno.args.slice(2);

/** Every file under `path`, with the name it gets on the other side ("folder/sub/file"). */
async function* walk(path: string, name: string): AsyncGenerator<{ path: string; name: string }> {
  const info = await Deno.lstat(path);
  if (info.isFile) yield { path, name };
  else if (info.isDirectory) {
    for await (const entry of Deno.readDir(path)) {
      yield* walk(`${path}/${entry.name}`, `${name}/${entry.name}`);
    }
  } else console.error(`[!] skipping ${path}: not a file or folder`);
}

console.log(`[+] Connecting to ${host}:${port}`);
const conn = await Deno.connect({ hostname: host, port });
console.log("[+] Connected.");

for (const top of paths) {
  const base = top.replace(/\/+$/, "").split("/").at(-1)!;
  for await (const { path, name } of walk(top, base)) {
    const size = (await Deno.stat(path)).size;
    await sendHeader(conn, { name, size });
    const file = await Deno.open(path);
    const buffer = new Uint8Array(BUFFER_SIZE);
    const hash = createHash("sha256");
    let sent = 0;
    while (sent < size) {
      const n = await file.read(buffer.subarray(0, Math.min(BUFFER_SIZE, size - sent)));
      if (n === null) throw new Error(`${path} shrank while it was being sent`);
      hash.update(buffer.subarray(0, n));
      await writeAll(conn, buffer.subarray(0, n));
      sent += n;
      progress("Sending", name, sent, size);
    }
    // The digest of what we read: the receiver compares it with the digest of what it wrote.
    await writeAll(conn, hash.digest());
    console.error();
    file.close();
  }
}
await sendHeader(conn, END);
conn.close();
