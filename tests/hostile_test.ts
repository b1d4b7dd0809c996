/**
 * A hostile or broken sender against a real receiver subprocess. The hostile side is written
 * with ferry's own channel and handshake (so it gets past the code check) and then says
 * whatever it likes. Every case asserts the exact refusal and that nothing lands outside --dir.
 */

import { join } from "node:path";
import * as zlib from "node:zlib";
import { assert, assertEquals, assertMatch, assertRejects } from "./assert.ts";
import {
  CODE,
  exists,
  jsonLines,
  sameFile,
  send,
  startReceiver,
  tempDir,
  writeRandomFile,
} from "./helpers.ts";
import { Channel } from "../lib/channel.ts";
import { handshake } from "../lib/handshake.ts";
import { passwordScalar } from "../lib/code_phrase.ts";
import { COMPRESS_CAPS } from "../lib/compress.ts";
import { EXIT, FerryError, WIRE } from "../lib/errors.ts";
import { createDigest, digestOf } from "../lib/checksum.ts";
import {
  CODEC_RAW,
  CODEC_ZSTD,
  decodeDone,
  decodeOffer,
  decodeReplies,
  decodeRestart,
  decodeResults,
  encodeDone,
  encodeFileEnd,
  encodeFileStart,
  encodeOffer,
  encodeOfferEnd,
  encodePreamble,
  encodeReplies,
  encodeRestart,
  encodeResults,
  encodeSkip,
  encodeSmallFiles,
  type Entry,
  type FileResult,
  FRAME_DATA,
  FRAME_DONE,
  FRAME_FILE,
  FRAME_FILE_END,
  FRAME_OFFER,
  FRAME_OFFER_END,
  FRAME_REPLY,
  FRAME_RESTART,
  FRAME_RESULT,
  FRAME_SKIP,
  FRAME_SMALL_FILES,
  KIND_DIR,
  KIND_FILE,
  KIND_STREAM,
  type Reply,
  REPLY_HAVE,
  REPLY_REFUSE,
  REPLY_RESUME,
  REPLY_SEND,
  RESULT_IDENTICAL,
  RESULT_OK,
} from "../protocol.ts";

const W = passwordScalar(CODE);

/** Connects and completes a real handshake as a sender. */
async function hostile(port: number): Promise<Channel> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const channel = new Channel(conn, { timeoutMs: 10_000 });
  await handshake(channel, { role: "sender", w: W, caps: COMPRESS_CAPS, confirmFirst: true });
  return channel;
}

/** Offers entries and returns the receiver's replies. */
async function offer(channel: Channel, entries: Entry[]): Promise<Reply[]> {
  for (const batch of encodeOffer(entries)) await channel.send(FRAME_OFFER, batch);
  await channel.send(FRAME_OFFER_END, encodeOfferEnd({ count: entries.length, totalBytes: 0 }));
  const replies: Reply[] = [];
  while (replies.length < entries.length) {
    replies.push(...decodeReplies(await channel.expect(FRAME_REPLY)));
  }
  return replies;
}

const file = (name: string, size = 5): Entry => ({
  kind: KIND_FILE,
  mode: 0o644,
  mtime: 0,
  size,
  name,
});

/** Says DONE and collects the receiver's verdicts, in entry order of arrival. */
async function finish(channel: Channel): Promise<FileResult[]> {
  await channel.send(FRAME_DONE, encodeDone({ files: 0, bytes: 0 }));
  const results: FileResult[] = [];
  while (true) {
    const frame = await channel.recv();
    if (frame.type === FRAME_DONE) break;
    assertEquals(frame.type, FRAME_RESULT);
    results.push(...decodeResults(frame.payload));
  }
  channel.close();
  return results;
}

/** Expects the receiver to end the session with an ERROR frame of this wire code. */
async function expectError(channel: Channel, code: number): Promise<void> {
  const err = await assertRejects(async () => {
    while (true) await channel.recv();
  });
  assert(err instanceof FerryError && err.fromPeer, `expected an ERROR frame, got ${err.message}`);
  assertEquals((err as FerryError).wireCode, code, err.message);
  channel.close();
}

/** A receiver in box/dst, so that anything written next to dst is caught. */
async function setup(extraArgs: string[] = []) {
  const box = await tempDir();
  const dst = join(box, "dst");
  await Deno.mkdir(dst);
  const outside = await tempDir();
  await Deno.symlink(outside, join(dst, "escape"));
  await Deno.writeTextFile(join(dst, "plain.txt"), "a file");
  const receiver = await startReceiver(["--dir", dst, "--timeout", "2", ...extraArgs]);
  return { box, dst, outside, receiver };
}

async function teardown(ctx: Awaited<ReturnType<typeof setup>>) {
  const done = await ctx.receiver.stop();
  // Nothing may ever appear beside dst, nor through the symlink the receiver already has.
  assertEquals([...Deno.readDirSync(ctx.box)].map((e) => e.name), ["dst"]);
  assertEquals([...Deno.readDirSync(ctx.outside)].length, 0);
  await Deno.remove(ctx.box, { recursive: true });
  await Deno.remove(ctx.outside, { recursive: true });
  return done;
}

