/**
 * Resilience: resume from a .ferry-part, kill -9 at random points and run again, a full disk, many
 * senders at once with hostile ones among them.
 */

import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  CODE,
  exists,
  jsonLines,
  listen,
  randomBytes,
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
  xxh128Of,
} from "./helpers.ts";

const MiB = 1024 * 1024;

async function copyPrefix(
  from: string,
  to: string,
  length: number,
  corrupt = false,
): Promise<void> {
  const bytes = (await Deno.readFile(from)).subarray(0, length);
  if (corrupt) bytes[length - 1] = bytes[length - 1]! ^ 0xff;
  await Deno.writeFile(to, bytes);
}

Deno.test("ferry resumes from NAME.ferry-part: only the rest is sent, and the result is verified", async () => {
  await withDirs(async (src, dst) => {
    await writeRandomFile(join(src, "big.bin"), 5 * MiB + 123, 31);
    await writeRandomFile(join(src, "other.bin"), 3 * MiB, 32);
    await copyPrefix(join(src, "big.bin"), join(dst, "big.bin.ferry-part"), 2 * MiB + 7);
    await copyPrefix(join(src, "other.bin"), join(dst, "other.bin.ferry-part"), MiB, true);
    const { sent, received } = await sendOnce([
      join(src, "big.bin"),
      join(src, "other.bin"),
      "--json",
      "--hash",
    ], ["--dir", dst, "--json", "--hash"]);
    assertEquals([sent.code, received.code], [0, 0], sent.stderr + received.stderr);
    assert(await sameFile(join(src, "big.bin"), join(dst, "big.bin")));
    assert(await sameFile(join(src, "other.bin"), join(dst, "other.bin")));
    const starts = jsonLines(sent.stdout).filter((e) => e.event === "file-start");
    // The good prefix is resumed. The sender offers to resume the corrupt one too, with the
    // digest of its own first MiB; the receiver's bytes differ, it says RESTART, and the file
    // comes again from zero (in the same run: no failure, no second command).
    assertEquals(starts.map((e) => [e.name, e.offset]), [
      ["big.bin", 2 * MiB + 7],
      ["other.bin", MiB],
      ["other.bin", 0],
    ]);
    const done = jsonLines(received.stdout).find((e) => e.event === "done")!;
    assertEquals(done.bytes, 5 * MiB + 123 - (2 * MiB + 7) + 3 * MiB);
    assertEquals(done.resumed_bytes, 2 * MiB + 7);
    assertEquals(await exists(join(dst, "big.bin.ferry-part")), false);
    // --hash covers the whole file on both sides, the resumed prefix included.
    const expected = [
      ["big.bin", await xxh128Of(join(src, "big.bin"))],
      ["other.bin", await xxh128Of(join(src, "other.bin"))],
    ];
    for (const out of [sent.stdout, received.stdout]) {
      const fileDone = jsonLines(out).filter((e) => e.event === "file-done");
      assertEquals(fileDone.map((e) => [e.name, e.hash]), expected);
    }
  });
});

/** Waits (bounded) until the .ferry-part file holds at least `bytes`. */
async function waitForPart(path: string, bytes: number, timeoutMs = 20_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const size = await Deno.stat(path).then((i) => i.size).catch(() => 0);
    if (size >= bytes) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return false;
}

