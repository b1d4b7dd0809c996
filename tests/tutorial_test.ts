/**
 * The tutorial's chapters, each run as a learner runs it (real scripts, real sockets), each
 * chapter's one idea exercised: chapter 1 against the Python tutorial both ways, the framing bug
 * reproduced and then fixed, a traversal name refused, a flipped byte caught, a stalled sender
 * holding up nobody, a transfer resumed, a wrong code refused. And the rules of the series: no
 * chapter imports from lib/ or another chapter, scripts stay short, READMEs' diffs are current.
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./assert.ts";
import { exists, randomBytes, ROOT, tempDir, withDirs, withTimeout } from "./helpers.ts";
import { chapters, readmeWithDiff, TUTORIAL } from "../scripts/tutorial.ts";

const PYTHON_SENDER = join(ROOT, "tests/fixtures/tutorial_sender.py");
const PYTHON_RECEIVER = join(ROOT, "tests/fixtures/tutorial_receiver.py");
const CODE = "42-acid-bark-cave";

/** A running process whose output is collected; `waitFor` watches stdout and stderr. */
interface Proc {
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  /** Waits for exit (bounded); returns the exit code and all output. */
  finish(): Promise<{ code: number; output: string }>;
  kill(): Promise<{ code: number; output: string }>;
}

function spawn(program: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const child = new Deno.Command(program, {
    args,
    cwd,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const decoder = new TextDecoder();
  const waiting = new Set<() => void>();
  const drain = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeTo(
      new WritableStream({
        write(chunk) {
          output += decoder.decode(chunk, { stream: true });
          for (const wake of waiting) wake();
        },
      }),
    );
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const finish = async () => {
    const status = await withTimeout(child.status, 60_000, `${args.join(" ")} to exit`, () => {
      child.kill("SIGKILL");
    });
    await drained;
    return { code: status.code, output };
  };
  return {
    waitFor: (pattern: RegExp) =>
      withTimeout(
        new Promise<RegExpExecArray>((resolve) => {
          const wake = () => {
            const match = pattern.exec(output);
            if (match) {
              waiting.delete(wake);
              resolve(match);
            }
          };
          waiting.add(wake);
          wake();
        }),
        30_000,
        `${pattern} in: ${output}`,
        () => child.kill("SIGKILL"),
      ),
    finish,
    kill: () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone already */ }
      return finish();
    },
  } satisfies Proc;
}

function chapterDir(n: number): string {
  return join(TUTORIAL, chapters()[n - 1]!);
}

/** A chapter's script under Deno, as its header says to run it. */
function deno(n: number, script: "sender.ts" | "receiver.ts", args: string[], cwd: string) {
  const allow = ["--allow-net", "--allow-read", "--allow-write", "--allow-env=CODE"];
  return spawn(Deno.execPath(), ["run", ...allow, join(chapterDir(n), script), ...args], cwd, {
    CODE,
  });
}

/** Starts a chapter's receiver on a free port; returns it and the port it printed. */
async function receiver(n: number, dir: string): Promise<{ proc: Proc; port: number }> {
  const proc = deno(n, "receiver.ts", ["127.0.0.1", "0", dir], dir);
  const match = await proc.waitFor(/Listening as 127\.0\.0\.1:(\d+)/);
  return { proc, port: Number(match[1]) };
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([Deno.readFile(a), Deno.readFile(b).catch(() => null)]);
  return y !== null && Buffer.from(x).equals(Buffer.from(y));
}

/** Connects to `port` and writes `bytes` in ONE write, then closes. */
async function rawSend(port: number, ...pieces: Uint8Array[]): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const bytes = Buffer.concat(pieces);
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
  conn.close();
}

/** Chapters 2-6's framed header: 4-byte length, then JSON. */
function frame(header: object): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(4 + json.length);
  new DataView(out.buffer).setUint32(0, json.length);
  out.set(json, 4);
  return out;
}

const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest());

// ---------------------------------------------------------------------------------------------
// Chapter 1: the tutorial itself, wire-compatible with the Python scripts.