/** [name, the refusal expected]: path traversal in every spelling, and worse. */
const HOSTILE_NAMES: [string, number][] = [
  ["../evil.txt", WIRE.BAD_NAME],
  ["../../evil.txt", WIRE.BAD_NAME],
  ["a/../../evil.txt", WIRE.BAD_NAME],
  ["a/../b.txt", WIRE.BAD_NAME],
  ["./a.txt", WIRE.BAD_NAME],
  ["..", WIRE.BAD_NAME],
  [".", WIRE.BAD_NAME],
  ["/etc/ferry-evil", WIRE.BAD_NAME],
  ["/tmp/ferry-evil", WIRE.BAD_NAME],
  ["//server/share", WIRE.BAD_NAME],
  ["..\\evil.txt", WIRE.BAD_NAME],
  ["a\\..\\..\\evil.txt", WIRE.BAD_NAME],
  ["C:\\Windows\\evil.txt", WIRE.BAD_NAME],
  ["C:evil.txt", WIRE.BAD_NAME],
  ["z:/evil.txt", WIRE.BAD_NAME],
  ["a//b.txt", WIRE.BAD_NAME],
  ["trailing/", WIRE.BAD_NAME],
  ["", WIRE.BAD_NAME],
  ["nul\0.txt", WIRE.BAD_NAME],
  ["evil.txt\0.jpg", WIRE.BAD_NAME],
  ["new\nline.txt", WIRE.BAD_NAME],
  ["carriage\rreturn.txt", WIRE.BAD_NAME],
  ["tab\there.txt", WIRE.BAD_NAME],
  ["ansi\x1b[2J\x1b[H.txt", WIRE.BAD_NAME],
  ["title\x1b]0;pwned\x07.txt", WIRE.BAD_NAME],
  ["del\x7f.txt", WIRE.BAD_NAME],
  ["c1\u009b31m.txt", WIRE.BAD_NAME],
  ["rtl\u202egnp.exe", WIRE.BAD_NAME],
  ["isolate\u2066x\u2069.txt", WIRE.BAD_NAME],
  ["zero\u200bwidth.txt", WIRE.BAD_NAME],
  ["bom\ufeff.txt", WIRE.BAD_NAME],
  ["..\u2215..\u2215evil.txt", WIRE.BAD_NAME],
  ["..\uff0f..\uff0fevil.txt", WIRE.BAD_NAME],
  ["..\uff3c..\uff3cevil.txt", WIRE.BAD_NAME],
  ["x".repeat(256), WIRE.BAD_NAME],
  ["d/".repeat(200) + "f", WIRE.BAD_NAME],
  ["escape/evil.txt", WIRE.SYMLINK],
  ["escape/deeper/evil.txt", WIRE.SYMLINK],
  ["escape", WIRE.SYMLINK],
  ["plain.txt/evil.txt", WIRE.BAD_NAME],
  ["plain.txt", WIRE.EXISTS],
];

Deno.test("receiver refuses every hostile name in the corpus and writes nothing outside --dir", async () => {
  const ctx = await setup();
  try {
    const channel = await hostile(ctx.receiver.port);
    const entries = HOSTILE_NAMES.map(([name]) => file(name));
    const replies = await offer(channel, entries);
    for (let i = 0; i < HOSTILE_NAMES.length; i++) {
      const [name, reason] = HOSTILE_NAMES[i]!;
      assertEquals(
        [replies[i]!.action, replies[i]!.reason],
        [REPLY_REFUSE, reason],
        `name ${JSON.stringify(name)}`,
      );
    }
    await channel.send(FRAME_DONE, new Uint8Array(12));
    channel.close();
  } finally {
    const done = await teardown(ctx);
    // Hostile names are never printed raw: no escape character reaches the terminal.
    assert(!done.stderr.includes("\x1b[2J"), "an ANSI escape reached stderr");
  }
});

Deno.test("receiver accepts harmless look-alikes literally, inside --dir", async () => {
  const ctx = await setup();
  try {
    const names = [
      "%2e%2e%2fevil.txt",
      "..%2f..%2fevil.txt",
      "...",
      "....txt",
      "ünïcödé.txt",
      "-rf",
    ];
    const channel = await hostile(ctx.receiver.port);
    const replies = await offer(channel, names.map((n) => file(n)));
    assert(replies.every((r) => r.action === REPLY_SEND));
    const payload = new TextEncoder().encode("hello");
    for (let index = 0; index < names.length; index++) {
      await channel.send(FRAME_FILE, encodeFileStart({ index, offset: 0 }));
      await channel.send(FRAME_DATA, new Uint8Array([CODEC_RAW]), payload);
      await channel.send(FRAME_FILE_END, encodeFileEnd({ size: 5 }));
    }
    const results = await finish(channel);
    assertEquals(results.map((r) => r.status), names.map(() => 0));
    for (const name of names) assertEquals(await Deno.readTextFile(join(ctx.dst, name)), "hello");
  } finally {
    await teardown(ctx);
  }
});

Deno.test("receiver refuses an over-long or non-UTF-8 name for that entry alone, and goes on", async () => {
  const ctx = await setup();
  try {
    const channel = await hostile(ctx.receiver.port);
    // Hand-made OFFER: a 5,000-byte name, a name that is not UTF-8, then a good one.
    const good = encodeOffer([file("good.txt")])[0]!;
    const long = encodeOffer([file("n".repeat(5000))])[0]!;
    const bad = encodeOffer([file("xx")])[0]!.slice();
    bad.set([0xff, 0xfe], bad.length - 2);
    for (const payload of [long, bad, good]) await channel.send(FRAME_OFFER, payload);
    await channel.send(FRAME_OFFER_END, encodeOfferEnd({ count: 3, totalBytes: 15 }));
    const replies: Reply[] = [];
    while (replies.length < 3) replies.push(...decodeReplies(await channel.expect(FRAME_REPLY)));
    assertEquals(replies.map((r) => r.reason), [WIRE.BAD_NAME, WIRE.BAD_NAME, 0]);
    channel.close();
  } finally {
    await teardown(ctx);
  }
});

Deno.test("receiver refuses duplicate entries, a file beneath a file, and NAME.ferry-part beside NAME", async () => {
  const ctx = await setup();
  try {
    const channel = await hostile(ctx.receiver.port);
    const replies = await offer(channel, [
      file("dup.txt"),
      file("dup.txt"),
      file("f"),
      file("f/inside.txt"),
      { kind: KIND_DIR, mode: 0o755, mtime: 0, size: 0, name: "dir" },
      file("dir"),
      file("data.bin"),
      file("data.bin.ferry-part"),
      // The other order: the later of the two is refused, whichever it is.
      file("log.ferry-part"),
      file("log"),
    ]);
    assertEquals(replies.map((r) => r.reason), [
      0,
      WIRE.DUPLICATE,
      0,
      WIRE.BAD_NAME,
      0,
      WIRE.DUPLICATE,
      0,
      WIRE.DUPLICATE,
      0,
      WIRE.DUPLICATE,
    ]);
    channel.close();
  } finally {
    await teardown(ctx);
  }
});