for (const victim of ["sender", "receiver"] as const) {
  Deno.test(`kill -9 the ${victim} at random points, run again: the file completes and verifies`, async () => {
    const src = await tempDir();
    const dst = await tempDir();
    const size = 96 * MiB;
    const trials = Number(Deno.env.get("FERRY_KILL_TRIALS") ?? 2);
    let kills = 0;
    try {
      await writeRandomFile(join(src, "movie.bin"), size, 41);
      for (let trial = 0; trial < trials; trial++) {
        const have = await Deno.stat(join(dst, "movie.bin.ferry-part")).then((i) => i.size).catch(
          () => 0,
        );
        // Too close to the end to pick a kill point: the final run below finishes it.
        if (have >= size - 2 * MiB) break;
        const receiver = await startReceiver(["--once", "--dir", dst]);
        const sender = new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", SENDER, `127.0.0.1:${receiver.port}`, join(src, "movie.bin")],
          env: { FERRY_CODE: CODE },
          stdout: "null",
          stderr: "null",
        }).spawn();
        const target = have + Math.floor(Math.random() * (size - have) * 0.5) + MiB;
        const reached = await waitForPart(
          join(dst, "movie.bin.ferry-part"),
          Math.min(target, size - MiB),
        );
        try {
          if (victim === "sender") sender.kill("SIGKILL");
          else receiver.process.kill("SIGKILL");
          kills++;
        } catch {
          // Near the end the transfer can finish before the kill lands: the check below sees it.
        }
        await sender.status;
        await (victim === "sender" ? receiver.finish() : receiver.finish().catch(() => null));
        assert(
          reached || await exists(join(dst, "movie.bin")),
          `trial ${trial} never reached its kill point`,
        );
        if (await exists(join(dst, "movie.bin"))) break;
      }
      console.log(`kill test: ${kills} kills of the ${victim}, then a final run`);
      assert(kills > 0, "no kill landed before the transfer finished");
      // Same commands again: resume and finish.
      const { sent, received } = await sendOnce([join(src, "movie.bin"), "--json"], [
        "--dir",
        dst,
        "--json",
      ]);
      assertEquals([sent.code, received.code], [0, 0], sent.stderr + received.stderr);
      assert(await sameFile(join(src, "movie.bin"), join(dst, "movie.bin")));
      const start = jsonLines(sent.stdout).find((e) => e.event === "file-start");
      const skipped = jsonLines(sent.stdout).find((e) =>
        e.event === "file-done" && e.status === "identical"
      );
      assert(
        skipped || (start && Number(start.offset) > 0),
        "the rerun resumed instead of starting over",
      );
    } finally {
      await Deno.remove(src, { recursive: true });
      await Deno.remove(dst, { recursive: true });
    }
  });
}

/** Whether this machine lets us mount a tmpfs (it needs root): tried once, before the tests. */
const CAN_MOUNT = await (async () => {
  const probe = await tempDir();
  try {
    const mounted = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=1m", "tmpfs", probe],
      stdout: "null",
      stderr: "null",
    }).output().then((o) => o.success).catch(() => false);
    if (mounted) await new Deno.Command("umount", { args: [probe] }).output();
    return mounted;
  } finally {
    await Deno.remove(probe, { recursive: true });
  }
})();
// A test that cannot run is reported as ignored, with the reason here; never as passed.
if (!CAN_MOUNT) console.log("SKIP full-disk tests: cannot mount a tmpfs here; it needs root");

/** Runs `fn` with a small tmpfs mounted on a fresh folder (mount options `options`). */
async function withTmpfs(options: string, fn: (mount: string) => Promise<void>): Promise<void> {
  const mount = await tempDir();
  const mounted = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", options, "tmpfs", mount],
    stdout: "null",
    stderr: "null",
  }).output().then((o) => o.success).catch(() => false);
  try {
    assert(mounted, `could not mount a tmpfs (${options}), though a probe could`);
    await fn(mount);
  } finally {
    if (mounted) await new Deno.Command("umount", { args: [mount] }).output();
    await Deno.remove(mount, { recursive: true });
  }
}

Deno.test("a small file replaces a stale NAME.ferry-part it cannot resume from, and removes it", async () => {
  await withDirs(async (src, dst) => {
    await Deno.writeTextFile(join(src, "small.txt"), "the real content\n");
    await Deno.writeTextFile(join(src, "other.txt"), "resumable? no: the prefix differs\n");
    // Longer than the file: no resume. A prefix that differs: the sender restarts from 0.
    await Deno.writeTextFile(join(dst, "small.txt.ferry-part"), "x".repeat(1000));
    await Deno.writeTextFile(join(dst, "other.txt.ferry-part"), "RESUMABLE");
    const { sent, received } = await sendOnce([
      join(src, "small.txt"),
      join(src, "other.txt"),
    ], ["--dir", dst]);
    assertEquals([sent.code, received.code], [0, 0], sent.stderr + received.stderr);
    for (const name of ["small.txt", "other.txt"]) {
      assert(await sameFile(join(src, name), join(dst, name)), name);
      assertEquals(
        await exists(join(dst, `${name}.ferry-part`)),
        false,
        `${name}.part left behind`,
      );
    }
  });
});

