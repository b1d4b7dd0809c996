/**
 * PROTOCOL.md's worked example is true: it appears in the document verbatim, and ferry's own
 * code (code phrase, SPAKE2, key schedule, Channel sealing) produces the same bytes.
 */

import { join } from "node:path";
import { hkdfSync } from "node:crypto";
import { assert, assertEquals } from "./assert.ts";
import { ROOT } from "./helpers.ts";
import { hex, workedExample } from "../scripts/protocol_example.ts";
import { discoveryTag, passwordScalar, publicPart, relayToken } from "../lib/code_phrase.ts";
import { finishSpake2, startSpake2 } from "../lib/spake2.ts";
import { ID_RECEIVER, ID_SENDER } from "../lib/handshake.ts";
import { Channel } from "../lib/channel.ts";
import { decompressPayload } from "../lib/compress.ts";
import { EXIT_FOR_WIRE } from "../lib/errors.ts";
import {
  CHUNK_SIZE,
  CODEC_RAW,
  codecPrefix,
  DISCOVERY_GROUP,
  DISCOVERY_PORT,
  encodeDone,
  encodeHello,
  encodeOffer,
  encodeOfferEnd,
  encodePreamble,
  encodeReplies,
  encodeResults,
  encodeSmallFiles,
  FRAME_DATA,
  FRAME_DONE,
  FRAME_OFFER,
  FRAME_OFFER_END,
  FRAME_REPLY,
  FRAME_RESULT,
  FRAME_SMALL_FILES,
  KIND_FILE,
  RELAY_SIDE_RECEIVER,
  RELAY_SIDE_SENDER,
  REPLY_SEND,
  RESULT_OK,
} from "../protocol.ts";

const example = workedExample();

Deno.test("PROTOCOL.md contains the worked example exactly as the script prints it", async () => {
  const doc = await Deno.readTextFile(join(ROOT, "PROTOCOL.md"));
  for (const [name, value] of Object.entries(example)) {
    assert(doc.includes(`${name}: ${value}\n`), `PROTOCOL.md is missing or has a stale "${name}"`);
  }
});

Deno.test("ferry's own handshake code reproduces the worked example", async () => {
  const w = passwordScalar(example.code!);
  assertEquals(w.toString(16).padStart(64, "0"), example.w);
  assertEquals(hex(encodePreamble()), example.preamble);
  const a = await startSpake2(
    "A",
    w,
    0x43dd0fd7215bdcb482879fca3220c6a968e66d70b1356cac18bb26c84a78d729n,
  );
  const b = await startSpake2(
    "B",
    w,
    0xdcb60106f276b02606d8ef0a328c02e4b629f84f89786af5befb0bc75b6e66ben,
  );
  assertEquals(hex(a.share), example.pA);
  assertEquals(hex(b.share), example.pB);
  const aad = new Uint8Array([
    ...new TextEncoder().encode("ferry/1 hello"),
    ...encodeHello({ role: 1, caps: 3 }),
    ...encodeHello({ role: 2, caps: 3 }),
  ]);
  const keys = await finishSpake2(a, b.share, { idA: ID_SENDER, idB: ID_RECEIVER, aad });
  assertEquals(hex(keys.ke), example.Ke);
  assertEquals(hex(keys.ka), example.Ka);
  assertEquals(hex(keys.kcA), example.KcA);
  assertEquals(hex(keys.kcB), example.KcB);
  assertEquals(hex(keys.myConfirm), example.cA);
  assertEquals(hex(keys.peerConfirm), example.cB);
  const s2r = new Uint8Array(
    hkdfSync(
      "sha256",
      keys.ke,
      new Uint8Array(0),
      new TextEncoder().encode("ferry/1 sender to receiver"),
      32,
    ),
  );
  assertEquals(hex(s2r), example["key sender to receiver"]);
});

/** A Channel that records what it writes, sealed with the example's keys for one side. */
function recordingChannel(side: "sender" | "receiver"): { channel: Channel; written: number[] } {
  const written: number[] = [];
  const fakeConn = {
    write: (b: Uint8Array) => {
      written.push(...b);
      return Promise.resolve(b.length);
    },
    read: () => Promise.resolve(null),
    closeWrite: () => Promise.resolve(),
    close: () => {},
  } as unknown as Deno.Conn;
  const channel = new Channel(fakeConn);
  const key = (name: string) =>
    Uint8Array.from(example[name]!.match(/../g)!.map((h) => parseInt(h, 16)));
  const s2r = key("key sender to receiver");
  const r2s = key("key receiver to sender");
  if (side === "sender") channel.seal(s2r, r2s);
  else channel.seal(r2s, s2r);
  return { channel, written };
}

