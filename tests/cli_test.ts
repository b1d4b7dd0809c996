/**
 * The command line as a user meets it: help, usage errors, exit codes, --json events, --quiet.
 */

import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  CODE,
  jsonLines,
  listTree,
  RECEIVER,
  run,
  send,
  SENDER,
  sendOnce,
  startReceiver,
  startUntil,
  tempDir,
  withDirs,
  writeRandomFile,
  xxh128Of,
} from "./helpers.ts";

for (const [script, name] of [[SENDER, "sender.ts"], [RECEIVER, "receiver.ts"]] as const) {
  Deno.test(`ferry ${name} --help shows USAGE, OPTIONS, EXAMPLES, EXIT CODES, ENVIRONMENT`, async () => {
    const help = await run(script, ["--help"]);
    assertEquals(help.code, 0);
    for (const section of ["USAGE:", "OPTIONS:", "EXAMPLES:", "EXIT CODES:", "ENVIRONMENT:"]) {
      assert(help.stdout.includes(section), section);
    }
    for (const code of ["0 ", "1 ", "2 ", "3 ", "4 ", "5 ", "6 ", "130 "]) {
      assertMatch(help.stdout, new RegExp(`^  ${code}`, "m"));
    }
    // It fits an 80-column terminal without wrapping.
    for (const line of help.stdout.split("\n")) assert(line.length <= 79, `too wide: ${line}`);
  });

  Deno.test(`ferry ${name} --bogus is a usage error: one line, exit 2`, async () => {
    const out = await run(script, ["--bogus"]);
    assertEquals(out.code, 2);
    assertMatch(out.stderr, /^ferry: unknown option --bogus; see --help\n$/);
    assert(!out.stderr.includes("    at "), "no stack trace");
  });
}

Deno.test("an IPv6 address with what looks like a port asks which was meant", async () => {
  const { parseAddress } = await import("../lib/cli.ts");
  assertEquals(parseAddress("[::1]:5012", 5001), { host: "::1", port: 5012 });
  assertEquals(parseAddress("[::1:5012]", 5001), { host: "::1:5012", port: 5001 });
  assertEquals(parseAddress("fe80::1", 5001), { host: "fe80::1", port: 5001 });
  const out = await run(SENDER, ["::1:5012", "x", "--code", "1-a-b"]);
  assertEquals(out.code, 2);
  assertMatch(
    out.stderr,
    /::1:5012 is ambiguous: write \[::1\]:5012 for port 5012, or \[::1:5012\]/,
  );
});

Deno.test("an option of the other script is named as such", async () => {
  const out = await run(SENDER, ["--overwrite", "x"]);
  assertEquals(out.code, 2);
  assertEquals(
    out.stderr,
    "ferry: --overwrite is an option of receiver.ts, not of this script; see --help\n",
  );
});

Deno.test("ferry sender with no code phrase is a usage error (exit 2)", async () => {
  const dir = await tempDir();
  await Deno.writeTextFile(join(dir, "a"), "x");
  const out = await run(SENDER, ["127.0.0.1:1", join(dir, "a")]);
  assertEquals(out.code, 2);
  assertMatch(out.stderr, /ferry: no code phrase: set FERRY_CODE/);
  await Deno.remove(dir, { recursive: true });
});