Deno.test({
  name: "a file larger than the free space is refused before a byte is written, with the numbers",
  ignore: !CAN_MOUNT,
}, async () => {
  await withTmpfs("size=2m", (mount) =>
    withDirs(async (src) => {
      await writeRandomFile(join(src, "huge.bin"), 6 * MiB, 51);
      await Deno.writeTextFile(join(mount, "keep.txt"), "already here");
      const { sent, received } = await sendOnce([join(src, "huge.bin")], ["--dir", mount]);
      assertEquals(sent.code, 6, sent.stderr);
      assertMatch(sent.stderr, /huge\.bin: refused \(receiver has no space left\)/);
      assertMatch(
        received.stderr,
        /huge\.bin: refused \(receiver has no space left: 6\.00 MiB offered, [\d.]+ [KM]iB free\)/,
      );
      assertEquals(await exists(join(mount, "huge.bin.ferry-part")), false);
      assertEquals(await exists(join(mount, "huge.bin")), false);
      assertEquals(await Deno.readTextFile(join(mount, "keep.txt")), "already here");
    }));
});

Deno.test({
  name:
    "a disk that fills during a stream: the sender hears 'no space left' (exit 6), the part is kept",
  ignore: !CAN_MOUNT,
}, async () => {
  await withTmpfs("size=2m", (mount) =>
    withDirs(async () => {
      // Standard input has no size in the offer: only the full disk can stop it.
      const data = randomBytes(6 * MiB, 52);
      const receiver = await startReceiver(["--once", "--dir", mount]);
      const sent = await send([`127.0.0.1:${receiver.port}`, "-", "--name", "huge.bin"], {
        stdin: data,
      });
      const received = await receiver.finish();
      assertEquals(received.code, 6, received.stderr);
      assertEquals(sent.code, 6, sent.stderr);
      assertMatch(sent.stderr, /ferry: receiver has no space left for huge\.bin/);
      // Said once, not "no space left: receiver has no space left for …".
      assert(!/no space left: receiver has no space left/.test(sent.stderr), sent.stderr);
      assertMatch(
        received.stderr,
        /ferry: receiver has no space left for huge\.bin; the partial file is kept/,
      );
      assert(await exists(join(mount, "huge.bin.ferry-part")));
      assertEquals(await exists(join(mount, "huge.bin")), false);
    }));
});

Deno.test({
  name: "a full disk during small files: every file under its own name is whole",
  ignore: !CAN_MOUNT,
}, async () => {
  await withTmpfs("size=2m", (mount) =>
    withDirs(async (src) => {
      const folder = join(src, "many");
      await Deno.mkdir(folder);
      for (let i = 0; i < 60; i++) {
        await writeRandomFile(join(folder, `f${String(i).padStart(2, "0")}.bin`), 48 * 1024, i);
      }
      const { sent, received } = await sendOnce([folder], ["--dir", mount]);
      assertEquals(received.code, 6, received.stderr);
      assertEquals(sent.code, 6, sent.stderr);
      assertMatch(received.stderr, /receiver has no space left/);
      const landed: string[] = [];
      for await (const item of Deno.readDir(join(mount, "many"))) landed.push(item.name);
      // Some fitted, and each that did is complete; a file cut short by the full disk is gone.
      assert(landed.length > 10 && landed.length < 60, `${landed.length} files landed`);
      for (const name of landed) {
        assert(!name.endsWith(".ferry-part"), name);
        assert(await sameFile(join(folder, name), join(mount, "many", name)), name);
      }
    }));
});