Deno.test("receiver stops a sender that sends more bytes than it declared (no file left)", async () => {
  const ctx = await setup();
  try {
    const channel = await hostile(ctx.receiver.port);
    await offer(channel, [file("liar.txt", 4)]);
    await channel.send(FRAME_FILE, encodeFileStart({ index: 0, offset: 0 }));
    await channel.send(
      FRAME_DATA,
      new Uint8Array([CODEC_RAW]),
      new TextEncoder().encode("way more than four"),
    );
    await expectError(channel, WIRE.INTEGRITY);
    assertEquals(await exists(join(ctx.dst, "liar.txt")), false);
    assertEquals(await exists(join(ctx.dst, "liar.txt.ferry-part")), false);
  } finally {
    const done = await teardown(ctx);
    assertMatch(done.stderr, /ferry: liar\.txt: the sender sent more bytes than it declared/);
  }
});

Deno.test("receiver rejects short files and a lying FILE_END with RESULT integrity, no final file", async () => {
  const ctx = await setup();
  try {
    const channel = await hostile(ctx.receiver.port);
    await offer(channel, [file("short.txt", 10), file("lying.txt", 5), file("small.txt", 6)]);
    const five = new TextEncoder().encode("12345");
    await channel.send(FRAME_FILE, encodeFileStart({ index: 0, offset: 0 }));
    await channel.send(FRAME_DATA, new Uint8Array([CODEC_RAW]), five);
    await channel.send(FRAME_FILE_END, encodeFileEnd({ size: 5 }));
    // All five bytes came, but FILE_END claims six.
    await channel.send(FRAME_FILE, encodeFileStart({ index: 1, offset: 0 }));
    await channel.send(FRAME_DATA, new Uint8Array([CODEC_RAW]), five);
    await channel.send(FRAME_FILE_END, encodeFileEnd({ size: 6 }));
    // A whole small file shorter than offered is refused before anything is written.
    await channel.send(
      FRAME_SMALL_FILES,
      new Uint8Array([CODEC_RAW]),
      encodeSmallFiles([{ index: 2, data: five }]),
    );
    assertEquals(await finish(channel), [
      { index: 0, status: WIRE.INTEGRITY },
      { index: 1, status: WIRE.INTEGRITY },
      { index: 2, status: WIRE.INTEGRITY },
    ]);
    for (
      const name of [
        "short.txt",
        "short.txt.ferry-part",
        "lying.txt",
        "lying.txt.ferry-part",
        "small.txt",
        "small.txt.ferry-part",
      ]
    ) {
      assertEquals(await exists(join(ctx.dst, name)), false, name);
    }
  } finally {
    await teardown(ctx);
  }
});

Deno.test("receiver refuses a zip-bomb chunk instead of expanding it", async () => {
  // Made before connecting: compressing 512 MiB takes seconds on a busy machine, and the
  // receiver's idle timeout runs from the first byte.
  const bomb = zlib.zstdCompressSync(new Uint8Array(512 * 1024 * 1024));
  const ctx = await setup();
  try {
    const channel = await hostile(ctx.receiver.port);
    await offer(channel, [file("bomb.bin", 1 << 20)]);
    await channel.send(FRAME_FILE, encodeFileStart({ index: 0, offset: 0 }));
    await channel.send(FRAME_DATA, new Uint8Array([CODEC_ZSTD]), bomb);
    await expectError(channel, WIRE.PROTOCOL);
  } finally {
    const done = await teardown(ctx);
    assertMatch(done.stderr, /Cannot decompress chunk: it expands beyond 1048576 bytes/);
  }
});

Deno.test("receiver refuses a SMALL_FILES frame that would expand past one frame, writes nothing", async () => {
  // A valid item, then 64 MiB of zeros: the body is decoded whole, so it is refused whole.
  // Compressed before connecting, so that a busy machine does not trip the idle timeout.
  const body = new Uint8Array(64 * 1024 * 1024);
  body.set(encodeSmallFiles([{ index: 0, data: new Uint8Array([1, 2, 3, 4]) }]));
  const packed = zlib.zstdCompressSync(body);
  const ctx = await setup();
  try {
    const channel = await hostile(ctx.receiver.port);
    await offer(channel, [file("tiny.txt", 4)]);
    await channel.send(FRAME_SMALL_FILES, new Uint8Array([CODEC_ZSTD]), packed);
    await expectError(channel, WIRE.PROTOCOL);
  } finally {
    const done = await teardown(ctx);
    assertMatch(done.stderr, /Cannot decompress chunk: it expands beyond 1048638 bytes/);
    assertEquals(await exists(join(ctx.dst, "tiny.txt")), false);
  }
});

Deno.test("receiver rejects frames out of place: DATA with no file, unknown types, FILE for a refused entry", async () => {
  const ctx = await setup();
  try {
    let channel = await hostile(ctx.receiver.port);
    await offer(channel, [file("x.txt")]);
    await channel.send(FRAME_DATA, new Uint8Array([CODEC_RAW]), new Uint8Array(5));
    await expectError(channel, WIRE.PROTOCOL);

    channel = await hostile(ctx.receiver.port);
    await offer(channel, [file("y.txt")]);
    await channel.send(0x55, new Uint8Array(3));
    await expectError(channel, WIRE.PROTOCOL);

    channel = await hostile(ctx.receiver.port);
    await offer(channel, [file("../z.txt")]);
    await channel.send(FRAME_FILE, encodeFileStart({ index: 0, offset: 0 }));
    await expectError(channel, WIRE.PROTOCOL);

    channel = await hostile(ctx.receiver.port);
    await offer(channel, [file("w.txt")]);
    await channel.send(
      FRAME_FILE,
      encodeFileStart({ index: 0, offset: 3, digest: new Uint8Array(16) }),
    );
    await expectError(channel, WIRE.PROTOCOL);

    channel = await hostile(ctx.receiver.port);
    await channel.send(FRAME_OFFER_END, encodeOfferEnd({ count: 5, totalBytes: 0 }));
    await expectError(channel, WIRE.PROTOCOL);
  } finally {
    const done = await teardown(ctx);
    assertMatch(done.stderr, /Cannot take DATA: no file is open/);
    assertMatch(done.stderr, /unexpected unknown frame 0x55/);
    assertMatch(done.stderr, /Cannot start file 0: it was not accepted/);
    assertMatch(done.stderr, /Cannot start file 0 at byte 3/);
    assertMatch(done.stderr, /announced 5 entries but listed 0/);
  }
});

