/**
 * Progress bars: rendered like tqdm, drawn only on a terminal. The end-to-end case runs the real
 * sender under a pseudo-terminal (`script` from util-linux) and reads what it drew.
 */

import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { CODE, SENDER, startReceiver, withDirs, writeRandomFile } from "./helpers.ts";
import { formatBytes, formatDuration, renderBar } from "../lib/report.ts";

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
      // Redrawn in place: cursor-up and erase-line sequences, not a scroll of new lines.
      assert(screen.includes("\x1b[2F") && screen.includes("\x1b[2K"), "no in-place redraw");
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

Deno.test("ferry sender draws no bars when stderr is not a terminal", async () => {
  await withDirs(async (src, dst) => {
    await writeRandomFile(join(src, "p.bin"), 2 * 1024 * 1024, 72);
    const receiver = await startReceiver(["--once", "--dir", dst]);
    const { send } = await import("./helpers.ts");
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