Deno.test("64 senders at once, good and hostile mixed: every good file verified", async () => {
  await withDirs(async (src, dst) => {
    // Inputs first, then the clock: 48 processes starting at once on a busy machine already
    // take seconds, so the timeout is generous too (this is about concurrency, not timeouts).
    const good: string[] = [];
    for (let i = 0; i < 64; i++) {
      if (i % 4 === 3 || i % 8 === 2) continue;
      const name = `good-${i}.bin`;
      await writeRandomFile(join(src, name), 64 * 1024 + i, 60 + i);
      good.push(name);
    }
    const receiver = await startReceiver(["--dir", dst, "--timeout", "20"]);
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < 64; i++) {
      if (i % 4 === 3) {
        // Hostile: garbage, then hang up.
        jobs.push((async () => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: receiver.port });
          await conn.write(new TextEncoder().encode("garbage garbage garbage"));
          conn.close();
        })());
      } else if (i % 8 === 2) {
        // Wrong code: 8 of them, under the listener's limit of 10.
        jobs.push(
          send([`127.0.0.1:${receiver.port}`, join(src, "good-0.bin")], {
            env: { FERRY_CODE: `${i}-wrong` },
          }),
        );
      } else {
        jobs.push(
          send([`127.0.0.1:${receiver.port}`, join(src, `good-${i}.bin`)]).then((r) =>
            assertEquals(r.code, 0, r.stderr)
          ),
        );
      }
    }
    await Promise.all(jobs);
    await receiver.stop();
    for (const name of good) assert(await sameFile(join(src, name), join(dst, name)), name);
  });
});

Deno.test("receiver --max-connections 1: a second sender is told the receiver is busy (exit 6)", async () => {
  const src = await tempDir();
  const dst = await tempDir();
  const receiver = await startReceiver(["--dir", dst, "--max-connections", "1", "--timeout", "60"]);
  // The one slot is held by a real, authenticated transfer that is waiting on its standard
  // input: no clock runs out on it while the second sender starts, however busy the machine.
  const hog = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SENDER, `127.0.0.1:${receiver.port}`, "-", "--name", "hold.bin"],
    env: { FERRY_CODE: CODE },
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const hogInput = hog.stdin.getWriter();
  try {
    await hogInput.write(new Uint8Array([1]));
    // Its file has begun on the receiver: the slot is taken.
    for (let i = 0; i < 300 && !(await exists(join(dst, "hold.bin.ferry-part"))); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert(await exists(join(dst, "hold.bin.ferry-part")), "the first transfer did not begin");
    await Deno.writeTextFile(join(src, "a.txt"), "a");
    const sent = await send([`127.0.0.1:${receiver.port}`, join(src, "a.txt")]);
    assertEquals(sent.code, 6, sent.stderr);
    assertMatch(sent.stderr, /ferry: receiver is busy \(too many connections\); try again later/);
  } finally {
    hog.kill("SIGKILL");
    await hog.status;
    await hogInput.close().catch(() => {});
    await receiver.stop();
    await Deno.remove(src, { recursive: true });
    await Deno.remove(dst, { recursive: true });
  }
});

Deno.test({
  name: "a read-only target: the sender hears that the receiver could not write (exit 1)",
  ignore: !CAN_MOUNT,
}, async () => {
  await withTmpfs("ro,size=1m", (mount) =>
    withDirs(async (src) => {
      await Deno.mkdir(join(src, "folder"));
      await Deno.writeTextFile(join(src, "folder/a.txt"), "a");
      const { sent, received } = await sendOnce([join(src, "folder")], ["--dir", mount]);
      assertEquals([sent.code, received.code], [1, 1], sent.stderr + received.stderr);
      assertMatch(sent.stderr, /ferry: peer: receiver could not write the file/);
      assertMatch(received.stderr, /ferry: .*[Rr]ead-only file system/);
      assert(!sent.stderr.includes(mount), "the receiver's local path leaked to the sender");
    }));
});