/** Raw bytes to a receiver; returns what it answered before closing (bounded). */
async function raw(port: number, bytes: Uint8Array, holdOpen = false): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  if (bytes.length) await conn.write(bytes);
  if (!holdOpen) await conn.closeWrite();
  const chunks: number[] = [];
  const buf = new Uint8Array(4096);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const got = await conn.read(buf).catch(() => null);
    if (got === null) break;
    chunks.push(...buf.subarray(0, got));
  }
  conn.close();
  return new Uint8Array(chunks);
}

Deno.test("receiver answers garbage, a wrong version, a huge length and silence, and keeps serving", async () => {
  const ctx = await setup();
  try {
    // Garbage instead of the magic: an HTTP request.
    await raw(ctx.receiver.port, new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    // A future version.
    await raw(ctx.receiver.port, encodePreamble(7));
    // A plaintext record that claims 4 GiB: refused before anything is allocated.
    const huge = new Uint8Array(12);
    huge.set(encodePreamble());
    new DataView(huge.buffer).setUint32(8, 0xfffffff0);
    await raw(ctx.receiver.port, huge);
    // Truncated: half a record, then hang up.
    const half = new Uint8Array(14);
    half.set(encodePreamble());
    new DataView(half.buffer).setUint32(8, 100);
    await raw(ctx.receiver.port, half);
    // Slow loris: connect and say nothing; the receiver hangs up after --timeout 2.
    const started = Date.now();
    await raw(ctx.receiver.port, new Uint8Array(0), true);
    const waited = Date.now() - started;
    assert(waited >= 1500 && waited < 9000, `silent peer was dropped after ${waited} ms`);

    // After all that, a good sender still gets through.
    const src = await tempDir();
    await writeRandomFile(join(src, "good.bin"), 100_000, 5);
    const sent = await send([`127.0.0.1:${ctx.receiver.port}`, join(src, "good.bin")]);
    assertEquals(sent.code, 0, sent.stderr);
    assert(await sameFile(join(src, "good.bin"), join(ctx.dst, "good.bin")));
    await Deno.remove(src, { recursive: true });
  } finally {
    const done = await teardown(ctx);
    assertMatch(done.stderr, /ferry: Cannot start: the peer is not speaking the ferry protocol/);
    assertMatch(
      done.stderr,
      /ferry: Cannot start: peer speaks protocol version 7, this ferry speaks 3/,
    );
    assertMatch(done.stderr, /ferry: Cannot read frame: length 4294967280 is outside/);
    assertMatch(done.stderr, /ferry: connection ended in the middle of a frame/);
    assertMatch(
      done.stderr,
      /ferry: (peer stopped responding \(no data for 2 s\)|handshake not completed within 2 s)/,
    );
  }
});

Deno.test("receiver drops a peer that trickles its handshake one byte at a time", async () => {
  const ctx = await setup();
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: ctx.receiver.port });
    const started = Date.now();
    const bytes = encodePreamble();
    let dropped = false;
    // One byte every 300 ms never trips the 2 s idle timeout; the handshake deadline must.
    for (let i = 0; i < 40 && !dropped; i++) {
      await new Promise((r) => setTimeout(r, 300));
      dropped = await conn.write(bytes.subarray(i % 8, i % 8 + 1)).then(() => false, () => true);
    }
    conn.close();
    const waited = Date.now() - started;
    assert(dropped && waited < 6000, `trickling peer held on for ${waited} ms`);
  } finally {
    const done = await teardown(ctx);
    assertMatch(done.stderr, /ferry: handshake not completed within 2 s/);
  }
});

Deno.test("receiver answers each OFFER frame before the offer ends", async () => {
  const ctx = await setup();
  try {
    const channel = await hostile(ctx.receiver.port);
    // No OFFER_END yet: a receiver that waited for the whole offer would never answer.
    await channel.send(FRAME_OFFER, ...encodeOffer([file("first.txt"), file("second.txt")]));
    const replies = decodeReplies(await channel.expect(FRAME_REPLY));
    assertEquals(replies.map((r) => r.action), [REPLY_SEND, REPLY_SEND]);
    channel.close();
  } finally {
    await teardown(ctx);
  }
});

Deno.test("receiver --max-files and --max-size refuse oversized offers", async () => {
  const box = await tempDir();
  const receiver = await startReceiver(["--dir", box, "--max-files", "3", "--max-size", "1K"]);
  try {
    let channel = await hostile(receiver.port);
    for (const batch of encodeOffer([file("1"), file("2"), file("3"), file("4")])) {
      await channel.send(FRAME_OFFER, batch);
    }
    await expectError(channel, WIRE.TOO_LARGE);
    channel = await hostile(receiver.port);
    const replies = await offer(channel, [file("small", 1000), file("big", 2000)]);
    assertEquals(replies.map((r) => r.reason), [0, WIRE.TOO_LARGE]);
    channel.close();
  } finally {
    await receiver.stop();
    await Deno.remove(box, { recursive: true });
  }
});

/**
 * A hostile receiver: real sender.ts sends one small file to a fake receiver that takes the
 * offer, answers with `replies` and then follows `script`. Returns how the sender ended.
 */
async function fakeReceiver(
  replies: number,
  script: (channel: Channel) => Promise<void>,
): Promise<{ code: number; stderr: string }> {
  const src = await tempDir();
  try {
    await Deno.writeTextFile(join(src, "one.txt"), "one");
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const sent = send([`127.0.0.1:${listener.addr.port}`, join(src, "one.txt")]);
    const channel = new Channel(await listener.accept(), { timeoutMs: 10_000 });
    await handshake(channel, { role: "receiver", w: W, caps: COMPRESS_CAPS, confirmFirst: false });
    let frame = await channel.recv();
    while (frame.type === FRAME_OFFER) frame = await channel.recv();
    assertEquals(frame.type, FRAME_OFFER_END);
    const sendIt = { action: REPLY_SEND, offset: 0, reason: 0 };
    const [payload] = encodeReplies(Array(replies).fill(sendIt));
    await channel.send(FRAME_REPLY, payload!);
    await channel.flush();
    await script(channel);
    const finished = await sent;
    channel.close();
    return finished;
  } finally {
    await Deno.remove(src, { recursive: true });
  }
}

