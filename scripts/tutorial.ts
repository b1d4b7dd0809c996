/**
 * The tutorial's chapters, run and kept honest.
 *
 *     deno task tutorial 3         # chapter 3's demo on loopback: a receiver, a sender, a check
 *     deno task tutorial diffs     # rewrite each chapter README's diff to the chapter before
 *
 * Each chapter's README.md shows what changed since the chapter before between the lines
 * `<!-- diff -->` and `<!-- /diff -->`; `diffs` regenerates that part (tests/tutorial_test.ts
 * fails when it is out of date), so the diffs never drift from the code.
 *
 * @module
 */

import { join } from "node:path";

export const TUTORIAL = new URL("../tutorial/", import.meta.url).pathname;
const CODE = "42-acid-bark-cave";

/** The chapter folders, in order: `01-the-tutorial`, `02-framing`, … */
export function chapters(): string[] {
  return [...Deno.readDirSync(TUTORIAL)]
    .filter((entry) => entry.isDirectory && /^\d\d-/.test(entry.name))
    .map((entry) => entry.name)
    .sort();
}

/** `diff -u` of the chapter before's scripts against this chapter's, file by file. */
export function diffToPrevious(chapter: string): string {
  const all = chapters();
  const previous = all[all.indexOf(chapter) - 1];
  if (previous === undefined) return "";
  const files = new Set(
    [previous, chapter].flatMap((c) =>
      [...Deno.readDirSync(join(TUTORIAL, c))].map((e) => e.name).filter((n) => n.endsWith(".ts"))
    ),
  );
  let out = "";
  for (const file of [...files].sort()) {
    const before = join(previous, file), after = join(chapter, file);
    const args = ["-u", "-N", "--label", `${previous}/${file}`, "--label", `${chapter}/${file}`];
    const result = new Deno.Command("diff", {
      args: [...args, before, after],
      cwd: TUTORIAL,
      stdout: "piped",
    }).outputSync();
    out += new TextDecoder().decode(result.stdout);
  }
  return out;
}

const START = "<!-- diff -->", END = "<!-- /diff -->";

/** The README with its diff block replaced by the current diff. */
export function readmeWithDiff(chapter: string): string {
  const readme = Deno.readTextFileSync(join(TUTORIAL, chapter, "README.md"));
  const from = readme.indexOf(START), to = readme.indexOf(END);
  if (from < 0 || to < from) return readme;
  const block = "\n\n```diff\n" + diffToPrevious(chapter) + "```\n\n";
  return readme.slice(0, from + START.length) + block + readme.slice(to);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Passes `stream` on to our stdout, and resolves once a line has matched `pattern`. */
function echoUntil(stream: ReadableStream<Uint8Array>, pattern: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    stream.pipeTo(
      new WritableStream({
        write(chunk) {
          Deno.stdout.writeSync(chunk);
          seen += new TextDecoder().decode(chunk);
          if (pattern.test(seen)) resolve();
        },
        close: () => reject(new Error("the receiver ended before it listened")),
      }),
    ).catch(() => {});
  });
}

/** Runs chapter `n`'s pair once on loopback, with its output shown, and checks the result. */
async function demo(n: number): Promise<void> {
  const chapter = chapters().find((c) => Number(c.slice(0, 2)) === n);
  if (!chapter) throw new Error(`no chapter ${n}: there are ${chapters().length}`);
  const work = await Deno.makeTempDir({ prefix: `ferry-tutorial-${n}-` });
  const outbox = join(work, "outbox"), inbox = join(work, "inbox");
  await Deno.mkdir(join(outbox, "photos"), { recursive: true });
  await Deno.mkdir(inbox);
  await Deno.writeTextFile(join(outbox, "notes.txt"), "Bytes that crossed a socket.\n".repeat(500));
  await Deno.writeFile(
    join(outbox, "photos/beach.raw"),
    crypto.getRandomValues(new Uint8Array(60_000)),
  );
  // Chapters 1 and 2 send one file; from chapter 3 on, a file and a folder.
  const args = n < 3 ? ["notes.txt"] : ["notes.txt", "photos"];
  const port = String(freePort());
  const script = (name: string, args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--allow-read", "--allow-write", "--allow-env", name, ...args],
      cwd: outbox,
      env: { CODE },
      stdout: "piped",
    });
  const receiver = script(join(TUTORIAL, chapter, "receiver.ts"), ["127.0.0.1", port, inbox])
    .spawn();
  try {
    await echoUntil(receiver.stdout, /Listening/);
    const sender = script(join(TUTORIAL, chapter, "sender.ts"), ["127.0.0.1", port, ...args])
      .spawn();
    await echoUntil(sender.stdout, /$/);
    if (!(await sender.status).success) throw new Error("the sender failed");
    // Chapters 1-4 serve one sender and exit; from chapter 5 on the receiver serves on.
    if (n < 5) await receiver.status;
    else await new Promise((resolve) => setTimeout(resolve, 500));
    await check(n < 3 ? ["notes.txt"] : ["notes.txt", "photos/beach.raw"], outbox, inbox);
  } finally {
    try {
      receiver.kill();
    } catch { /* it had ended */ }
    await receiver.status;
    await Deno.remove(work, { recursive: true });
  }
}

async function check(names: string[], outbox: string, inbox: string): Promise<void> {
  for (const name of names) {
    const [a, b] = await Promise.all([
      Deno.readFile(join(outbox, name)),
      Deno.readFile(join(inbox, name)).catch(() => new Uint8Array(0)),
    ]);
    if (!Buffer.from(a).equals(Buffer.from(b))) throw new Error(`${name} did not arrive intact`);
  }
  console.log(`\ntutorial: ${names.join(", ")} arrived intact`);
}

if (import.meta.main) {
  const what = Deno.args[0];
  if (what === "diffs") {
    for (const chapter of chapters()) {
      Deno.writeTextFileSync(join(TUTORIAL, chapter, "README.md"), readmeWithDiff(chapter));
    }
    console.log(`tutorial: diffs written for ${chapters().length} chapters`);
  } else if (what !== undefined && /^\d+$/.test(what)) {
    await demo(Number(what));
  } else {
    console.error("usage: deno task tutorial N | diffs");
    Deno.exit(2);
  }
}