/** Runs a script with exactly `flags` as its permissions, no terminal, and FERRY_CODE set. */
async function withPermissions(script: string, flags: string[], args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, script, ...args],
    env: { FERRY_CODE: CODE, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("a missing Deno permission is found at start and named with its flag, never asked mid-transfer", () =>
  withDirs(async (src, dst) => {
    await Deno.writeTextFile(join(src, "a"), "x");
    // FERRY_CODE is set, but the sender may not read it.
    const noEnv = await withPermissions(SENDER, ["--allow-net", "--allow-read"], [
      "127.0.0.1:1",
      join(src, "a"),
    ]);
    assertEquals(noEnv.code, 2);
    assertMatch(noEnv.stderr, /FERRY_CODE cannot be read without --allow-env=FERRY_CODE/);
    // The sender without --allow-read: not "no such file".
    const noRead = await withPermissions(SENDER, ["--allow-net", "--allow-env"], [
      "127.0.0.1:1",
      join(src, "a"),
    ]);
    assertEquals(noRead.code, 2);
    assertMatch(noRead.stderr, /deno needs --allow-read for this \(reading \S+\/a\)/);
    // Reading granted for just the path sent is enough (then the closed port is the error).
    const narrow = await withPermissions(SENDER, [
      "--allow-net",
      "--allow-env",
      `--allow-read=${src}`,
    ], [
      "127.0.0.1:1",
      join(src, "a"),
    ]);
    assertEquals(narrow.code, 3, narrow.stderr);
    // The receiver without --allow-read/--allow-write: not "--dir is not a folder".
    const bare = await withPermissions(RECEIVER, ["--allow-net", "--allow-env"], ["--dir", dst]);
    assertEquals(bare.code, 2);
    assertMatch(
      bare.stderr,
      new RegExp(`deno needs --allow-read=${dst} --allow-write=${dst} for this`),
    );
    // Only --allow-write missing: said at start, before any sender arrives.
    const noWrite = await withPermissions(
      RECEIVER,
      ["--allow-net", "--allow-env", "--allow-read"],
      [
        "--dir",
        dst,
      ],
    );
    assertEquals(noWrite.code, 2);
    assertMatch(
      noWrite.stderr,
      new RegExp(`--allow-write=${dst} for this \\(writing into ${dst}\\)`),
    );
    // With them, it starts (and is stopped by the --timeout of a --connect that finds nobody).
    const ok = await withPermissions(RECEIVER, [
      "--allow-net",
      "--allow-env",
      `--allow-read=${dst}`,
      `--allow-write=${dst}`,
    ], [
      "--dir",
      dst,
      "--connect",
      "127.0.0.1:1",
    ]);
    assertEquals(ok.code, 3, ok.stderr);
  }));

Deno.test("unsendable entries are listed before connecting; --ignore-unsendable-files sends the rest", () =>
  withDirs(async (src, dst) => {
    await Deno.mkdir(join(src, "share/sub"), { recursive: true });
    await Deno.writeTextFile(join(src, "share/sub/ok.txt"), "fine");
    await Deno.symlink("/etc/hostname", join(src, "share/link"));
    const fifo = await new Deno.Command("mkfifo", { args: [join(src, "share/sub/pipe")] }).output();
    assert(fifo.success, "mkfifo");
    // Refused up front: exit 2 with the list, before any connection (the port is closed).
    const refused = await send(["127.0.0.1:1", join(src, "share")]);
    assertEquals(refused.code, 2, refused.stderr);
    assertMatch(refused.stderr, /cannot send 2 of the entries: /);
    assertMatch(refused.stderr, /share\/link \(symlink, not followed\)/);
    assertMatch(refused.stderr, /share\/sub\/pipe \(not a regular file or folder\)/);
    assertMatch(refused.stderr, /--ignore-unsendable-files/);
    // Asked to ignore them: the rest arrives, and each skipped entry was named.
    const { sent, received } = await sendOnce(
      [join(src, "share"), "--ignore-unsendable-files"],
      ["--dir", dst],
    );
    assertEquals([sent.code, received.code], [0, 0], sent.stderr + received.stderr);
    assertMatch(sent.stderr, /skipping \S*share\/link: symlink/);
    assertMatch(sent.stderr, /skipping \S*share\/sub\/pipe: not a regular file/);
    assertEquals(await Deno.readTextFile(join(dst, "share/sub/ok.txt")), "fine");
    assertEquals([...(await listTree(dst)).keys()].sort(), [
      "share",
      "share/sub",
      "share/sub/ok.txt",
    ]);
  }));

Deno.test("the receiver says what to run on the other side, and that command works", () =>
  withDirs(async (src, dst) => {
    const receiver = await startUntil(
      RECEIVER,
      ["--once", "--dir", dst, "--host", "127.0.0.1", "--port", "0"],
      /in another terminal, run: FERRY_CODE=(<the code>|\S+) \.\/sender\.ts (\S+) FILE\.\.\./,
      { env: { FERRY_CODE: CODE } },
    );
    // A code we gave is never echoed; the address is the one to dial.
    const [, code, address] = receiver.match;
    assertEquals(code, "<the code>");
    assertMatch(address!, /^127\.0\.0\.1:\d+$/);
    await Deno.writeTextFile(join(src, "f.txt"), "as told");
    const sent = await send([address!, join(src, "f.txt")]);
    assertEquals(sent.code, 0, sent.stderr);
    assertEquals((await receiver.finish()).code, 0);
    assertEquals(await Deno.readTextFile(join(dst, "f.txt")), "as told");
  }));

Deno.test("a port in use is named, with the flag that changes it", () =>
  withDirs(async (_src, dst) => {
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const out = await run(RECEIVER, [
        "--host",
        "127.0.0.1",
        "--port",
        String(taken.addr.port),
        "--dir",
        dst,
      ], { env: { FERRY_CODE: CODE } });
      assertEquals(out.code, 2);
      assertEquals(
        out.stderr,
        `ferry: port ${taken.addr.port} is in use (another receiver?); choose another with --port, or 0 for any\n`,
      );
    } finally {
      taken.close();
    }
  }));