Deno.test("sender refuses a receiver that answers more entries than were offered", async () => {
  const finished = await fakeReceiver(2, () => Promise.resolve());
  assertEquals(finished.code, EXIT.FAILED, finished.stderr);
  assertMatch(finished.stderr, /2 replies for 1 entries offered/);
});

Deno.test("sender refuses a receiver that gives one file two verdicts", async () => {
  const finished = await fakeReceiver(1, async (channel) => {
    assertEquals((await channel.recv()).type, FRAME_SMALL_FILES);
    const [results] = encodeResults([{ index: 0, status: RESULT_OK }, { index: 0, status: 7 }]);
    await channel.send(FRAME_RESULT, results!);
    await channel.flush();
  });
  assertEquals(finished.code, EXIT.FAILED, finished.stderr);
  assertMatch(finished.stderr, /entry 0 has its outcome already/);
});

Deno.test("sender refuses a RESTART for a file it did not resume, and a status 1 (no status is an error's number)", async () => {
  const restart = await fakeReceiver(1, async (channel) => {
    assertEquals((await channel.recv()).type, FRAME_SMALL_FILES);
    await channel.send(FRAME_RESTART, encodeRestart(0));
    await channel.flush();
  });
  assertEquals(restart.code, EXIT.FAILED, restart.stderr);
  assertMatch(restart.stderr, /RESTART: entry 0 is not being resumed/);
  const one = await fakeReceiver(1, async (channel) => {
    assertEquals((await channel.recv()).type, FRAME_SMALL_FILES);
    // Version 2's "identical": now the protocol-error code, never a status.
    await channel.send(FRAME_RESULT, new Uint8Array([0, 0, 0, 0, 1]));
    await channel.flush();
  });
  assertEquals(one.code, EXIT.FAILED, one.stderr);
  assertMatch(one.stderr, /unknown status 1/);
});

Deno.test("receiver: an accepted file the sender never sends is a failure, not 'identical'", async () => {
  const ctx = await setup();
  try {
    const channel = await hostile(ctx.receiver.port);
    await offer(channel, [file("never.txt")]);
    const results = await finish(channel);
    assertEquals(results, [{ index: 0, status: WIRE.CANCELLED }]);
    assertEquals(await exists(join(ctx.dst, "never.txt")), false);
  } finally {
    await teardown(ctx);
  }
});

Deno.test("a folder swapped for a symlink after the receiver made it: no byte lands outside --dir", async () => {
  const ctx = await setup();
  try {
    for (const small of [false, true]) {
      const sub = small ? "small" : "large";
      const channel = await hostile(ctx.receiver.port);
      const size = small ? 10 : 100_000;
      const replies = await offer(channel, [file(`${sub}/deep/f.bin`, size)]);
      assertEquals(replies[0]!.action, REPLY_SEND);
      // The receiver made sub/deep while planning. A local user now moves sub away and puts a
      // link to a folder outside in its place, before a single byte of the file arrives.
      await Deno.rename(join(ctx.dst, sub), join(ctx.dst, `${sub}-moved`));
      await Deno.symlink(ctx.outside, join(ctx.dst, sub));
      await Deno.mkdir(join(ctx.outside, "deep"));
      const data = new Uint8Array(size).fill(7);
      if (small) {
        await channel.send(
          FRAME_SMALL_FILES,
          new Uint8Array([CODEC_RAW]),
          encodeSmallFiles([{ index: 0, data }]),
        );
      } else {
        await channel.send(FRAME_FILE, encodeFileStart({ index: 0, offset: 0 }));
        await channel.send(FRAME_DATA, new Uint8Array([CODEC_RAW]), data);
        await channel.send(FRAME_FILE_END, encodeFileEnd({ size }));
      }
      await expectError(channel, WIRE.SYMLINK);
      // Nothing went through the link, and nothing into the moved folder either.
      assertEquals([...Deno.readDirSync(join(ctx.outside, "deep"))], []);
      assertEquals([...Deno.readDirSync(join(ctx.dst, `${sub}-moved`, "deep"))], []);
      await Deno.remove(join(ctx.outside, "deep"));
    }
  } finally {
    const done = await teardown(ctx);
    assertMatch(done.stderr, /large\/deep was replaced while ferry was writing in it/);
    assertMatch(done.stderr, /small\/deep was replaced while ferry was writing in it/);
  }
});

Deno.test("a peer that knows the code cannot hold a connection with a trickle of small frames", async () => {
  const ctx = await setup();
  try {
    const channel = await hostile(ctx.receiver.port);
    // One entry every 200 ms: ~40 bytes each, far below 1 KiB/s, but never silent for long.
    // (Before the minimum rate, every byte restarted the idle clock: this went on forever.)
    const started = Date.now();
    let cut = false;
    for (let i = 0; i < 60 && !cut; i++) {
      try {
        for (const batch of encodeOffer([file(`slow${i}.txt`)])) {
          await channel.send(FRAME_OFFER, batch);
        }
        await channel.flush();
        await new Promise((resolve) => setTimeout(resolve, 200));
      } catch {
        cut = true;
      }
    }
    const held = Date.now() - started;
    channel.close();
    assert(cut, `the trickle held the connection for ${held} ms`);
    // --timeout 2: the credit of 2 s drains in about 2 s, a little later for what was earned.
    assert(held < 9000, `cut only after ${held} ms`);
  } finally {
    const done = await teardown(ctx);
    assertMatch(done.stderr, /peer too slow \(under 1 KiB\/s for 2 s\)/);
  }
});