Deno.test("chapter 1 sends to the Python tutorial's receiver.py, and receives from its sender.py", () =>
  withDirs(async (src, dst) => {
    await Deno.writeFile(join(src, "data.csv"), randomBytes(100_000, 11));
    // Deno sender -> Python receiver
    const py = spawn("python3", [PYTHON_RECEIVER, "127.0.0.1", "0", dst], dst);
    const port = (await py.waitFor(/Listening as 127\.0\.0\.1:(\d+)/))[1]!;
    const sent = await deno(1, "sender.ts", ["127.0.0.1", port, "data.csv"], src).finish();
    assertEquals(sent.code, 0, sent.output);
    assertEquals((await py.finish()).code, 0);
    assert(await sameBytes(join(src, "data.csv"), join(dst, "data.csv")), "Deno -> Python");
    await Deno.remove(join(dst, "data.csv"));
    // Python sender -> Deno receiver
    const ours = await receiver(1, dst);
    const pySent = await spawn(
      "python3",
      [PYTHON_SENDER, "127.0.0.1", String(ours.port), "data.csv"],
      src,
    ).finish();
    assertEquals(pySent.code, 0, pySent.output);
    assertEquals((await ours.proc.finish()).code, 0);
    assert(await sameBytes(join(src, "data.csv"), join(dst, "data.csv")), "Python -> Deno");
  }));

// ---------------------------------------------------------------------------------------------
// Chapter 2: the framing bug, reproduced on chapter 1 and fixed by chapter 2.

Deno.test("chapter 1 misreads a header glued to data that starts with digits; chapter 2 does not", () =>
  withDirs(async (_src, dst) => {
    // A CSV starting with a year, delivered in one piece with its header, as a busy network may.
    const data = new TextEncoder().encode("2026,ferry,1\n".repeat(250));
    const one = await receiver(1, dst);
    await rawSend(one.port, new TextEncoder().encode(`glued.csv<SEPARATOR>${data.length}`), data);
    await one.proc.finish();
    const broken = await Deno.readFile(join(dst, "glued.csv"));
    // The year was taken for more digits of the size: the file lost its first 4 bytes.
    assertEquals(broken, data.subarray(4));

    const two = await receiver(2, dst);
    await rawSend(two.port, frame({ name: "framed.csv", size: data.length }), data);
    assertEquals((await two.proc.finish()).code, 0);
    assertEquals(await Deno.readFile(join(dst, "framed.csv")), data);

    // A sender that stops early is an error in chapter 2, not a shorter file.
    const three = await receiver(2, dst);
    await rawSend(three.port, frame({ name: "short.bin", size: 5000 }), data);
    const short = await three.proc.finish();
    assertEquals(short.code, 1);
    assertMatch(short.output, /connection closed after \d+ of \d+ bytes; short\.bin removed/);
    assert(!(await exists(join(dst, "short.bin"))));
  }));

// ---------------------------------------------------------------------------------------------
// Chapter 3: many files, and names from the network are not trusted.

