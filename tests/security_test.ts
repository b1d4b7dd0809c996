/**
 * Encryption and authentication, end to end: a man in the middle that tampers with the stream,
 * a capture that must hold no plaintext, the wrong-guess limit, and the code phrase kept out of
 * every output.
 */

import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertNotMatch, assertRejects } from "./assert.ts";
import {
  CODE,
  exists,
  jsonLines,
  listen,
  RECEIVER,
  run,
  sameFile,
  send,
  SENDER,
  sendOnce,
  startReceiver,
  tempDir,
  withDirs,
  writeRandomFile,
} from "./helpers.ts";
import { Channel } from "../lib/channel.ts";
import { AuthError, type FerryError, WIRE } from "../lib/errors.ts";
import { handshake } from "../lib/handshake.ts";
import { passwordScalar } from "../lib/code_phrase.ts";
import { COMPRESS_CAPS } from "../lib/compress.ts";
import { readFull } from "../lib/io.ts";
import { concat } from "../lib/spake2.ts";
import { encodePreamble, PREAMBLE_SIZE } from "../protocol.ts";

type Tamper = "none" | "flip" | "drop" | "reorder" | "replay" | "truncate";

/** Index of the sender's record to tamper with: 0-2 are the handshake, 6 is file data. */
const TARGET_RECORD = 6;

/**
 * A relay between sender and receiver that understands record boundaries (4-byte lengths after
 * the 8-byte preamble) in the sender-to-receiver direction, and can tamper with one record.
 * Everything it forwards is captured.
 */
function startRelay(targetPort: number, tamper: Tamper) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const captured: Uint8Array[] = [];
  const done = (async () => {
    const client = await listener.accept();
    listener.close();
    const server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    const back = pump(server, client, captured);
    await forwardRecords(client, server, tamper, captured);
    await back;
  })();
  return { port: (listener.addr as Deno.NetAddr).port, captured, done };
}

async function pump(from: Deno.Conn, to: Deno.Conn, captured: Uint8Array[]): Promise<void> {
  const buf = new Uint8Array(65536);
  try {
    while (true) {
      const got = await from.read(buf);
      if (got === null) break;
      captured.push(buf.slice(0, got));
      await to.write(buf.subarray(0, got));
    }
  } catch {
    // Either side went away; the test looks at exit codes.
  }
  // Pass the end on as a half-close, like a network path would: the other direction may
  // still be flowing.
  await to.closeWrite().catch(() => {});
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const out = new Uint8Array(n);
  return (await readFull(conn, out)) === n ? out : null;
}