Deno.test("a sender that knows the code learns only 'same' or 'different', never a digest of the receiver's bytes", async () => {
  const ctx = await setup();
  const digest = async (text: string) =>
    digestOf(await createDigest(), new TextEncoder().encode(text));
  try {
    // A 4-digit PIN and someone else's half-sent file, both under --dir.
    await Deno.writeTextFile(join(ctx.dst, "pin.txt"), "4821\n");
    await Deno.writeTextFile(join(ctx.dst, "secret.bin.ferry-part"), "0123456789");
    let channel = await hostile(ctx.receiver.port);
    const replies = await offer(channel, [file("pin.txt", 5), file("secret.bin", 20)]);
    // HAVE and RESUME say what is there (a name, a length), nothing about the bytes.
    assertEquals(replies, [
      { action: REPLY_HAVE, offset: 0, reason: 0 },
      { action: REPLY_RESUME, offset: 10, reason: 0 },
    ]);
    // A guess at the PIN is answered "exists": different, and no more.
    await channel.send(FRAME_SKIP, encodeSkip({ index: 0, digest: await digest("0000\n") }));
    // A resume with a guessed prefix is answered RESTART at once, before any data is sent.
    await channel.send(
      FRAME_FILE,
      encodeFileStart({ index: 1, offset: 10, digest: await digest("aaaaaaaaaa") }),
    );
    await channel.flush();
    const restart = await channel.recv();
    assertEquals([restart.type, decodeRestart(restart.payload)], [FRAME_RESTART, 1]);
    // What follows of that FILE is dropped; the file then comes whole, from 0.
    await channel.send(
      FRAME_DATA,
      new Uint8Array([CODEC_RAW]),
      new TextEncoder().encode("x".repeat(10)),
    );
    await channel.send(FRAME_FILE_END, encodeFileEnd({ size: 20 }));
    await channel.send(FRAME_FILE, encodeFileStart({ index: 1, offset: 0 }));
    await channel.send(
      FRAME_DATA,
      new Uint8Array([CODEC_RAW]),
      new TextEncoder().encode("b".repeat(20)),
    );
    await channel.send(FRAME_FILE_END, encodeFileEnd({ size: 20 }));
    const results = await finish(channel);
    assertEquals(
      results.sort((a, b) => a.index - b.index),
      [{ index: 0, status: WIRE.EXISTS }, { index: 1, status: RESULT_OK }],
    );
    assertEquals(await Deno.readTextFile(join(ctx.dst, "secret.bin")), "b".repeat(20));
    assertEquals(await Deno.readTextFile(join(ctx.dst, "pin.txt")), "4821\n");
    assertEquals(await exists(join(ctx.dst, "secret.bin.ferry-part")), false);

    // The right guess is "identical" (0x80, a number no error code has), and nothing travels.
    channel = await hostile(ctx.receiver.port);
    await offer(channel, [file("pin.txt", 5)]);
    await channel.send(FRAME_SKIP, encodeSkip({ index: 0, digest: await digest("4821\n") }));
    assertEquals(await finish(channel), [{ index: 0, status: RESULT_IDENTICAL }]);
  } finally {
    await teardown(ctx);
  }
});

Deno.test("sender: a receiver that ends without a verdict on a file makes the transfer fail", async () => {
  const finished = await fakeReceiver(1, async (channel) => {
    assertEquals((await channel.recv()).type, FRAME_SMALL_FILES);
    assertEquals((await channel.recv()).type, FRAME_DONE);
    await channel.send(FRAME_DONE, encodeDone({ files: 0, bytes: 0 }));
    await channel.flush();
  });
  assertEquals(finished.code, EXIT.FAILED, finished.stderr);
});

Deno.test("receiver: deep names cannot make a folder per component per entry", async () => {
  const ctx = await setup();
  try {
    const channel = await hostile(ctx.receiver.port);
    // 20 files, each 100 folders deep on its own branch: 2,000 folders if nothing stopped it.
    const deep = (i: number) => Array.from({ length: 100 }, (_, d) => `b${i}d${d}`).join("/");
    const replies = await offer(
      channel,
      Array.from({ length: 20 }, (_, i) => file(`${deep(i)}/f`)),
    );
    channel.close();
    let folders = 0;
    for (const dir of [ctx.dst]) {
      const walk = (path: string) => {
        for (const item of Deno.readDirSync(path)) {
          if (item.isDirectory) {
            folders++;
            walk(join(path, item.name));
          }
        }
      };
      walk(dir);
    }
    assert(folders <= 20 + 128, `${folders} folders were made for 20 entries`);
    assert(replies.some((r) => r.reason === WIRE.TOO_LARGE), "no entry was refused");
  } finally {
    await teardown(ctx);
  }
});

Deno.test("receiver: --max-size bounds stdin streams too, all of them together", async () => {
  const box = await tempDir();
  const receiver = await startReceiver(["--dir", box, "--max-size", "1K"]);
  try {
    const channel = await hostile(receiver.port);
    const stream = (name: string): Entry => ({
      kind: KIND_STREAM,
      mode: 0o644,
      mtime: 0,
      size: 0,
      name,
    });
    await offer(channel, [stream("s1"), stream("s2")]);
    for (const index of [0, 1]) {
      await channel.send(FRAME_FILE, encodeFileStart({ index, offset: 0 }));
      await channel.send(FRAME_DATA, new Uint8Array([CODEC_RAW]), new Uint8Array(600));
      await channel.send(FRAME_FILE_END, encodeFileEnd({ size: 600 }));
    }
    await expectError(channel, WIRE.TOO_LARGE);
    assertEquals(await exists(join(box, "s2")), false);
  } finally {
    await receiver.stop();
    await Deno.remove(box, { recursive: true });
  }
});

Deno.test("receiver: a path past PATH_MAX under a deep --dir refuses that entry, not the session", async () => {
  const box = await tempDir();
  // --dir itself about 3,900 bytes deep.
  let dir = box;
  while (dir.length < 3900) dir = join(dir, "d".repeat(200));
  await Deno.mkdir(dir, { recursive: true });
  const receiver = await startReceiver(["--dir", dir]);
  try {
    const channel = await hostile(receiver.port);
    const replies = await offer(channel, [file("x".repeat(240)), file("ok.txt")]);
    assertEquals(replies.map((r) => r.reason), [WIRE.BAD_NAME, 0]);
    channel.close();
  } finally {
    await receiver.stop();
    await Deno.remove(box, { recursive: true });
  }
});

