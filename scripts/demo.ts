/**
 * A real end-to-end demo on loopback: makes a few files and a folder, starts receiver.ts (which
 * prints its address and a fresh code phrase), sends with sender.ts using that code, and checks
 * that every byte arrived.
 *
 *     deno task demo
 *
 * @module
 */

import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
// The receiver makes up the code, as a first-time user sees it, whatever this shell has set.
Deno.env.delete("FERRY_CODE");
const work = await Deno.makeTempDir({ prefix: "ferry-demo-" });
const src = join(work, "outbox");
const dst = join(work, "inbox");
await Deno.mkdir(join(src, "photos/2026"), { recursive: true });
await Deno.mkdir(dst);
await Deno.writeTextFile(
  join(src, "notes.txt"),
  "Ferry demo: these bytes crossed a real socket.\n".repeat(200),
);
await Deno.writeFile(
  join(src, "photos/2026/beach.raw"),
  crypto.getRandomValues(new Uint8Array(65536)),
);
const big = new Uint8Array(32 * 1024 * 1024);
for (let i = 0; i < big.length; i += 65536) {
  big.set(crypto.getRandomValues(new Uint8Array(65536)), i);
}
await Deno.writeFile(join(src, "photos/video.bin"), big);

console.log(`demo: sending ${src}\n      into    ${dst}\n`);

// 1. The receiver listens on a free port and makes up a code phrase.
const receiver = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    join(root, "receiver.ts"),
    "--once",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--dir",
    dst,
  ],
  stderr: "piped",
}).spawn();
const reader = receiver.stderr.getReader();
let banner = "";
let match: RegExpExecArray | null = null;
while (!match) {
  const { value, done } = await reader.read();
  if (done) throw new Error(`receiver exited early: ${banner}`);
  banner += new TextDecoder().decode(value);
  match = /listening on \S+:(\d+) — code (\S+)/.exec(banner);
}
const say = (who: string, text: string) =>
  console.log(text.trim().split("\n").map((line) => `${who}> ${line}`).join("\n"));
say("receiver", banner);
const [, port, code] = match;
// The sender draws its bars on this terminal: what the receiver says meanwhile is kept, and
// shown after the sender is done, so that the two never write over each other's lines.
let later = "";
const rest = (async () => {
  while (true) {
    const { value, done } = await reader.read();
    if (done) return;
    later += new TextDecoder().decode(value);
  }
})();

// 2. The sender connects with that code (through the environment, not the command line).
console.log(`sender>   FERRY_CODE=${code} sender.ts 127.0.0.1:${port} notes.txt photos\n`);
const sender = await new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    join(root, "sender.ts"),
    `127.0.0.1:${port}`,
    join(src, "notes.txt"),
    join(src, "photos"),
  ],
  env: { FERRY_CODE: code! },
  stdout: "inherit",
  stderr: "inherit",
}).output();
const received = await receiver.status;
await rest;
console.log();
say("receiver", later);
console.log();

// 3. Check every byte.
let files = 0;
let ok = true;
for (const name of ["notes.txt", "photos/2026/beach.raw", "photos/video.bin"]) {
  const [a, b] = await Promise.all([
    Deno.readFile(join(src, name)),
    Deno.readFile(join(dst, name)),
  ]);
  const same = a.length === b.length && a.every((x, i) => x === b[i]);
  console.log(`demo: ${same ? "identical" : "DIFFERENT"}  ${name} (${b.length} bytes)`);
  ok &&= same;
  files++;
}
await Deno.remove(work, { recursive: true });
const success = ok && sender.code === 0 && received.code === 0;
console.log(
  `\ndemo: ${
    success ? "OK" : "FAILED"
  }: ${files} files, sender exit ${sender.code}, receiver exit ${received.code}`,
);
Deno.exit(success ? 0 : 1);
