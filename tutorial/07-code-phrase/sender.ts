// Chapter 7: chapter 6's sender, talking through a channel only the code's holder can open.
//
//     CODE=7-acid-bark-cave deno run --allow-net --allow-read --allow-env=CODE sender.ts HOST PORT PATH...

import { createHash } from "node:crypto";
import { BUFFER_SIZE, END, readOffset, REFUSED, sendHeader, writeAll } from "./protocol.ts";
import { handshake } from "./secure.ts";

const host = Deno.args[0] ?? "127.0.0.1";
const port = Number(Deno.args[1] ?? 5001);
const paths = Deno.args.slice(2);
// From the environment, not the command line: other users can read command lines (ps).
const code = Deno.env.get("CODE");
if (!code) throw new Error("set CODE to the code phrase the receiver printed");

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
const tcp = await Deno.connect({ hostname: host, port });
// From here on every byte is sealed; the rest of the sender is chapter 6's, unchanged.
const conn = await handshake(tcp, code, "sender");
console.log("[+] Connected, and the receiver knows the code.");

for (const top of paths) {
  const base = top.replace(/\/+$/, "").split("/").at(-1)!;
  for await (const { path, name } of walk(top, base)) {
    const size = (await Deno.stat(path)).size;
    await sendHeader(conn, { name, size });
    const offset = await readOffset(conn);
    if (offset === REFUSED || offset > BigInt(size)) {
      console.error(`[!] ${name}: refused by the receiver`);
      continue;
    }
    if (offset > 0n) console.log(`[+] ${name}: resuming at byte ${offset}`);
    // The digest covers the whole file, so the bytes the receiver kept are checked too.
    const hash = createHash("sha256");
    const file = await Deno.open(path);
    const buffer = new Uint8Array(BUFFER_SIZE);
    let read = 0;
    while (read < size) {
      const n = await file.read(buffer.subarray(0, Math.min(BUFFER_SIZE, size - read)));
      if (n === null) throw new Error(`${path} shrank while it was being sent`);
      hash.update(buffer.subarray(0, n));
      // Bytes before the offset are only hashed; the receiver has them already.
      const skip = Math.max(0, Math.min(n, Number(offset) - read));
      await writeAll(conn, buffer.subarray(skip, n));
      read += n;
    }
    await writeAll(conn, hash.digest());
    file.close();
  }
}
await sendHeader(conn, END);
tcp.close();