Deno.test("a folder swapped for a link between two OFFER frames: the receiver says nothing of what is outside", async () => {
  const ctx = await setup();
  // Someone else's private folder, with a PIN in it.
  const secret = await tempDir();
  await Deno.writeTextFile(join(secret, "pin.txt"), "4821\n");
  await Deno.chmod(secret, 0o700);
  try {
    await Deno.mkdir(join(ctx.dst, "sub"));
    const channel = await hostile(ctx.receiver.port);
    // The first frame makes the receiver check sub/ (a real folder, made by a local user).
    const folder: Entry = { kind: KIND_DIR, mode: 0o755, mtime: 0, size: 0, name: "sub" };
    for (const batch of encodeOffer([folder])) await channel.send(FRAME_OFFER, batch);
    await channel.flush();
    assertEquals(decodeReplies(await channel.expect(FRAME_REPLY))[0]!.action, REPLY_SEND);
    // The local user swaps sub/ for a link to the private folder; the peer asks about pin.txt.
    await Deno.rename(join(ctx.dst, "sub"), join(ctx.dst, "sub-old"));
    await Deno.symlink(secret, join(ctx.dst, "sub"));
    for (const batch of encodeOffer([file("sub/pin.txt", 5)])) {
      await channel.send(FRAME_OFFER, batch);
    }
    await channel.send(FRAME_OFFER_END, encodeOfferEnd({ count: 2, totalBytes: 0 }));
    const reply = decodeReplies(await channel.expect(FRAME_REPLY))[0]!;
    // Not HAVE (which says the file exists, and its size): the folder is not the one checked.
    // (Had the receiver listed sub/ before the swap, that listing would answer SEND.)
    assertEquals(reply, { action: REPLY_REFUSE, offset: 0, reason: WIRE.SYMLINK });
    channel.close();
    assertEquals(await Deno.readTextFile(join(secret, "pin.txt")), "4821\n");
  } finally {
    await Deno.remove(join(ctx.dst, "sub"));
    await Deno.remove(secret, { recursive: true });
    await teardown(ctx);
  }
});

Deno.test("receiver --once: a file accepted and never sent is reported once, as failed, and exits 3 as section 8 says", async () => {
  const ctx = await setup(["--once", "--json"]);
  const channel = await hostile(ctx.receiver.port);
  await offer(channel, [file("never.txt")]);
  assertEquals(await finish(channel), [{ index: 0, status: WIRE.CANCELLED }]);
  const done = await ctx.receiver.finish();
  await teardown(ctx);
  assertEquals(done.code, EXIT.CONNECTION, done.stderr);
  const events = jsonLines(done.stdout).filter((e) => e.event === "file-done");
  assertEquals(events.length, 1, done.stdout);
  assertEquals([events[0]!.name, events[0]!.status], ["never.txt", "failed"]);
  assertMatch(String(events[0]!.reason), /the sender did not send it/);
});

Deno.test("receiver: a HAVE answered by a SKIP with another digest is one file-done event and one line", async () => {
  const ctx = await setup(["--once", "--json"]);
  await Deno.writeTextFile(join(ctx.dst, "pin.txt"), "4821\n");
  const channel = await hostile(ctx.receiver.port);
  assertEquals((await offer(channel, [file("pin.txt", 5)]))[0]!.action, REPLY_HAVE);
  const guess = digestOf(await createDigest(), new TextEncoder().encode("0000\n"));
  await channel.send(FRAME_SKIP, encodeSkip({ index: 0, digest: guess }));
  assertEquals(await finish(channel), [{ index: 0, status: WIRE.EXISTS }]);
  const done = await ctx.receiver.finish();
  await teardown(ctx);
  const events = jsonLines(done.stdout).filter((e) => e.event === "file-done");
  assertEquals(events.map((e) => [e.name, e.status]), [["pin.txt", "refused"]]);
  assertEquals(done.stderr.match(/pin\.txt: refused/g)?.length, 1, done.stderr);
});

Deno.test("receiver refuses a raw DATA chunk over 1 MiB, as it refuses a compressed one that decodes past it", async () => {
  const ctx = await setup();
  try {
    const size = (1 << 20) + 62;
    const channel = await hostile(ctx.receiver.port);
    await offer(channel, [file("big.bin", size)]);
    await channel.send(FRAME_FILE, encodeFileStart({ index: 0, offset: 0 }));
    await channel.send(FRAME_DATA, new Uint8Array([CODEC_RAW]), new Uint8Array(size));
    await expectError(channel, WIRE.PROTOCOL);
    assertEquals(await exists(join(ctx.dst, "big.bin")), false);
  } finally {
    await teardown(ctx);
  }
});

for (const mode of ["SKIP", "resumed FILE"] as const) {
  Deno.test(`a peer that sends a wrong digest in a ${mode} every 2.5 s is cut within about 2x --timeout, then 8/8 senders get in`, async () => {
    const box = await tempDir();
    const dst = join(box, "dst");
    const src = await tempDir();
    await Deno.mkdir(dst);
    // Files the receiver has (HAVE), or has partly (RESUME): 1 MiB each, all 4 s of credit.
    const size = 1 << 20;
    for (let i = 0; i < 20; i++) {
      const name = mode === "SKIP" ? `have${i}.bin` : `have${i}.bin.ferry-part`;
      await Deno.writeFile(join(dst, name), new Uint8Array(size).fill(i));
    }
    for (let i = 0; i < 8; i++) await Deno.writeTextFile(join(src, `legit${i}.txt`), `file ${i}`);
    const receiver = await startReceiver([
      "--dir",
      dst,
      "--timeout",
      "3",
      "--max-connections",
      "1",
    ]);
    try {
      const channel = await hostile(receiver.port);
      const entries = [...Array(20).keys()].map((i) => file(`have${i}.bin`, 2 * size));
      if (mode === "SKIP") { for (const entry of entries) entry.size = size; }
      const replies = await offer(channel, entries);
      assertEquals(replies[0]!.action, mode === "SKIP" ? REPLY_HAVE : REPLY_RESUME);
      const wrong = new Uint8Array(16).fill(0xee);
      const started = Date.now();
      let cut = false;
      for (let i = 0; i < 20 && !cut; i++) {
        try {
          if (mode === "SKIP") {
            await channel.send(FRAME_SKIP, encodeSkip({ index: i, digest: wrong }));
          } else {
            await channel.send(
              FRAME_FILE,
              encodeFileStart({ index: i, offset: size, digest: wrong }),
            );
            await channel.send(FRAME_FILE_END, encodeFileEnd({ size: 2 * size }));
          }
          await channel.flush();
          await new Promise((resolve) => setTimeout(resolve, 2500));
        } catch {
          cut = true;
        }
      }
      // The receiver closes: what we send next fails, or a read sees the end.
      if (!cut) {
        cut = await channel.recv().then(() => false, () => true);
      }
      const held = Date.now() - started;
      channel.close();
      assert(cut, `the peer held its slot for ${held} ms`);
      // Its own 3 s, plus at most 3 s earned by digests that proved different, plus a margin.
      assert(held < 9500, `cut only after ${held} ms`);
      let inside = 0;
      for (let i = 0; i < 8; i++) {
        const sent = await send([`127.0.0.1:${receiver.port}`, join(src, `legit${i}.txt`)]);
        if (sent.code === 0) inside++;
      }
      assertEquals(inside, 8);
    } finally {
      const done = await receiver.stop();
      assertMatch(done.stderr, /peer (too slow|stopped responding)/);
      await Deno.remove(box, { recursive: true });
      await Deno.remove(src, { recursive: true });
    }
  });
}

