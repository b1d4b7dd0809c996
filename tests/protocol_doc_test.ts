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
import {
  DISCOVERY_GROUP,
  DISCOVERY_PORT,
  encodeHello,
  encodeOffer,
  encodePreamble,
  FRAME_OFFER,
  KIND_FILE,
  RELAY_SIDE_RECEIVER,
  RELAY_SIDE_SENDER,
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

Deno.test("Channel seals the example OFFER to the same bytes", async () => {
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
  channel.seal(key("key sender to receiver"), key("key receiver to sender"));
  const [payload] = encodeOffer([{
    kind: KIND_FILE,
    mode: 0o644,
    mtime: 1764150000000,
    size: 6,
    name: "hello.txt",
  }]);
  await channel.send(FRAME_OFFER, payload!);
  await channel.flush();
  channel.close();
  assertEquals(hex(new Uint8Array(written)), example["OFFER sealed record"]);
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
