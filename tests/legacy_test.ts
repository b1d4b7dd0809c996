/**
 * `--legacy`: ferry against the classic Python tutorial scripts (tests/fixtures), both ways,
 * and the tutorial's wire quirks: a header glued to file bytes, unsafe names, lying sizes.
 */

import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  exists,
  readUntil,
  ROOT,
  run,
  sameFile,
  SENDER,
  startReceiver,
  tempDir,
  withDirs,
  withTimeout,
  writeRandomFile,
} from "./helpers.ts";

const PYTHON = await findPython();
const FIXTURES = join(ROOT, "tests/fixtures");

async function findPython(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("python3", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success ? "python3" : undefined;
  } catch {
    return undefined;
  }
}

/** Sends raw bytes in one write, as one TCP segment on loopback, then closes. */
async function rawSend(port: number, bytes: Uint8Array): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
  conn.close();
}

Deno.test({
  name: "tutorial sender.py -> ferry receiver --legacy --once",
  ignore: PYTHON === undefined,
  fn: async () => {
    await withDirs(async (src, dst) => {
      await writeRandomFile(join(src, "data.csv"), 1_000_003, 21);
      const receiver = await startReceiver(["--legacy", "--once", "--dir", dst]);
      const out = await new Deno.Command(PYTHON!, {
        args: [
          join(FIXTURES, "tutorial_sender.py"),
          "127.0.0.1",
          String(receiver.port),
          "data.csv",
        ],
        cwd: src,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert(out.success, new TextDecoder().decode(out.stderr));
      const received = await receiver.finish();
      assertEquals(received.code, 0, received.stderr);
      assert(await sameFile(join(src, "data.csv"), join(dst, "data.csv")));
    });
  },
});

Deno.test({
  name: "ferry sender --legacy -> tutorial receiver.py",
  ignore: PYTHON === undefined,
  fn: async () => {
    await withDirs(async (src, dst) => {
      await writeRandomFile(join(src, "photo.jpg"), 2_500_000, 22);
      const py = new Deno.Command(PYTHON!, {
        args: [join(FIXTURES, "tutorial_receiver.py"), "127.0.0.1", "0", dst],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = py.stdout.getReader();
      const port = Number((await readUntil(reader, /Listening as [\d.]+:(\d+)/)).match[1]);
      const sent = await run(SENDER, ["--legacy", `127.0.0.1:${port}`, join(src, "photo.jpg")]);
      assertEquals(sent.code, 0, sent.stderr);
      await reader.cancel();
      await py.stderr.cancel();
      assertEquals((await py.status).code, 0);
      assert(await sameFile(join(src, "photo.jpg"), join(dst, "photo.jpg")));
    });
  },
});

Deno.test("ferry sender --legacy -> ferry receiver --legacy", async () => {
  await withDirs(async (src, dst) => {
    await writeRandomFile(join(src, "x.bin"), 300_000, 23);
    const receiver = await startReceiver(["--legacy", "--once", "--dir", dst]);
    const sent = await run(SENDER, ["--legacy", `127.0.0.1:${receiver.port}`, join(src, "x.bin")]);
    const received = await receiver.finish();
    assertEquals([sent.code, received.code], [0, 0], sent.stderr + received.stderr);
    assert(await sameFile(join(src, "x.bin"), join(dst, "x.bin")));
  });
});

Deno.test("receiver --legacy copes with the header and file bytes in the same read, even digits", async () => {
  const dst = await tempDir();
  try {
    const receiver = await startReceiver(["--legacy", "--dir", dst]);
    const enc = new TextEncoder();
    await rawSend(receiver.port, enc.encode("/tmp/glued.txt<SEPARATOR>11hello world"));
    // The file itself starts with digits: "12345abc" is 8 bytes; greedy parsing reads 812345.
    await rawSend(receiver.port, enc.encode("digits.txt<SEPARATOR>812345abc"));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !(await exists(join(dst, "digits.txt")))) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await receiver.stop();
    assertEquals(await Deno.readTextFile(join(dst, "glued.txt")), "hello world");
    assertEquals(await Deno.readTextFile(join(dst, "digits.txt")), "12345abc");
  } finally {
    await Deno.remove(dst, { recursive: true });
  }
});

Deno.test("receiver --legacy applies the same name checks and refuses lying sizes", async () => {
  const box = await tempDir();
  const dst = join(box, "dst");
  await Deno.mkdir(dst);
  try {
    const receiver = await startReceiver(["--legacy", "--dir", dst]);
    const enc = new TextEncoder();
    await rawSend(receiver.port, enc.encode("../../escape.txt<SEPARATOR>4abcd"));
    await rawSend(receiver.port, enc.encode("x/..<SEPARATOR>4abcd"));
    await rawSend(receiver.port, enc.encode("bad\x1b[2Jname<SEPARATOR>4abcd"));
    await rawSend(receiver.port, enc.encode("long.txt<SEPARATOR>3abcdefgh"));
    await rawSend(receiver.port, enc.encode("short.txt<SEPARATOR>100abc"));
    await rawSend(receiver.port, enc.encode("no separator at all"));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !(await exists(join(dst, "short.txt.ferry-part")))) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 300));
    const done = await receiver.stop();
    // The tutorial keeps only the base name, so ../../escape.txt lands inside --dir.
    assertEquals(await Deno.readTextFile(join(dst, "escape.txt")), "abcd");
    assertEquals([...Deno.readDirSync(box)].map((e) => e.name), ["dst"]);
    assertMatch(done.stderr, /ferry: unsafe file name from legacy sender \('\.\.' component\)/);
    assertMatch(done.stderr, /ferry: unsafe file name from legacy sender \(control character\)/);
    assertMatch(done.stderr, /ferry: long\.txt: the sender sent more than the 3 bytes it declared/);
    assertMatch(done.stderr, /ferry: short\.txt: connection closed after 3 of 100 bytes/);
    assertMatch(done.stderr, /no <SEPARATOR>/);
    assertEquals(await exists(join(dst, "long.txt")), false);
    assertEquals(await exists(join(dst, "short.txt")), false);
    assert(!done.stderr.includes("\x1b[2J"));
  } finally {
    await Deno.remove(box, { recursive: true });
  }
});