/** Bytes the process has read through read calls so far (files and sockets alike). */
function bytesRead(pid: number): number {
  const io = Deno.readTextFileSync(`/proc/${pid}/io`);
  return Number(/^rchar: (\d+)$/m.exec(io)![1]);
}

Deno.test("a peer cannot make the receiver read its files for digests much past what it sends: 40 wrong SKIPs read at most ~17 MiB", async () => {
  const ctx = await setup();
  try {
    const size = 1 << 20;
    for (let i = 0; i < 40; i++) {
      await Deno.writeFile(join(ctx.dst, `have${i}.bin`), new Uint8Array(size).fill(i));
    }
    const channel = await hostile(ctx.receiver.port);
    const entries = [...Array(40).keys()].map((i) => file(`have${i}.bin`, size));
    const before = bytesRead(ctx.receiver.process.pid);
    assert((await offer(channel, entries)).every((r) => r.action === REPLY_HAVE));
    const wrong = new Uint8Array(16).fill(0xee);
    for (let i = 0; i < 40; i++) {
      await channel.send(FRAME_SKIP, encodeSkip({ index: i, digest: wrong }));
    }
    const results = await finish(channel);
    const read = bytesRead(ctx.receiver.process.pid) - before;
    assertEquals(results.length, 40);
    assert(results.every((r) => r.status === WIRE.EXISTS));
    // 16 MiB of comparisons that prove different, and the one read that went past it.
    assert(read < 18 * size, `the receiver read ${read} bytes`);
    // Identical files are compared whatever was spent: they are useful, not charged.
    const again = await hostile(ctx.receiver.port);
    await offer(again, entries.slice(0, 20));
    for (let i = 0; i < 20; i++) {
      const digest = digestOf(await createDigest(), new Uint8Array(size).fill(i));
      await again.send(FRAME_SKIP, encodeSkip({ index: i, digest }));
    }
    assert((await finish(again)).every((r) => r.status === RESULT_IDENTICAL));
  } finally {
    for (let i = 0; i < 40; i++) await Deno.remove(join(ctx.dst, `have${i}.bin`));
    await teardown(ctx);
  }
});

Deno.test("DONE counts as section 6 says: the sender's, files it sent; the receiver's, files it wrote", async () => {
  // The sender's DONE, seen by a receiver that answers SEND, HAVE and REFUSE.
  const src = await tempDir();
  try {
    for (const name of ["a.txt", "b.txt", "c.txt"]) await Deno.writeTextFile(join(src, name), name);
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const sent = send([`127.0.0.1:${listener.addr.port}`, src]);
    const channel = new Channel(await listener.accept(), { timeoutMs: 10_000 });
    await handshake(channel, { role: "receiver", w: W, caps: COMPRESS_CAPS, confirmFirst: false });
    const offered: Entry[] = [];
    let frame = await channel.recv();
    for (; frame.type === FRAME_OFFER; frame = await channel.recv()) {
      offered.push(...decodeOffer(frame.payload));
    }
    const replies = offered.map((entry): Reply =>
      entry.kind === KIND_DIR || entry.name.endsWith("a.txt")
        ? { action: REPLY_SEND, offset: 0, reason: 0 }
        : entry.name.endsWith("b.txt")
        ? { action: REPLY_HAVE, offset: 0, reason: 0 }
        : { action: REPLY_REFUSE, offset: 0, reason: WIRE.EXISTS }
    );
    for (const batch of encodeReplies(replies)) await channel.send(FRAME_REPLY, batch);
    await channel.flush();
    for (frame = await channel.recv(); frame.type !== FRAME_DONE; frame = await channel.recv()) {
      assert([FRAME_SMALL_FILES, FRAME_SKIP].includes(frame.type), `frame ${frame.type}`);
    }
    assertEquals(decodeDone(frame.payload), { files: 1, bytes: 5 });
    const a = offered.findIndex((e) => e.name.endsWith("a.txt"));
    const b = offered.findIndex((e) => e.name.endsWith("b.txt"));
    for (
      const batch of encodeResults([
        { index: a, status: RESULT_OK },
        { index: b, status: RESULT_IDENTICAL },
      ])
    ) await channel.send(FRAME_RESULT, batch);
    await channel.send(FRAME_DONE, encodeDone({ files: 1, bytes: 5 }));
    await channel.flush();
    assertEquals((await sent).code, EXIT.REFUSED);
    channel.close();
  } finally {
    await Deno.remove(src, { recursive: true });
  }
  // The receiver's DONE: one file written, one identical (not counted), one never sent.
  const ctx = await setup();
  try {
    await Deno.writeTextFile(join(ctx.dst, "pin.txt"), "4821\n");
    const channel = await hostile(ctx.receiver.port);
    await offer(channel, [file("new.txt", 5), file("pin.txt", 5), file("never.txt", 5)]);
    await channel.send(
      FRAME_SMALL_FILES,
      new Uint8Array([CODEC_RAW]),
      encodeSmallFiles([{ index: 0, data: new TextEncoder().encode("fresh") }]),
    );
    const digest = digestOf(await createDigest(), new TextEncoder().encode("4821\n"));
    await channel.send(FRAME_SKIP, encodeSkip({ index: 1, digest }));
    await channel.send(FRAME_DONE, encodeDone({ files: 1, bytes: 5 }));
    let frame = await channel.recv();
    while (frame.type === FRAME_RESULT) frame = await channel.recv();
    assertEquals(frame.type, FRAME_DONE);
    assertEquals(decodeDone(frame.payload), { files: 1, bytes: 5 });
    channel.close();
  } finally {
    await teardown(ctx);
  }
});