Deno.test("a peer that says nothing (not ferry) is named within seconds, not after the timeout", () =>
  withDirs(async (src) => {
    await Deno.writeTextFile(join(src, "a"), "x");
    // Something that accepts and never answers, like a web server waiting for a request.
    const mute = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of mute) held.push(conn);
    })().catch(() => {});
    try {
      const sender = await startUntil(
        SENDER,
        [`127.0.0.1:${mute.addr.port}`, join(src, "a"), "--timeout", "20"],
        /has not answered in 2 s; it may not be a ferry receiver \(is this the right port\?\)/,
        { env: { FERRY_CODE: CODE }, timeoutMs: 8_000 },
      );
      await sender.stop();
    } finally {
      mute.close();
      for (const conn of held) conn.close();
      await accepting;
    }
  }));

Deno.test("Ctrl-C on an idle receiver exits 130 without claiming partial files were kept", () =>
  withDirs(async (_src, dst) => {
    const receiver = await startReceiver(["--dir", dst]);
    receiver.process.kill("SIGINT");
    const done = await receiver.finish();
    assertEquals(done.code, 130);
    assertMatch(done.stderr, /\nferry: interrupted\n$/);
  }));

Deno.test("ferry sender to a closed port exits 3 with one line", async () => {
  const dir = await tempDir();
  await Deno.writeTextFile(join(dir, "a"), "x");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const out = await send([`127.0.0.1:${port}`, join(dir, "a")]);
  assertEquals(out.code, 3);
  assertEquals(out.stderr.trim().split("\n").length, 1);
  assertMatch(out.stderr, /^ferry: could not connect to 127\.0\.0\.1:\d+: connection refused/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ferry sender with a missing path exits 2", async () => {
  const out = await send(["127.0.0.1:1", "/definitely/not/here"]);
  assertEquals(out.code, 2);
  assertMatch(out.stderr, /ferry: no such file or folder: \/definitely\/not\/here/);
});

Deno.test("ferry receiver makes a --dir that is not there (its last folder only), and refuses one that is a file", () =>
  withDirs(async (src, dst) => {
    await Deno.writeTextFile(join(src, "file"), "x");
    const out = await run(RECEIVER, ["--dir", join(src, "file"), "--port", "0"]);
    assertEquals(out.code, 2);
    assertEquals(out.stderr, `ferry: --dir ${join(src, "file")} is not a folder\n`);
    // A typo in a parent is not made into a tree: the missing folder is named, nothing is made.
    const typo = await run(RECEIVER, ["--dir", join(dst, "downlaods/new"), "--port", "0"]);
    assertEquals(typo.code, 2, typo.stderr);
    assertEquals(
      typo.stderr,
      `ferry: --dir ${join(dst, "downlaods/new")}: ${join(dst, "downlaods")} does not exist ` +
        "(a typo? ferry makes only the last folder)\n",
    );
    assertEquals([...Deno.readDirSync(dst)], []);
    // Not there yet: made, and said so, like README's first command on a fresh clone.
    await Deno.mkdir(join(dst, "downloads"));
    const fresh = join(dst, "downloads/new");
    const receiver = await startReceiver(["--once", "--dir", fresh]);
    assertMatch(receiver.banner, /ferry: made the folder \S*downloads\/new/);
    await Deno.writeTextFile(join(src, "a.txt"), "a");
    const sent = await send([`127.0.0.1:${receiver.port}`, join(src, "a.txt")]);
    assertEquals([sent.code, (await receiver.finish()).code], [0, 0]);
    assertEquals(await Deno.readTextFile(join(fresh, "a.txt")), "a");
    // There already: the receiver says where the files go, as a full path.
    const again = await startReceiver(["--dir", "new"], { cwd: join(dst, "downloads") });
    await again.stop();
    assertMatch(again.banner, new RegExp(`ferry: receiving into ${fresh}\n`));
  }));

Deno.test("ferry --json: every stdout line is a JSON event with the documented fields", async () => {
  await withDirs(async (src, dst) => {
    await writeRandomFile(join(src, "a.bin"), 3 * 1024 * 1024, 4);
    await Deno.writeTextFile(join(src, "b.txt"), "bee");
    const { sent, received } = await sendOnce([join(src, "a.bin"), join(src, "b.txt"), "--json"], [
      "--json",
      "--dir",
      dst,
    ]);
    assertEquals([sent.code, received.code], [0, 0], sent.stderr + received.stderr);
    for (
      const [events, side] of [[jsonLines(sent.stdout), "sender"], [
        jsonLines(received.stdout),
        "receiver",
      ]] as const
    ) {
      const names = events.map((e) => e.event);
      assert(names.includes("connected"), side);
      assert(names.includes("started"), side);
      assertEquals(names.filter((n) => n === "file-start").length, 2, side);
      assertEquals(names.at(-1), "done", side);
      const done = events.at(-1)!;
      assertEquals([done.files, done.failed, done.exit_code, done.bytes], [
        2,
        0,
        0,
        3 * 1024 * 1024 + 3,
      ], side);
      const fileDone = events.filter((e) => e.event === "file-done");
      assertEquals(fileDone.map((e) => [e.name, e.status, e.size]), [["a.bin", "ok", 3145728], [
        "b.txt",
        "ok",
        3,
      ]]);
      // Without --hash no file is hashed: the AEAD has checked every byte already.
      for (const e of fileDone) assertEquals(e.hash, undefined, side);
    }
    assertEquals(jsonLines(received.stdout)[0]!.event, "listening");
  });
});

Deno.test("ferry --hash prints each file's XXH3-128 on both sides, as xxhsum -H2 does", async () => {
  await withDirs(async (src, dst) => {
    await writeRandomFile(join(src, "a.bin"), 3 * 1024 * 1024 + 5, 6);
    await Deno.writeTextFile(join(src, "b.txt"), "bee");
    const { sent, received } = await sendOnce(
      [join(src, "a.bin"), join(src, "b.txt"), "--hash"],
      ["--dir", dst, "--hash", "--quiet"],
    );
    assertEquals([sent.code, received.code], [0, 0], sent.stderr + received.stderr);
    const expected = [];
    for (const name of ["a.bin", "b.txt"]) {
      expected.push(`${(await xxh128Of(join(src, name))).slice("xxh128:".length)}  ${name}`);
    }
    // The sender names each file as it read it (here, by the full path it was given); the
    // receiver as it wrote it, under --dir: each list checks where it was made.
    const sentPaths = expected.map((line) => line.replace("  ", `  ${src}/`));
    assertEquals(sent.stdout.trimEnd().split("\n"), sentPaths);
    assertEquals(received.stdout.trimEnd().split("\n"), expected);
    // A receiver writing the file to stdout prints its line on stderr instead.
    const piped = await sendOnce([join(src, "b.txt"), "--quiet"], ["--stdout", "--hash"]);
    assertEquals([piped.sent.code, piped.received.code], [0, 0], piped.received.stderr);
    assertEquals(piped.received.stdout, "bee");
    assert(piped.received.stderr.includes(`${expected[1]}\n`), piped.received.stderr);
  });
});

Deno.test("ferry --hash with --legacy is a usage error", async () => {
  const out = await send(["127.0.0.1:1", "/etc/hostname", "--legacy", "--hash"]);
  assertEquals(out.code, 2);
  assertMatch(out.stderr, /--hash does not work with --legacy/);
});

Deno.test("ferry --quiet prints nothing on success but the listening line", async () => {
  await withDirs(async (src, dst) => {
    await Deno.writeTextFile(join(src, "q.txt"), "quiet");
    const { sent, received } = await sendOnce([join(src, "q.txt"), "--quiet"], [
      "--quiet",
      "--dir",
      dst,
    ]);
    assertEquals([sent.code, received.code], [0, 0]);
    assertEquals(sent.stdout + sent.stderr, "");
    assertEquals(received.stdout, "");
    assertMatch(received.stderr.trim(), /^ferry: listening on 127\.0\.0\.1:\d+$/);
  });
});

Deno.test("conflicting flags are usage errors: --stdout with --json, --legacy with --listen", async () => {
  const a = await run(RECEIVER, ["--stdout", "--json"]);
  assertEquals(a.code, 2);
  assertMatch(a.stderr, /--stdout and --json both write to standard output/);
  const b = await run(SENDER, ["--listen", "--legacy", "x"]);
  assertEquals(b.code, 2);
  assertMatch(b.stderr, /--legacy .* cannot --listen/);
});

Deno.test("--json piped into `head -1`: the transfer goes on without its events, exit 0", async () => {
  await withDirs(async (src, dst) => {
    await Deno.mkdir(join(src, "many"));
    for (let i = 0; i < 300; i++) await Deno.writeTextFile(join(src, "many", `f${i}`), `${i}`);
    const receiver = await startReceiver(["--once", "--dir", dst]);
    // The reader of our events goes away after the first line; later writes fail (EPIPE).
    const script =
      `"$0" run -A "$1" "$2" "$3" --json | head -n 1 > /dev/null; exit "\${PIPESTATUS[0]}"`;
    const sent = await new Deno.Command("bash", {
      args: [
        "-c",
        script,
        Deno.execPath(),
        SENDER,
        `127.0.0.1:${receiver.port}`,
        join(src, "many"),
      ],
      env: { FERRY_CODE: CODE, NO_COLOR: "1" },
      stdout: "null",
      stderr: "piped",
    }).output();
    const received = await receiver.finish();
    const stderr = new TextDecoder().decode(sent.stderr);
    assertEquals([sent.code, received.code], [0, 0], stderr + received.stderr);
    assertEquals((await listTree(join(dst, "many"))).size, 300);
  });
});

Deno.test("the words a person reads: a refusal without nested brackets, a quick transfer timed in ms", () =>
  withDirs(async (src, dst) => {
    await Deno.writeTextFile(join(src, "here.txt"), "new");
    await Deno.writeTextFile(join(src, "fresh.txt"), "fresh");
    await Deno.writeTextFile(join(dst, "here.txt"), "old!");
    const { sent, received } = await sendOnce(
      [join(src, "here.txt"), join(src, "fresh.txt")],
      ["--dir", dst],
    );
    assertEquals(sent.code, 6, sent.stderr);
    assertMatch(
      sent.stderr,
      /here\.txt: refused \(already exists on the receiver, which can pass --overwrite\)\n/,
    );
    assert(!/\(.*\(/.test(sent.stderr), sent.stderr);
    // Under a tenth of a second: milliseconds, not "0.0 s".
    assertMatch(received.stderr, /ferry: 2 files, 5 B in \d+ ms, .*1 refused/);
    assert(!/in 0\.0 s/.test(sent.stderr + received.stderr), sent.stderr + received.stderr);
  }));

Deno.test("a typo in one of the code's words is said before any network use, with the nearest word", () =>
  withDirs(async (src) => {
    await Deno.writeTextFile(join(src, "a.txt"), "a");
    // Port 1 is closed: reaching the network would be exit 3, not a usage error.
    const typo = await send(["127.0.0.1:1", join(src, "a.txt")], {
      env: { FERRY_CODE: "7-absurd-solutoin-castle" },
    });
    assertEquals(typo.code, 2, typo.stderr);
    assertMatch(
      typo.stderr,
      /the code's word "solutoin" is not in ferry's word list; did you mean "solution"\?/,
    );
    assert(!typo.stderr.includes("7-absurd-solutoin-castle"), typo.stderr);
    // A code in another shape (magic-wormhole's, one of your own) is taken as it is.
    for (const code of ["4-purple-sausages", "my own phrase here"]) {
      const other = await send(["127.0.0.1:1", join(src, "a.txt")], { env: { FERRY_CODE: code } });
      assertEquals(other.code, 3, other.stderr);
    }
  }));

Deno.test("a typo in the first path reads as a missing file, not as a computer of that name", () =>
  withDirs(async (src) => {
    await Deno.writeTextFile(join(src, "notes.txt"), "n");
    const out = await send([join(src, "reprot.pdf"), join(src, "notes.txt")]);
    assertEquals(out.code, 2, out.stderr);
    assertMatch(
      out.stderr,
      /ferry: no such file or folder: \S*reprot\.pdf \(to send to a computer/,
    );
    assert(!/could not connect|lookup/.test(out.stderr), out.stderr);
    // A HOST:PORT with such a name is still taken as one (here: nothing listens there).
    const host = await send(["127.0.0.1:1", join(src, "notes.txt")]);
    assertEquals(host.code, 3, host.stderr);
  }));