async function forwardRecords(
  from: Deno.Conn,
  to: Deno.Conn,
  tamper: Tamper,
  captured: Uint8Array[],
) {
  const write = async (bytes: Uint8Array) => {
    captured.push(bytes);
    await to.write(bytes);
  };
  try {
    const preamble = await readExactly(from, PREAMBLE_SIZE);
    if (!preamble) return;
    await write(preamble);
    let held: Uint8Array | null = null;
    for (let index = 0;; index++) {
      const header = await readExactly(from, 4);
      if (!header) break;
      const length = new DataView(header.buffer).getUint32(0);
      const body = await readExactly(from, length);
      if (!body) break;
      const record = new Uint8Array(4 + length);
      record.set(header);
      record.set(body, 4);
      if (index === TARGET_RECORD) {
        if (tamper === "flip") record[record.length - 40]! ^= 0x01;
        if (tamper === "drop") continue;
        if (tamper === "reorder") {
          held = record;
          continue;
        }
        if (tamper === "replay") await write(record);
        if (tamper === "truncate") {
          await write(record.subarray(0, 1000));
          break;
        }
      }
      await write(record);
      if (held) {
        await write(held);
        held = null;
      }
    }
  } catch {
    // The receiver hung up on us: expected when it detects tampering.
  }
  for (const conn of [from, to]) {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

const MARKER = "FERRY-PLAINTEXT-MARKER-7f3a";

async function tamperRun(tamper: Tamper) {
  const src = await tempDir();
  const dst = await tempDir();
  const name = "secret-name-q9z.bin";
  await writeRandomFile(join(src, name), 3 * 1024 * 1024, 11);
  // A plaintext marker inside the data, to grep the capture for.
  using f = await Deno.open(join(src, name), { write: true });
  await f.seek(1_500_000, Deno.SeekMode.Start);
  await f.write(new TextEncoder().encode(MARKER.repeat(100)));
  const receiver = await startReceiver(["--once", "--dir", dst]);
  const relay = await startRelay(receiver.port, tamper);
  const sent = await send([`127.0.0.1:${relay.port}`, join(src, name)]);
  const received = await receiver.finish();
  await relay.done;
  const result = {
    sent,
    received,
    capture: new TextDecoder("latin1").decode(concat(...relay.captured)),
    final: await exists(join(dst, name)),
    part: await exists(join(dst, name + ".ferry-part")),
  };
  await Deno.remove(src, { recursive: true });
  await Deno.remove(dst, { recursive: true });
  return result;
}

Deno.test("a relay that changes nothing: the transfer succeeds and the capture holds no plaintext", async () => {
  const r = await tamperRun("none");
  assertEquals([r.sent.code, r.received.code], [0, 0], r.sent.stderr + r.received.stderr);
  assert(r.final);
  assert(!r.capture.includes(MARKER), "file bytes visible on the wire");
  assert(!r.capture.includes("secret-name-q9z"), "file name visible on the wire");
});

for (const tamper of ["flip", "drop", "reorder", "replay"] as const) {
  Deno.test(`a relay that does "${tamper}" to one data frame is detected: exit 5, no file`, async () => {
    const r = await tamperRun(tamper);
    assertEquals(r.received.code, 5, r.received.stderr);
    assertMatch(r.received.stderr, /ferry: a frame failed authentication/);
    assertEquals(r.sent.code, 5, r.sent.stderr);
    assertEquals(r.final, false);
  });
}

Deno.test("a relay that truncates the stream: no final file, the .ferry-part is kept, both sides fail", async () => {
  const r = await tamperRun("truncate");
  assertEquals(r.final, false);
  assertEquals(r.part, true);
  assertEquals(r.received.code, 3, r.received.stderr);
  // Said in words: what is kept, and how to go on.
  assertMatch(
    r.received.stderr,
    /ferry: the sender went away during \S+; [\d.]+ [KMG]?i?B of it kept as \S+\.ferry-part: run the same command again to resume/,
  );
  assert(r.sent.code !== 0, r.sent.stderr);
});

Deno.test("receiver stops accepting guesses after 10 wrong codes, while serving right ones", async () => {
  const dst = await tempDir();
  const src = await tempDir();
  const receiver = await startReceiver(["--dir", dst]);
  try {
    await writeRandomFile(join(src, "ok.bin"), 10_000, 2);
    const wrong = passwordScalar("1-not-the-code");
    const guess = async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: receiver.port });
      const channel = new Channel(conn);
      try {
        await assertRejects(
          () =>
            handshake(channel, {
              role: "sender",
              w: wrong,
              caps: COMPRESS_CAPS,
              confirmFirst: true,
            }),
          AuthError,
        );
      } finally {
        channel.close();
      }
    };
    for (let i = 0; i < 5; i++) await guess();
    // A right sender in between is still served.
    const good = await send([`127.0.0.1:${receiver.port}`, join(src, "ok.bin")]);
    assertEquals(good.code, 0, good.stderr);
    for (let i = 0; i < 5; i++) await guess();
    const done = await receiver.finish(20_000);
    assertEquals(done.code, 4);
    assertMatch(done.stderr, /ferry: too many wrong codes; no longer accepting senders/);
    const late = await send([`127.0.0.1:${receiver.port}`, join(src, "ok.bin")]);
    assertEquals(late.code, 3, "the listener is gone");
  } finally {
    await receiver.stop().catch(() => {});
    await Deno.remove(dst, { recursive: true });
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("a replayed handshake is refused as a wrong code, and nothing is written", async () => {
  const dst = await tempDir();
  try {
    // Record what a real sender says in a successful handshake...
    const first = await startReceiver(["--once", "--dir", dst]);
    const said: number[] = [];
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: first.port });
    const recording = new Proxy(conn, {
      get(target, prop) {
        if (prop === "write") {
          return (b: Uint8Array) => {
            said.push(...b);
            return target.write(b);
          };
        }
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const channel = new Channel(recording);
    const w = passwordScalar(CODE);
    await handshake(channel, { role: "sender", w, caps: COMPRESS_CAPS, confirmFirst: true });
    channel.close();
    await first.finish();
    // ...and play it back, byte for byte, to a receiver with the same code.
    const second = await startReceiver(["--once", "--dir", dst]);
    const replay = await Deno.connect({ hostname: "127.0.0.1", port: second.port });
    await replay.write(new Uint8Array(said));
    await replay.closeWrite();
    const sink = new Uint8Array(4096);
    while ((await replay.read(sink).catch(() => null)) !== null) { /* drain */ }
    replay.close();
    // --once means one authenticated transfer: the receiver is still waiting; stop it.
    const done = await second.stop();
    assertMatch(done.stderr, /ferry: wrong code/);
    assertEquals([...Deno.readDirSync(dst)], []);
  } finally {
    await Deno.remove(dst, { recursive: true });
  }
});

Deno.test("the code phrase never appears in --json events, errors or output", async () => {
  await withDirs(async (src, dst) => {
    await Deno.writeTextFile(join(src, "a.txt"), "hello");
    const { sent, received } = await sendOnce([join(src, "a.txt"), "--json"], [
      "--json",
      "--dir",
      dst,
    ]);
    const all = sent.stdout + sent.stderr + received.stdout + received.stderr;
    assertEquals([sent.code, received.code], [0, 0], all);
    assertNotMatch(all, new RegExp(CODE));
    const wrong = await startReceiver(["--once", "--json", "--dir", dst]);
    const bad = await send([`127.0.0.1:${wrong.port}`, join(src, "a.txt"), "--json"], {
      env: { FERRY_CODE: "99-secret-guess-phrase" },
    });
    // --once means one authenticated transfer: after a wrong code the receiver still waits.
    const badReceived = await wrong.stop();
    assertEquals(bad.code, 4);
    assertNotMatch(
      bad.stdout + bad.stderr + badReceived.stdout + badReceived.stderr,
      /99-secret-guess-phrase|42-absurd-ribbon/,
    );
    const error = jsonLines(bad.stdout).find((e) => e.event === "error")!;
    assertEquals(error, { event: "error", message: "wrong code", exit_code: 4 });
  });
});

Deno.test("30 wrong guesses at the same moment: at most 10 are tried, the rest are refused", async () => {
  const dst = await tempDir();
  const receiver = await startReceiver(["--dir", dst]);
  try {
    const wrong = passwordScalar("1-not-the-code");
    const guess = async (): Promise<unknown> => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: receiver.port });
      const channel = new Channel(conn);
      try {
        await handshake(channel, {
          role: "sender",
          w: wrong,
          caps: COMPRESS_CAPS,
          confirmFirst: true,
        });
        return undefined;
      } catch (error) {
        return error;
      } finally {
        channel.close();
      }
    };
    const errors = await Promise.all(Array.from({ length: 30 }, guess));
    const codes = errors.map((e) => (e as FerryError).wireCode);
    const tried = codes.filter((code) => code === WIRE.WRONG_CODE).length;
    assert(tried <= 10, `${tried} guesses were answered "wrong code"`);
    assert(tried >= 1, "no guess was tried at all");
    for (const code of codes) {
      assert(
        code === WIRE.WRONG_CODE || code === WIRE.TOO_MANY_ATTEMPTS,
        `unexpected outcome ${code}`,
      );
    }
  } finally {
    await receiver.stop().catch(() => {});
    await Deno.remove(dst, { recursive: true });
  }
});