Deno.test("sender --legacy refuses stdin with a usage error (exit 2)", async () => {
  const sent = await run(SENDER, ["--legacy", "127.0.0.1:1", "-"], { stdin: new Uint8Array(3) });
  assertEquals(sent.code, 2);
  assertMatch(sent.stderr, /--legacy sends exactly one regular file/);
});

Deno.test("receiver --legacy: a full header buffer with no size is refused at once, and the next sender is served", async () => {
  const dst = await tempDir();
  try {
    const receiver = await startReceiver(["--legacy", "--dir", dst]);
    const enc = new TextEncoder();
    // 8,192 bytes that end with <SEPARATOR> and no digits: the receiver used to spin at 100%.
    const header = enc.encode("A".repeat(8192 - "<SEPARATOR>".length) + "<SEPARATOR>");
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: receiver.port });
    await conn.write(header);
    const closed = await withTimeout(
      (async () => {
        const sink = new Uint8Array(1024);
        while ((await conn.read(sink).catch(() => null)) !== null) { /* drain */ }
      })(),
      10_000,
      "the receiver to hang up on the header",
    );
    conn.close();
    await closed;
    await rawSend(receiver.port, enc.encode("after.txt<SEPARATOR>5hello"));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !(await exists(join(dst, "after.txt")))) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const done = await receiver.stop();
    assertEquals(await Deno.readTextFile(join(dst, "after.txt")), "hello");
    assertMatch(done.stderr, /no size after <SEPARATOR> in 8192 bytes/);
  } finally {
    await Deno.remove(dst, { recursive: true });
  }
});

Deno.test("receiver --legacy: a header trickled a byte at a time is cut off after --timeout", async () => {
  const dst = await tempDir();
  try {
    const receiver = await startReceiver(["--legacy", "--once", "--timeout", "1", "--dir", dst]);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: receiver.port });
    const started = Date.now();
    // One byte every 300 ms: each read alone is within the 1 s idle limit.
    let cut = false;
    for (let i = 0; i < 40 && !cut; i++) {
      cut = await conn.write(new Uint8Array([0x61])).then(() => false, () => true);
      await new Promise((r) => setTimeout(r, 300));
    }
    conn.close();
    const done = await receiver.finish(20_000);
    assert(cut, "the receiver never hung up");
    assert(Date.now() - started < 8_000, `cut after ${Date.now() - started} ms`);
    assertEquals(done.code, 3, done.stderr);
  } finally {
    await Deno.remove(dst, { recursive: true });
  }
});

Deno.test("receiver --legacy: a header alone, then fewer bytes than declared, is a failure with the .ferry-part kept", async () => {
  const dst = await tempDir();
  try {
    const receiver = await startReceiver(["--legacy", "--once", "--dir", dst]);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: receiver.port });
    await conn.write(new TextEncoder().encode("short.bin<SEPARATOR>30000"));
    await new Promise((r) => setTimeout(r, 300));
    await conn.write(new Uint8Array(27).fill(0x7a));
    conn.close();
    const done = await receiver.finish();
    assertEquals(done.code, 5, done.stderr);
    assertMatch(done.stderr, /connection closed after 27 of 30000 bytes/);
    assertEquals(await exists(join(dst, "short.bin")), false);
    assertEquals((await Deno.stat(join(dst, "short.bin.ferry-part"))).size, 27);
  } finally {
    await Deno.remove(dst, { recursive: true });
  }
});

