/**
 * The receiver as README hardens it: `--allow-read=downloads --allow-write=downloads`, started
 * from the folder that holds `downloads`, with no terminal to ask on. Placing a file moves the
 * working directory into the folder it checked; it must never need anything outside --dir, and
 * concurrent transfers must each land where they belong while a local user swaps folders.
 */

import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import {
  CODE,
  readUntil,
  RECEIVER,
  sameFile,
  send,
  tempDir,
  withTimeout,
  writeRandomFile,
} from "./helpers.ts";

/** README's hardened receiver line, as it is printed there. */
function readmeLine(): string[] {
  const readme = Deno.readTextFileSync(new URL("../README.md", import.meta.url));
  const line = readme.split("\n").find((l) => l.includes("--allow-write=downloads --allow-read"));
  assert(line, "README shows the hardened receiver command");
  const words = line.trim().split(/\s+/);
  assertEquals(words.slice(0, 2), ["deno", "run"]);
  return words.slice(2);
}

/** Starts README's line from `box` (where `downloads` is), on a free loopback port. */
async function startHardened(box: string) {
  const args = readmeLine().map((word) => word === "receiver.ts" ? RECEIVER : word);
  assert(args.includes(RECEIVER), `README's line runs receiver.ts: ${args.join(" ")}`);
  const child = new Deno.Command(Deno.execPath(), {
    args: [...args, "--port", "0", "--host", "127.0.0.1", "--timeout", "10"],
    cwd: box,
    env: { NO_COLOR: "1", FERRY_CODE: CODE },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.getReader();
  const { match } = await readUntil(reader, /listening on \S+:(\d+)/);
  const rest = (async () => {
    const decoder = new TextDecoder();
    let text = "";
    while (true) {
      const { value, done } = await reader.read();
      if (done) return text;
      text += decoder.decode(value, { stream: true });
    }
  })();
  return {
    port: Number(match[1]),
    stop: async () => {
      child.kill("SIGTERM");
      const [stderr] = await withTimeout(Promise.all([rest, child.status]), 20_000, "receiver");
      return stderr;
    },
  };
}

/** A folder of small files and one large one (large files go through a .ferry-part). */
async function makeTree(dir: string, seed: number): Promise<void> {
  await Deno.mkdir(join(dir, "sub/deeper"), { recursive: true });
  for (let i = 0; i < 30; i++) {
    await writeRandomFile(join(dir, i % 2 ? "sub" : "sub/deeper", `f${i}.bin`), 3000, seed + i);
  }
  await writeRandomFile(join(dir, "big.bin"), 3 << 20, seed);
}

Deno.test("README's hardened receiver line places files with no access outside --dir and no terminal", async () => {
  const box = await tempDir();
  const src = await tempDir();
  try {
    await Deno.mkdir(join(box, "downloads"));
    await makeTree(join(src, "tree"), 1);
    const receiver = await startHardened(box);
    const sent = await send([`127.0.0.1:${receiver.port}`, join(src, "tree")]);
    // A second transfer after the first: the working directory is where the first left it.
    const again = await send([`127.0.0.1:${receiver.port}`, join(src, "tree/big.bin")], {
      env: {},
    });
    const stderr = await receiver.stop();
    assertEquals(sent.code, 0, `${sent.stderr}\n${stderr}`);
    // big.bin is there already, with the same bytes: identical, not a failure.
    assertEquals(again.code, 0, `${again.stderr}\n${stderr}`);
    assert(!/Requested by|permission|NotCapable/i.test(stderr), stderr);
    for (const name of ["big.bin", "sub/f1.bin", "sub/deeper/f0.bin"]) {
      assert(await sameFile(join(src, "tree", name), join(box, "downloads/tree", name)), name);
    }
    assertEquals([...Deno.readDirSync(box)].map((e) => e.name), ["downloads"]);
  } finally {
    await Deno.remove(box, { recursive: true });
    await Deno.remove(src, { recursive: true });
  }
});

Deno.test("three senders at once under the hardened line, one folder swapped to and fro: each file lands where it belongs", async () => {
  const box = await tempDir();
  const src = await tempDir();
  const outside = await tempDir();
  try {
    const downloads = join(box, "downloads");
    await Deno.mkdir(downloads);
    for (const [i, name] of ["a", "b", "c"].entries()) await makeTree(join(src, name), 100 * i);
    const receiver = await startHardened(box);
    // A local user swaps b/ for a link to a folder of their own and back, as fast as they can,
    // while all three transfers run.
    let racing = true;
    const racer = (async () => {
      for (let round = 0; racing && round < 20_000; round++) {
        try {
          Deno.renameSync(join(downloads, "b"), join(downloads, "b-real"));
          Deno.symlinkSync(outside, join(downloads, "b"));
          await new Promise((resolve) => setTimeout(resolve, 1));
          Deno.removeSync(join(downloads, "b"));
          Deno.renameSync(join(downloads, "b-real"), join(downloads, "b"));
        } catch {
          // b/ is not made yet, or the receiver is between two steps: try again.
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      }
    })();
    const results = await Promise.all(
      ["a", "b", "c"].map((name) => send([`127.0.0.1:${receiver.port}`, join(src, name)])),
    );
    racing = false;
    await racer;
    const stderr = await receiver.stop();
    assertEquals(results[0]!.code, 0, results[0]!.stderr);
    assertEquals(results[2]!.code, 0, results[2]!.stderr);
    // b/ may be refused in part (exit 6: a folder was replaced), never written elsewhere.
    assert([0, 6].includes(results[1]!.code), `${results[1]!.stderr}\n${stderr}`);
    // Caught while planning (its entries refused) or while writing (the session refused).
    if (results[1]!.code === 6) {
      assertMatch(stderr, /was replaced while ferry was writing in it|goes through a symlink/);
    }
    assert(!/Requested by|NotCapable/i.test(stderr), stderr);
    assertEquals([...Deno.readDirSync(outside)], []);
    for (const name of ["a", "c"]) {
      for (const file of ["big.bin", "sub/f1.bin", "sub/f3.bin", "sub/deeper/f0.bin"]) {
        const there = join(downloads, name, file);
        assert(await sameFile(join(src, name, file), there), there);
      }
    }
    // Whatever of b/ arrived is in b/ itself (the folder ferry made), byte for byte.
    const bReal = Deno.lstatSync(join(downloads, "b")).isSymlink ? "b-real" : "b";
    for (const file of ["big.bin", "sub/f1.bin", "sub/deeper/f0.bin"]) {
      try {
        assert(await sameFile(join(src, "b", file), join(downloads, bReal, file)), file);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
  } finally {
    await Deno.remove(box, { recursive: true });
    await Deno.remove(src, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});