Deno.test("chapter 3 sends a folder, and refuses names that point outside its folder", async () => {
  const outside = await tempDir();
  try {
    await withDirs(async (src, dst) => {
      await Deno.mkdir(join(src, "album/2026"), { recursive: true });
      await Deno.writeFile(join(src, "album/2026/a.raw"), randomBytes(10_000, 13));
      await Deno.writeTextFile(join(src, "album/b.txt"), "b");
      const ok = await receiver(3, dst);
      const sent = await deno(3, "sender.ts", ["127.0.0.1", String(ok.port), "album"], src)
        .finish();
      assertEquals(sent.code, 0, sent.output);
      assertEquals((await ok.proc.finish()).code, 0);
      assert(await sameBytes(join(src, "album/2026/a.raw"), join(dst, "album/2026/a.raw")));

      const hostile = await receiver(3, dst);
      const evil = new TextEncoder().encode("evil");
      await rawSend(
        hostile.port,
        frame({ name: `../${outside.split("/").at(-1)}/x`, size: 4 }),
        evil,
        frame({ name: `${outside}/abs`, size: 4 }),
        evil,
        frame({ name: "ok/../../y", size: 4 }),
        evil,
        frame({ name: "fine.txt", size: 4 }),
        evil,
        frame({ name: "", size: 0 }),
      );
      const got = await hostile.proc.finish();
      assertEquals(got.code, 1, got.output);
      assertMatch(got.output, /3 file\(s\) refused/);
      assertEquals([...Deno.readDirSync(outside)], []);
      assertEquals(await Deno.readTextFile(join(dst, "fine.txt")), "evil");
    });
  } finally {
    await Deno.remove(outside, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Chapter 4: a digest the receiver checks before the file is put in place.

/** A TCP proxy to `port` that flips one bit of byte `at` (counted from the first byte sent). */
function flippingProxy(port: number, at: number): { port: number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const client of listener) {
      const server = await Deno.connect({ hostname: "127.0.0.1", port });
      let seen = 0;
      client.readable.pipeThrough(
        new TransformStream({
          transform(chunk: Uint8Array, out) {
            if (at >= seen && at < seen + chunk.length) chunk[at - seen]! ^= 1;
            seen += chunk.length;
            out.enqueue(chunk);
          },
        }),
      ).pipeTo(server.writable).catch(() => {});
      server.readable.pipeTo(client.writable).catch(() => {});
    }
  })().catch(() => {});
  return { port: (listener.addr as Deno.NetAddr).port, close: () => listener.close() };
}

Deno.test("chapter 4 catches a flipped byte: the file is discarded, not put in place", () =>
  withDirs(async (src, dst) => {
    await Deno.writeFile(join(src, "data.bin"), randomBytes(50_000, 14));
    const ours = await receiver(4, dst);
    const proxy = flippingProxy(ours.port, 30_000);
    try {
      const sent = await deno(4, "sender.ts", ["127.0.0.1", String(proxy.port), "data.bin"], src)
        .finish();
      assertEquals(sent.code, 0, sent.output);
      const got = await ours.proc.finish();
      assertEquals(got.code, 1, got.output);
      assertMatch(got.output, /do not match the sender's digest/);
      assert(!(await exists(join(dst, "data.bin"))));
      assert(!(await exists(join(dst, "data.bin.part"))));
    } finally {
      proxy.close();
    }
    // The same file without the proxy arrives and is verified.
    const again = await receiver(4, dst);
    await deno(4, "sender.ts", ["127.0.0.1", String(again.port), "data.bin"], src).finish();
    assertMatch((await again.proc.finish()).output, /SHA-256 verified/);
    assert(await sameBytes(join(src, "data.bin"), join(dst, "data.bin")));
  }));

// ---------------------------------------------------------------------------------------------
// Chapter 5: many senders at once, each on its own.

Deno.test("chapter 5 serves two senders at once while a third connection sits silent", () =>
  withDirs(async (src, dst) => {
    await Deno.writeFile(join(src, "one.bin"), randomBytes(200_000, 15));
    await Deno.writeFile(join(src, "two.bin"), randomBytes(200_000, 16));
    const ours = await receiver(5, dst);
    // A connection that sends half a header and then nothing: in chapters 1-4 it would hold
    // the receiver forever.
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: ours.port });
    await silent.write(new Uint8Array([0, 0]));
    try {
      const port = String(ours.port);
      const [a, b] = await Promise.all([
        deno(5, "sender.ts", ["127.0.0.1", port, "one.bin"], src).finish(),
        deno(5, "sender.ts", ["127.0.0.1", port, "two.bin"], src).finish(),
      ]);
      assertEquals([a.code, b.code], [0, 0], a.output + b.output);
      await ours.proc.waitFor(/two\.bin, 200000 bytes, SHA-256 verified/);
      await ours.proc.waitFor(/one\.bin, 200000 bytes, SHA-256 verified/);
      assert(await sameBytes(join(src, "one.bin"), join(dst, "one.bin")));
      assert(await sameBytes(join(src, "two.bin"), join(dst, "two.bin")));
    } finally {
      silent.close();
      await ours.proc.kill();
    }
  }));

// ---------------------------------------------------------------------------------------------
// Chapter 6: resume.

Deno.test("chapter 6 resumes from a kept NAME.part, and discards one that was not the file's", () =>
  withDirs(async (src, dst) => {
    const data = randomBytes(120_000, 17);
    await Deno.writeFile(join(src, "big.bin"), data);
    const ours = await receiver(6, dst);
    try {
      const port = String(ours.port);
      // What an interrupted transfer left: the first 70,000 bytes.
      await Deno.writeFile(join(dst, "big.bin.part"), data.subarray(0, 70_000));
      const sent = await deno(6, "sender.ts", ["127.0.0.1", port, "big.bin"], src).finish();
      assertEquals(sent.code, 0, sent.output);
      assertMatch(sent.output, /big\.bin: resuming at byte 70000/);
      await ours.proc.waitFor(/big\.bin, 120000 bytes, SHA-256 verified/);
      assertEquals(await Deno.readFile(join(dst, "big.bin")), data);

      // A part that is not the start of this file: the whole-file digest catches it.
      const other = randomBytes(50_000, 18);
      await Deno.writeFile(join(src, "mixed.bin"), data);
      await Deno.writeFile(join(dst, "mixed.bin.part"), other);
      await deno(6, "sender.ts", ["127.0.0.1", port, "mixed.bin"], src).finish();
      await ours.proc.waitFor(/mixed\.bin does not match its digest; discarded/);
      assert(!(await exists(join(dst, "mixed.bin"))));
      assert(!(await exists(join(dst, "mixed.bin.part"))));
      // ... and the next run starts from zero and succeeds.
      await deno(6, "sender.ts", ["127.0.0.1", port, "mixed.bin"], src).finish();
      await ours.proc.waitFor(/mixed\.bin, 120000 bytes, SHA-256 verified/);
      assertEquals(await Deno.readFile(join(dst, "mixed.bin")), data);
    } finally {
      await ours.proc.kill();
    }
  }));

