/**
 * Progress bars: rendered like tqdm, drawn only on a terminal. The end-to-end case runs the real
 * sender under a pseudo-terminal (`script` from util-linux) and reads what it drew.
 */

import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  CODE,
  RECEIVER,
  send,
  SENDER,
  startReceiver,
  withDirs,
  writeRandomFile,
} from "./helpers.ts";
import { displayWidth, formatBytes, formatDuration, renderBar } from "../lib/bar.ts";

Deno.test("renderBar() shows name, percent, bar, bytes, rate and ETA", () => {
  const line = renderBar("movie.mkv", 512 * 1024 * 1024, 1024 * 1024 * 1024, 2);
  assertMatch(line, /^movie\.mkv +50% \|█{12} {12}\| 512 MiB\/1.00 GiB {2}256 MiB\/s {2}ETA 0:02$/);
  assertEquals(formatBytes(1536), "1.50 KiB");
  assertEquals(formatDuration(3725), "1:02:05");
});

const hasScript = await new Deno.Command("script", {
  args: ["--version"],
  stdout: "null",
  stderr: "null",
})
  .output().then((o) => o.success).catch(() => false);

Deno.test({
  name: "ferry sender under a pseudo-terminal draws bars in place and ends at 100%",
  ignore: !hasScript,
  fn: async () => {
    await withDirs(async (src, dst) => {
      await writeRandomFile(join(src, "p.bin"), 24 * 1024 * 1024, 71);
      await Deno.writeTextFile(join(src, "small.txt"), "s");
      const receiver = await startReceiver(["--once", "--dir", dst]);
      const command = [
        Deno.execPath(),
        "run",
        "-A",
        SENDER,
        `127.0.0.1:${receiver.port}`,
        join(src, "p.bin"),
        join(src, "small.txt"),
      ]
        .map((a) => `'${a}'`).join(" ");
      const out = await new Deno.Command("script", {
        args: ["-qfec", command, "/dev/null"],
        env: { FERRY_CODE: CODE, TERM: "xterm" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      await receiver.finish();
      const screen = new TextDecoder().decode(out.stdout);
      assertEquals(out.code, 0, screen);
      // Redrawn in place: cursor-up and erase-below sequences, not a scroll of new lines.
      assert(screen.includes("\x1b[2F") && screen.includes("\x1b[J"), "no in-place redraw");
      const plain = screen.replace(
        new RegExp(String.fromCharCode(27) + "\\[[0-9;]*[A-Za-z]", "g"),
        "",
      );
      assertMatch(
        plain,
        /total 2\/2 files +100% \|█{24}\| 24\.0 MiB\/24\.0 MiB {2}[\d.]+ [KMG]?i?B\/s {2}ETA 0:00/,
      );
      assertMatch(plain, /p\.bin +\d+% \|/);
    });
  },
});

Deno.test("renderBar() fits any width: the numbers go first, the label is cut by display width", () => {
  const size = 300 * 1024 * 1024;
  for (const columns of [40, 60, 80, 120]) {
    for (const label of ["movie.mkv", "a".repeat(90), "日本語のとても長いファイル名です.txt"]) {
      const line = renderBar(label, size / 3, size, 1.5, 0, columns);
      assert(displayWidth(line) <= columns - 1, `${columns}: ${displayWidth(line)} ${line}`);
      assertMatch(line, / 33% \|█+/);
    }
  }
  // Wide enough: everything is there. Narrow: the ETA and the rate go, the bar stays.
  assertMatch(renderBar("x", size / 3, size, 1.5, 0, 120), /ETA 0:03$/);
  const narrow = renderBar("movie.mkv", size / 3, size, 1.5, 0, 40);
  assert(!narrow.includes("ETA") && !narrow.includes("/s"), narrow);
  // Standard input has no size: bytes and rate, no percent, no "/0 B", no ETA.
  const stdin = renderBar("stdin", 34 * 1024 * 1024, 0, 2, 0, 100);
  assertMatch(stdin, /^stdin +\|.*\| 34\.0 MiB {2}17\.0 MiB\/s$/);
  assertEquals(displayWidth("日本語.txt"), 10);
  assertEquals(displayWidth("e\u0301"), 1);
  // A CJK name is cut to its end, by columns: two per character.
  assertMatch(
    renderBar("日本語のとても長いファイル名です.txt", 1, 2, 1, 0, 60),
    /^…\S*名です\.txt +\d/,
  );
});

const hasTmux = await new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" })
  .output().then((o) => o.success).catch(() => false);

/**
 * A script running in a tmux window `columns` wide: its screen as a person would see it. With
 * `input`, a shell command whose output is piped to the script's stdin.
 */
async function inTmux(columns: number, script: string, args: string[], input?: string) {
  const server = `ferry-test-${Deno.pid}-${columns}-${Math.random().toString(36).slice(2, 8)}`;
  const tmux = (...more: string[]) =>
    new Deno.Command("tmux", {
      args: ["-L", server, "-f", "/dev/null", ...more],
      env: { FERRY_CODE: CODE, TERM: "xterm-256color" },
      stdout: "piped",
      stderr: "piped",
    }).output();
  const command = [Deno.execPath(), "run", "-A", script, ...args].map((a) => `'${a}'`).join(" ");
  const shell = input ? `(${input}) | ${command}` : command;
  await tmux(
    "new-session",
    "-d",
    "-x",
    `${columns}`,
    "-y",
    "50",
    `${shell}; echo EXIT=$?; sleep 60`,
  );
  const screen = async () => new TextDecoder().decode((await tmux("capture-pane", "-p")).stdout);
  return {
    screen,
    /** Waits (at most 30 s) until the screen matches `pattern`, and returns it. */
    async until(pattern: RegExp): Promise<string> {
      for (let i = 0; i < 300; i++) {
        const now = await screen();
        if (pattern.test(now)) return now;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      throw new Error(`${pattern} did not appear within 30 s under tmux:\n${await screen()}`);
    },
    /** Types keys into the window (tmux send-keys: "C-c" is Ctrl-C). */
    keys: (...keys: string[]) => tmux("send-keys", ...keys),
    stop: () => tmux("kill-server"),
  };
}

/** Runs a sender in tmux and returns the screen once it has ended. */
async function screenAt(columns: number, args: string[]): Promise<string> {
  const window = await inTmux(columns, SENDER, args);
  try {
    return await window.until(/EXIT=\d+/);
  } finally {
    await window.stop();
  }
}

Deno.test({
  name: "bars fit 60, 80 and 120 columns: no wrapped line, no stale bar left on the screen",
  ignore: !hasTmux,
  fn: () =>
    withDirs(async (src, dst) => {
      // Big enough for many redraws; made before any clock starts.
      await writeRandomFile(join(src, "big.bin"), 160 * 1024 * 1024, 73);
      await Deno.writeTextFile(join(src, "日本語の名前.txt"), "x");
      for (const columns of [60, 80, 120]) {
        const receiver = await startReceiver(["--dir", dst, "--overwrite"]);
        const screen = await screenAt(columns, [
          `127.0.0.1:${receiver.port}`,
          join(src, "big.bin"),
          join(src, "日本語の名前.txt"),
        ]);
        await receiver.stop();
        assertMatch(screen, /EXIT=0/, screen);
        const rows = screen.split("\n").filter((row) => row.trim() !== "");
        // Every row is whole: a bar row starts with its label and has its percent and bar.
        const bars = rows.filter((row) => row.includes("|"));
        for (const row of bars) {
          assertMatch(row, /^\S.* \d+% \|[█▏▎▍▌▋▊▉ ]+\|/, `${columns}: ${row}`);
        }
        // What stays is the final bar, once; nothing else of the bars.
        assertEquals(bars.length, 1, `${columns} columns:\n${screen}`);
        assertMatch(bars[0]!, /^total 2\/2 files +100% /);
        assertEquals(rows.filter((row) => row.includes("%")).length, 1, screen);
      }
    }),
});

Deno.test({
  name:
    "a receiver with three senders at once: a labelled bar each, one final bar each, no leftovers",
  ignore: !hasTmux,
  fn: () =>
    withDirs(async (src, dst) => {
      for (const n of [1, 2, 3]) await writeRandomFile(join(src, `s${n}.bin`), 48 * 1024 * 1024, n);
      const port = await new Promise<number>((resolve) => {
        const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        resolve(probe.addr.port);
        probe.close();
      });
      const window = await inTmux(80, RECEIVER, [
        "--host",
        "127.0.0.1",
        "--port",
        `${port}`,
        "--dir",
        dst,
      ]);
      try {
        await window.until(/listening on/);
        const sent = await Promise.all(
          [1, 2, 3].map((n) => send([`127.0.0.1:${port}`, join(src, `s${n}.bin`)])),
        );
        assertEquals(sent.map((s) => s.code), [0, 0, 0]);
        const screen = await window.until(/(ferry: 1 file[^\n]*\n[\s\S]*){3}/);
        const bars = screen.split("\n").filter((row) => row.includes("|"));
        for (const row of bars) assertMatch(row, /^\S.* \d+% \|[█▏▎▍▌▋▊▉ ]+\|/, row);
        // One final bar per sender: its file, at 100%; nothing else is left of the bars.
        assertEquals(bars.length, 3, screen);
        for (const n of [1, 2, 3]) {
          assertEquals(
            bars.filter((row) => row.includes(`s${n}.bin`) && row.includes("100%")).length,
            1,
            screen,
          );
        }
      } finally {
        await window.stop();
      }
    }),
});

Deno.test("ferry sender draws no bars when stderr is not a terminal", async () => {
  await withDirs(async (src, dst) => {
    await writeRandomFile(join(src, "p.bin"), 2 * 1024 * 1024, 72);
    const receiver = await startReceiver(["--once", "--dir", dst]);
    const sent = await send([`127.0.0.1:${receiver.port}`, join(src, "p.bin")]);
    await receiver.finish();
    assertEquals(sent.code, 0);
    assert(!sent.stderr.includes("%"), sent.stderr);
    assert(!sent.stderr.includes("\x1b["), "escape codes without a terminal");
  });
});

Deno.test("formatBytes() rounds rates below 1 KiB/s to whole bytes", () => {
  assertEquals(formatBytes(778.7403874233552), "779 B");
  assertEquals(formatBytes(0.4), "0 B");
});

Deno.test("the file count keeps pace with the bytes: a file all sent counts before its verdict", async () => {
  // A sender hears each verdict after the bytes went out; the count used to wait for it.
  const script = `
    import { Reporter } from "${new URL("../lib/report.ts", import.meta.url).href}";
    const r = new Reporter({ tty: true });
    const pause = () => new Promise((ok) => setTimeout(ok, 150));
    r.start("1", 3, 300);
    for (const name of ["a", "b"]) {
      r.fileStart("1", name, 100, 0);
      r.progress("1", 100);
      await pause();
    }
    r.fileStart("1", "c", 100, 0);
    await pause();
    r.progress("1", 1);
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    env: { COLUMNS: "100" },
    stdout: "null",
    stderr: "piped",
  }).output();
  const drawn = new TextDecoder().decode(out.stderr);
  assert(out.success, drawn);
  // No verdict came at all, yet two of three files are through.
  assertMatch(drawn, /total 2\/3 files/);
  assert(!drawn.includes("total 0/3 files 67%"), drawn);
});

Deno.test({
  name: "stdin, then Ctrl-C, at 60 and 80 columns: a bar in bytes (no '/0 B'), then no bar left",
  ignore: !hasTmux,
  fn: () =>
    withDirs(async (_src, dst) => {
      for (const columns of [60, 80]) {
        const receiver = await startReceiver(["--dir", dst, "--overwrite"]);
        // 3,000,000 bytes, then a pipe that stays open: the send waits mid-stream.
        const window = await inTmux(
          columns,
          SENDER,
          [`127.0.0.1:${receiver.port}`, "-", "--name", "stream.bin"],
          "head -c 3000000 /dev/urandom; sleep 60",
        );
        try {
          const during = await window.until(/stream\.bin .*2\.86 MiB/);
          const bar = during.split("\n").find((row) => row.includes("stream.bin"))!;
          assert(!bar.includes("/0 B"), bar);
          assert(bar.length <= columns, `${columns}: ${bar}`);
          await window.keys("C-c");
          const after = await window.until(/EXIT=\d+/);
          assertMatch(after, /EXIT=130/);
          assertMatch(after, /^ferry: interrupted/m);
          // What the bar said is out of date: it is gone, not frozen above the message.
          assertEquals(after.split("\n").filter((row) => row.includes("stream.bin")), [], after);
        } finally {
          await window.stop();
          await receiver.stop();
        }
      }
    }),
});

Deno.test({
  name:
    "deno task demo on a terminal: the sender's bars and the receiver's lines never share a row",
  ignore: !hasTmux,
  fn: async () => {
    const demo = new URL("../scripts/demo.ts", import.meta.url).pathname;
    const window = await inTmux(80, demo, []);
    try {
      const screen = await window.until(/EXIT=\d+/);
      assertMatch(screen, /demo: OK: 3 files/);
      assertMatch(screen, /EXIT=0/);
      const rows = screen.split("\n");
      // The receiver's summary is a whole row of its own, after the sender's.
      assert(rows.some((row) => /^receiver> ferry: 3 files, 32\.1 MiB in /.test(row)), screen);
      for (const row of rows.filter((row) => row.startsWith("receiver>"))) {
        assert(!row.includes("|") && !row.includes("%"), `a bar ran into: ${row}`);
      }
      // What is left of the sender's bars is at most its final one, whole.
      for (const row of rows.filter((row) => row.includes("|"))) {
        assertMatch(row, /^\S.* \d+% \|[█▏▎▍▌▋▊▉ ]+\|/, row);
      }
    } finally {
      await window.stop();
    }
  },
});