Deno.test("a peer that sends only the preamble and hangs up does not end receiver --once", async () => {
  await withDirs(async (src, dst) => {
    await Deno.writeTextFile(join(src, "a.txt"), "still here");
    const receiver = await startReceiver(["--once", "--dir", dst]);
    const knock = await Deno.connect({ hostname: "127.0.0.1", port: receiver.port });
    await knock.write(encodePreamble());
    knock.close();
    await new Promise((r) => setTimeout(r, 200));
    const sent = await send([`127.0.0.1:${receiver.port}`, join(src, "a.txt")]);
    const received = await receiver.finish();
    assertEquals([sent.code, received.code], [0, 0], sent.stderr + received.stderr);
    assertEquals(await Deno.readTextFile(join(dst, "a.txt")), "still here");
  });
});

Deno.test("a FIFO named like an offered file, or like its partial file, is refused, and the receiver keeps serving", async () => {
  await withDirs(async (src, dst) => {
    for (const name of ["pipe.txt", "ok.txt", "later.txt"]) {
      await Deno.writeTextFile(join(src, name), name);
    }
    // Empty, like the FIFO: the same size invites comparing contents, which would open it.
    await Deno.writeTextFile(join(src, "fifo.txt"), "");
    for (const fifo of ["fifo.txt", "pipe.txt.ferry-part"]) {
      const made = await new Deno.Command("mkfifo", { args: [join(dst, fifo)] }).output();
      assert(made.success);
    }
    const receiver = await startReceiver(["--dir", dst]);
    try {
      const files = ["fifo.txt", "pipe.txt", "ok.txt"].map((n) => join(src, n));
      const first = await send([`127.0.0.1:${receiver.port}`, ...files], { timeoutMs: 20_000 });
      assertEquals(first.code, 6, first.stderr);
      assertEquals(await Deno.readTextFile(join(dst, "ok.txt")), "ok.txt");
      const later = await send([`127.0.0.1:${receiver.port}`, join(src, "later.txt")], {
        timeoutMs: 20_000,
      });
      assertEquals(later.code, 0, later.stderr);
      assert((await Deno.lstat(join(dst, "fifo.txt"))).isFifo, "the FIFO was replaced");
    } finally {
      await receiver.stop();
    }
  });
});