Deno.test("receiver --legacy: a symlink planted at the repair file's name is not followed", async () => {
  const dst = await tempDir();
  const outside = await tempDir();
  try {
    await Deno.writeTextFile(join(outside, "victim"), "untouched");
    await Deno.symlink(join(outside, "victim"), join(dst, "digits.txt.ferry-part.fix"));
    const receiver = await startReceiver(["--legacy", "--once", "--dir", dst]);
    await rawSend(receiver.port, new TextEncoder().encode("digits.txt<SEPARATOR>812345abc"));
    const done = await receiver.finish();
    assertEquals(done.code, 0, done.stderr);
    assertEquals(await Deno.readTextFile(join(dst, "digits.txt")), "12345abc");
    assertEquals(await Deno.readTextFile(join(outside, "victim")), "untouched");
  } finally {
    await Deno.remove(dst, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("receiver --legacy: two senders of one name at once: the second is refused, the first's file is whole", async () => {
  const dst = await tempDir();
  try {
    const receiver = await startReceiver(["--legacy", "--dir", dst]);
    const enc = new TextEncoder();
    const first = await Deno.connect({ hostname: "127.0.0.1", port: receiver.port });
    await first.write(enc.encode("same.txt<SEPARATOR>10"));
    await new Promise((r) => setTimeout(r, 300));
    await first.write(enc.encode("first"));
    await new Promise((r) => setTimeout(r, 300));
    await rawSend(receiver.port, enc.encode("same.txt<SEPARATOR>10second...."));
    await new Promise((r) => setTimeout(r, 300));
    await first.write(enc.encode("-half"));
    first.close();
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !(await exists(join(dst, "same.txt")))) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const done = await receiver.stop();
    assertEquals(await Deno.readTextFile(join(dst, "same.txt")), "first-half");
    assertMatch(done.stderr, /same\.txt is being received from another sender/);
  } finally {
    await Deno.remove(dst, { recursive: true });
  }
});

Deno.test("receiver --legacy: --dir swapped for a link mid-transfer: the repair and cleanup touch nothing outside", async () => {
  const box = await tempDir();
  const outside = await tempDir();
  const dst = join(box, "dst");
  try {
    await Deno.mkdir(dst);
    // Someone else's file, named as the receiver's partial file would be.
    await Deno.writeTextFile(join(outside, "digits.txt.ferry-part"), "theirs");
    const receiver = await startReceiver(["--legacy", "--once", "--dir", dst]);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: receiver.port });
    // Digits glued to the header: the receiver will repair its partial file at the end.
    await conn.write(new TextEncoder().encode("digits.txt<SEPARATOR>812345abc"));
    const part = join(dst, "digits.txt.ferry-part");
    for (let i = 0; i < 200 && !(await exists(part)); i++) {
      await new Promise((r) => setTimeout(r, 25));
    }
    assert(await exists(part), "the receiver made its partial file");
    // A local user moves --dir away and puts a link to their folder in its place.
    await Deno.rename(dst, join(box, "dst-moved"));
    await Deno.symlink(outside, dst);
    conn.close();
    const done = await receiver.finish();
    assert(done.code !== 0, done.stderr);
    assertEquals([...Deno.readDirSync(outside)].map((e) => e.name), ["digits.txt.ferry-part"]);
    assertEquals(await Deno.readTextFile(join(outside, "digits.txt.ferry-part")), "theirs");
  } finally {
    await Deno.remove(box, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("receiver --legacy: a body trickled at 20 B/s is cut by the minimum rate, as ferry's own wire is", async () => {
  const dst = await tempDir();
  try {
    const receiver = await startReceiver(["--legacy", "--once", "--dir", dst, "--timeout", "2"]);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: receiver.port });
    await conn.write(new TextEncoder().encode("slow.bin<SEPARATOR>100000"));
    const started = Date.now();
    let cut = false;
    // Ten bytes every half second: never silent for long, far below 1 KiB/s.
    for (let i = 0; i < 60 && !cut; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      cut = await conn.write(new Uint8Array(10)).then(() => false, () => true);
    }
    conn.close();
    const done = await receiver.finish();
    const held = Date.now() - started;
    assertEquals(done.code, 3, done.stderr);
    assertMatch(done.stderr, /peer too slow \(under 1 KiB\/s for 2 s\)/);
    // Its own 2 s and what its bytes earned (20 B/s buys ~20 ms a second), and a margin.
    assert(held < 9000, `the trickle held on for ${held} ms`);
  } finally {
    await Deno.remove(dst, { recursive: true });
  }
});

Deno.test("receiver --legacy suggests the tutorial's wire to the other side: no code, --legacy", async () => {
  const dst = await tempDir();
  try {
    const receiver = await startReceiver(["--legacy", "--dir", dst]);
    // The hint comes after the listening line: read all it said.
    const { stderr } = await receiver.stop();
    assertMatch(
      stderr,
      /in another terminal, run: \.\/sender\.ts --legacy 127\.0\.0\.1:\d+ FILE\.\.\./,
    );
    assert(!stderr.includes("FERRY_CODE"), stderr);
  } finally {
    await Deno.remove(dst, { recursive: true });
  }
});