Deno.test("a receiver out of file descriptors keeps serving: it accepts again once some close", async () => {
  await withDirs(async (src, dst) => {
    await Deno.writeTextFile(join(src, "late.txt"), "served");
    const receiver = await startReceiver(["--dir", dst, "--timeout", "5"], { fdLimit: 48 });
    const hogs: Deno.Conn[] = [];
    try {
      // Far more connections than descriptors left to the receiver.
      for (let i = 0; i < 60; i++) {
        hogs.push(await Deno.connect({ hostname: "127.0.0.1", port: receiver.port }));
      }
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      for (const hog of hogs) hog.close();
    }
    const sent = await send([`127.0.0.1:${receiver.port}`, join(src, "late.txt")]);
    const done = await receiver.stop();
    assertEquals(sent.code, 0, sent.stderr + done.stderr);
    assertEquals(await Deno.readTextFile(join(dst, "late.txt")), "served");
    assertMatch(done.stderr, /cannot accept a connection now \(Too many open files/);
  });
});

Deno.test("64 silent connections from one address cannot keep a sender from another address out", async () => {
  await withDirs(async (src, dst) => {
    await Deno.writeTextFile(join(src, "a.txt"), "got in");
    // Dual-stack: the hog comes from 127.0.0.1, the sender from ::1, two addresses.
    const receiver = await startReceiver(["--dir", dst, "--host", "::"]);
    const silent: Deno.Conn[] = [];
    try {
      for (let i = 0; i < 64; i++) {
        silent.push(await Deno.connect({ hostname: "127.0.0.1", port: receiver.port }));
      }
      await new Promise((r) => setTimeout(r, 300));
      const sent = await send([`[::1]:${receiver.port}`, join(src, "a.txt")]);
      assertEquals(sent.code, 0, sent.stderr);
      assertEquals(await Deno.readTextFile(join(dst, "a.txt")), "got in");
    } finally {
      for (const conn of silent) conn.close();
      await receiver.stop();
    }
  });
});

/**
 * Keeps `count` connections to `port` open from 127.0.0.1, each trickling the preamble a byte
 * every 400 ms (never finishing a handshake), and opens a new one when one is dropped.
 */
function flood(port: number, count: number) {
  let running = true;
  const open = new Set<Deno.TcpConn>();
  const one = async () => {
    for (let round = 0; running && round < 50; round++) {
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        open.add(conn);
        try {
          for (let i = 0; running && i < 200; i++) {
            await conn.write(new Uint8Array([0x46]));
            await new Promise((resolve) => setTimeout(resolve, 400));
          }
        } finally {
          open.delete(conn);
          try {
            conn.close();
          } catch {
            // Closed by the peer.
          }
        }
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };
  const all = Promise.all([...Array(count)].map(one));
  return {
    open,
    stop: async () => {
      running = false;
      for (const conn of open) conn.close();
      await all;
    },
  };
}

async function untilFlooded(open: Set<Deno.TcpConn>, count: number): Promise<void> {
  for (let i = 0; i < 100 && open.size < count; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assertEquals(open.size, count);
}

Deno.test("64 connections from our own address that never finish a handshake: 12+ of 13 senders behind it still get in", async () => {
  const src = await tempDir();
  const dst = await tempDir();
  for (let i = 0; i < 13; i++) await Deno.writeTextFile(join(src, `f${i}.txt`), `file ${i}`);
  const receiver = await startReceiver(["--dir", dst, "--max-connections", "64"]);
  const attack = flood(receiver.port, 64);
  try {
    await untilFlooded(attack.open, 64);
    let inside = 0;
    for (let i = 0; i < 13; i++) {
      const sent = await send([`127.0.0.1:${receiver.port}`, join(src, `f${i}.txt`)]);
      if (sent.code === 0) inside++;
    }
    assert(inside >= 12, `${inside} of 13 senders got in`);
  } finally {
    await attack.stop();
    await receiver.stop();
    await Deno.remove(src, { recursive: true });
    await Deno.remove(dst, { recursive: true });
  }
});

Deno.test("sender --listen: 64 connections from our own address that never finish a handshake: 12+ of 13 receivers still get in", async () => {
  const src = await tempDir();
  const dst = await tempDir();
  await Deno.writeTextFile(join(src, "notes.txt"), "notes");
  const sender = await listen(
    SENDER,
    ["--listen", "--port", "0", "--host", "127.0.0.1", src],
    { env: { FERRY_CODE: CODE } },
  );
  const attack = flood(sender.port, 64);
  try {
    await untilFlooded(attack.open, 64);
    let inside = 0;
    for (let i = 0; i < 13; i++) {
      const got = await run(
        RECEIVER,
        ["--connect", `127.0.0.1:${sender.port}`, "--dir", join(dst, String(i))],
        { env: { FERRY_CODE: CODE } },
      );
      if (got.code === 0) inside++;
    }
    assert(inside >= 12, `${inside} of 13 receivers got in`);
  } finally {
    await attack.stop();
    await sender.stop();
    await Deno.remove(src, { recursive: true });
    await Deno.remove(dst, { recursive: true });
  }
});