Deno.test("a NAME.part ferry did not make (a browser's download) is left alone when NAME arrives", async () => {
  await withDirs(async (src, dst) => {
    await writeRandomFile(join(src, "movie.mkv"), 300_000, 4);
    await Deno.writeTextFile(join(dst, "movie.mkv.part"), "the browser's bytes");
    const { sent, received } = await sendOnce([join(src, "movie.mkv")], ["--dir", dst]);
    assertEquals([sent.code, received.code], [0, 0], sent.stderr + received.stderr);
    assert(await sameFile(join(src, "movie.mkv"), join(dst, "movie.mkv")));
    assertEquals(await Deno.readTextFile(join(dst, "movie.mkv.part")), "the browser's bytes");
  });
});

Deno.test("an existing folder keeps its mode and is not given the sender's time; what ferry makes follows the umask", async () => {
  await withDirs(async (src, dst) => {
    await Deno.mkdir(join(src, "private", "new"), { recursive: true });
    await Deno.writeTextFile(join(src, "private", "new", "a.txt"), "a");
    await Deno.chmod(join(src, "private"), 0o775);
    await Deno.chmod(join(src, "private", "new"), 0o775);
    await Deno.chmod(join(src, "private", "new", "a.txt"), 0o664);
    const senders = new Date(1_000_000);
    await Deno.utime(join(src, "private"), senders, senders);
    await Deno.mkdir(join(dst, "private"));
    await Deno.chmod(join(dst, "private"), 0o700);
    const then = new Date(1_700_000_000_000);
    await Deno.utime(join(dst, "private"), then, then);
    const receiver = await startReceiver(["--once", "--dir", dst], { umask: 0o077 });
    const sent = await send([`127.0.0.1:${receiver.port}`, join(src, "private")]);
    const received = await receiver.finish();
    assertEquals([sent.code, received.code], [0, 0], sent.stderr + received.stderr);
    const kept = await Deno.stat(join(dst, "private"));
    assertEquals(kept.mode! & 0o777, 0o700);
    // Adding "new" inside moved its time on; the sender's time was not put on it.
    assert(kept.mtime!.getTime() >= then.getTime(), `time set to ${kept.mtime?.toISOString()}`);
    assertEquals((await Deno.stat(join(dst, "private", "new"))).mode! & 0o777, 0o700);
    assertEquals((await Deno.stat(join(dst, "private", "new", "a.txt"))).mode! & 0o777, 0o600);
  });
});

Deno.test("sender --listen: a file swapped for a symlink after it was listed is not read for the next receiver", async () => {
  await withDirs(async (src, dst) => {
    const share = join(src, "share");
    await Deno.mkdir(share);
    await Deno.writeTextFile(join(share, "notes.txt"), "public notes");
    const secret = join(src, "id_secret");
    await Deno.writeTextFile(secret, "PRIVATE KEY MATERIAL");
    const sender = await listen(SENDER, ["--listen", "--port", "0", "--host", "127.0.0.1", share], {
      env: { FERRY_CODE: CODE },
    });
    try {
      const first = await run(RECEIVER, [
        "--connect",
        `127.0.0.1:${sender.port}`,
        "--dir",
        join(dst),
      ], { env: { FERRY_CODE: CODE } });
      assertEquals(first.code, 0, first.stderr);
      // Between two receivers, the listed file becomes a link to a secret.
      await Deno.remove(join(share, "notes.txt"));
      await Deno.symlink(secret, join(share, "notes.txt"));
      const second = join(dst, "second");
      await Deno.mkdir(second);
      const got = await run(RECEIVER, ["--connect", `127.0.0.1:${sender.port}`, "--dir", second], {
        env: { FERRY_CODE: CODE },
      });
      assert(got.code !== 0, "the swapped file was sent as if nothing happened");
      const landed = await Deno.readTextFile(join(second, "share", "notes.txt")).catch(() => "");
      assert(!landed.includes("PRIVATE"), "the secret behind the link was sent");
    } finally {
      await sender.stop();
    }
  });
});
