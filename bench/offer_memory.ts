/**
 * What one offered entry costs a receiver in memory, the number README gives ("about 1 KB per
 * entry besides the names"). A sender that knows the code offers N entries and waits; the
 * receiver plans them all and holds the plans. We read the receiver's resident set (VmRSS)
 * after an offer of 1,000 entries and after one of N, in the same run, and divide the
 * difference by the entries between them: the baseline is the same receiver with a small offer.
 * Two shapes: flat names, and names ten folders deep (the shape that once cost 410 KB each).
 *
 *     deno run -A bench/offer_memory.ts [N]      # N defaults to 100,000
 *
 * @module
 */

import { CODE, deno, freePort, RECEIVER, waitPort, WORK } from "./common.ts";
import { Channel } from "../lib/channel.ts";
import { handshake } from "../lib/handshake.ts";
import { passwordScalar } from "../lib/code_phrase.ts";
import { COMPRESS_CAPS } from "../lib/compress.ts";
import {
  decodeReplies,
  encodeOffer,
  encodeOfferEnd,
  type Entry,
  FRAME_OFFER,
  FRAME_OFFER_END,
  FRAME_REPLY,
  KIND_FILE,
} from "../protocol.ts";

const N = Number(Deno.args[0] ?? 100_000);
const SMALL = 1_000;

/** Resident set of a process, in bytes, from /proc. */
function rss(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** Offers `entries` on a fresh connection and waits for every reply; returns the connection. */
async function offerAll(port: number, entries: Entry[]): Promise<Channel> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const channel = new Channel(conn, { timeoutMs: 120_000 });
  const w = passwordScalar(CODE);
  await handshake(channel, { role: "sender", w, caps: COMPRESS_CAPS, confirmFirst: true });
  let replies = 0;
  const reading = (async () => {
    while (replies < entries.length) {
      replies += decodeReplies(await channel.expect(FRAME_REPLY)).length;
    }
  })();
  for (const batch of encodeOffer(entries)) await channel.send(FRAME_OFFER, batch);
  await channel.send(FRAME_OFFER_END, encodeOfferEnd({ count: entries.length, totalBytes: 0 }));
  await channel.flush();
  await reading;
  return channel;
}

/** Bytes per entry beyond a small offer, for names made by `name(i)`. */
async function perEntry(shape: string, name: (i: number) => string): Promise<void> {
  const dir = await Deno.makeTempDir({ dir: WORK });
  const port = freePort();
  const receiver = new Deno.Command(deno.split(" ")[0]!, {
    args: [
      ...deno.split(" ").slice(1),
      RECEIVER,
      "--dir",
      dir,
      "--port",
      String(port),
      "--host",
      "127.0.0.1",
      "--max-files",
      String(N),
      "--quiet",
    ],
    env: { FERRY_CODE: CODE },
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitPort(port);
    const entries = (count: number, from: number) =>
      Array.from({ length: count }, (_, i): Entry => ({
        kind: KIND_FILE,
        mode: 0o644,
        mtime: 0,
        size: 1,
        name: name(from + i),
      }));
    const small = await offerAll(port, entries(SMALL, 0));
    const before = rss(receiver.pid);
    const big = await offerAll(port, entries(N, SMALL));
    const after = rss(receiver.pid);
    const names = entries(N, SMALL).reduce((sum, e) => sum + e.name.length, 0) / N;
    const bytes = (after - before) / N;
    console.log(
      `${shape}: ${Math.round(bytes)} bytes per entry (names average ${Math.round(names)} bytes; ` +
        `RSS ${(before / 2 ** 20).toFixed(0)} -> ${
          (after / 2 ** 20).toFixed(0)
        } MiB for ${N} entries)`,
    );
    small.close();
    big.close();
  } finally {
    receiver.kill("SIGTERM");
    await receiver.status;
  }
}

await perEntry("flat", (i) => `file-${String(i).padStart(7, "0")}.txt`);
await perEntry(
  "10 folders deep",
  (i) => `${Array.from({ length: 10 }, (_, d) => `d${d}x${i % 50}`).join("/")}/f${i}.txt`,
);
Deno.removeSync(WORK, { recursive: true });