Deno.test("ferry's encoders and Channel produce the example's sealed records, both directions", async () => {
  const sender = recordingChannel("sender");
  const [payload] = encodeOffer([{
    kind: KIND_FILE,
    mode: 0o644,
    mtime: 1764150000000,
    size: 6,
    name: "hello.txt",
  }]);
  const records: [string, number][] = [];
  const sendAs = async (
    side: ReturnType<typeof recordingChannel>,
    name: string,
    type: number,
    ...parts: Uint8Array[]
  ) => {
    await side.channel.send(type, ...parts);
    await side.channel.flush();
    records.push([name, side.written.length]);
    assertEquals(hex(new Uint8Array(side.written)), example[name], name);
    side.written.length = 0;
  };
  await sendAs(sender, "OFFER sealed record", FRAME_OFFER, payload!);
  await sendAs(
    sender,
    "sender OFFER_END sealed record (counter 1)",
    FRAME_OFFER_END,
    encodeOfferEnd({ count: 1, totalBytes: 6 }),
  );
  const hello = new TextEncoder().encode("hello\n");
  await sendAs(
    sender,
    "sender SMALL_FILES sealed record (counter 2)",
    FRAME_SMALL_FILES,
    codecPrefix(CODEC_RAW),
    encodeSmallFiles([{ index: 0, data: hello }]),
  );
  await sendAs(
    sender,
    "sender DONE sealed record (counter 3)",
    FRAME_DONE,
    encodeDone({ files: 1, bytes: 6 }),
  );
  const receiver = recordingChannel("receiver");
  const [reply] = encodeReplies([{ action: REPLY_SEND, offset: 0, reason: 0 }]);
  await sendAs(receiver, "receiver REPLY sealed record (counter 0)", FRAME_REPLY, reply!);
  const [result] = encodeResults([{ index: 0, status: RESULT_OK }]);
  await sendAs(receiver, "receiver RESULT sealed record (counter 1)", FRAME_RESULT, result!);
  await sendAs(
    receiver,
    "receiver DONE sealed record (counter 2)",
    FRAME_DONE,
    encodeDone({ files: 1, bytes: 6 }),
  );
  sender.channel.close();
  receiver.channel.close();
  assertEquals(records.length, 7);
});

Deno.test("ferry decodes the example's zstd DATA chunk to the stated bytes", () => {
  const frame = Uint8Array.from(
    example["DATA plaintext with a zstd chunk"]!.match(/../g)!.map((h) => parseInt(h, 16)),
  );
  assertEquals(frame[0], FRAME_DATA);
  const data = decompressPayload(frame.subarray(1), CHUNK_SIZE, "DATA");
  assertEquals(new TextDecoder().decode(data), "hello\n".repeat(100));
});

Deno.test("PROTOCOL.md section 12: the example tag and token follow from the stated HKDF inputs", async () => {
  const doc = await Deno.readTextFile(join(ROOT, "PROTOCOL.md"));
  const derive = (info: string, size: number) =>
    hex(new Uint8Array(hkdfSync("sha256", "7-absurd", "", info, size)));
  const tag = derive("ferry/2 discovery tag", 16);
  const token = derive("ferry/2 relay token", 32);
  assert(doc.includes(`the tag\n\`${tag}\``), `PROTOCOL.md does not state tag ${tag}`);
  assert(doc.includes(`\`${token}\``), `PROTOCOL.md does not state token ${token}`);
  assertEquals(publicPart("7-absurd-ribbon-castle"), "7-absurd");
  assertEquals(hex(discoveryTag("7-absurd-ribbon-castle")), tag);
  assertEquals(relayToken("7-absurd-ribbon-castle"), token);
  assert(doc.includes("`please relay TOKEN for side SIDE\\n`"));
  assert(doc.includes(`\`${RELAY_SIDE_SENDER}\` for a sender, \`${RELAY_SIDE_RECEIVER}\``));
  assert(doc.includes(`\`${DISCOVERY_GROUP}\`, UDP port ${DISCOVERY_PORT}`));
});

Deno.test("PROTOCOL.md section 8: every wire code leads to the exit code ferry uses", () => {
  const doc = Deno.readTextFileSync(join(ROOT, "PROTOCOL.md"));
  const section = doc.slice(doc.indexOf("## 8. Wire error codes"), doc.indexOf("## 9."));
  const rows = [...section.matchAll(/^\| (\d+) +\| [^|]+\| (\d+) +\|$/gm)];
  const documented = Object.fromEntries(rows.map((row) => [Number(row[1]), Number(row[2])]));
  assertEquals(documented, EXIT_FOR_WIRE);
});