// ---------------------------------------------------------------------------------------------
// Chapter 7: a code phrase.

Deno.test("chapter 7 refuses a wrong code, and what crosses the wire is sealed", () =>
  withDirs(async (src, dst) => {
    const text = "a secret line that must not cross the wire in the clear\n".repeat(100);
    await Deno.writeTextFile(join(src, "secret.txt"), text);
    const ours = await receiver(7, dst);
    try {
      const wrong = await spawn(
        Deno.execPath(),
        [
          "run",
          "-A",
          join(chapterDir(7), "sender.ts"),
          "127.0.0.1",
          String(ours.port),
          "secret.txt",
        ],
        src,
        { CODE: "42-acid-bark-wrong" },
      ).finish();
      assert(wrong.code !== 0, wrong.output);
      assertMatch(wrong.output, /wrong code phrase/);
      await ours.proc.waitFor(/wrong code phrase/);
      assert(!(await exists(join(dst, "secret.txt"))));

      // The right code, through a proxy that records the bytes: none of the text is in them.
      const seen: Uint8Array[] = [];
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const relaying = (async () => {
        const client = await listener.accept();
        const server = await Deno.connect({ hostname: "127.0.0.1", port: ours.port });
        await Promise.all([
          client.readable.pipeThrough(
            new TransformStream({
              transform(chunk: Uint8Array, out) {
                seen.push(chunk.slice());
                out.enqueue(chunk);
              },
            }),
          ).pipeTo(server.writable).catch(() => {}),
          server.readable.pipeTo(client.writable).catch(() => {}),
        ]);
      })();
      const port = String((listener.addr as Deno.NetAddr).port);
      const right = await deno(7, "sender.ts", ["127.0.0.1", port, "secret.txt"], src).finish();
      listener.close();
      assertEquals(right.code, 0, right.output);
      await ours.proc.waitFor(/secret\.txt, \d+ bytes, SHA-256 verified/);
      await withTimeout(relaying, 10_000, "the proxy to finish");
      assertEquals(await Deno.readTextFile(join(dst, "secret.txt")), text);
      const wire = Buffer.concat(seen);
      assert(wire.length > text.length, "the transfer went through the proxy");
      assert(!wire.includes("secret line"), "plaintext crossed the wire");
      assert(
        !wire.includes(Buffer.from(sha256(new TextEncoder().encode(text)))),
        "digest in clear",
      );
      assert(!wire.includes("acid-bark"), "the code crossed the wire");
    } finally {
      await ours.proc.kill();
    }
  }));

// ---------------------------------------------------------------------------------------------
// The rules of the series.

Deno.test("each chapter stands alone, its scripts stay short, and its README's diff is current", async () => {
  const names = chapters();
  assertEquals(names.length, 7);
  for (const chapter of names) {
    const dir = join(TUTORIAL, chapter);
    for (const entry of Deno.readDirSync(dir)) {
      if (!entry.name.endsWith(".ts")) continue;
      const source = await Deno.readTextFile(join(dir, entry.name));
      for (const [, spec] of source.matchAll(/from "([^"]+)"/g)) {
        assert(
          spec!.startsWith("./") && !spec!.includes("/", 2) || spec!.startsWith("node:") ||
            spec!.startsWith("npm:"),
          `${chapter}/${entry.name} imports ${spec}: a chapter must stand alone`,
        );
      }
      const lines = source.trimEnd().split("\n").length;
      if (entry.name === "sender.ts" || entry.name === "receiver.ts") {
        // Chapter 1 stays about as long as the tutorial's own scripts (60 and 48 lines).
        const most = chapter.startsWith("01") ? 70 : 120;
        assert(lines <= most, `${chapter}/${entry.name}: ${lines} lines`);
      }
    }
    const readme = await Deno.readTextFile(join(dir, "README.md"));
    assertEquals(readme, readmeWithDiff(chapter), `${chapter}: run deno task tutorial diffs`);
  }
});
