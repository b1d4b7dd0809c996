/**
 * The sender's manifest: command-line paths are checked at once, folders are walked lazily (as
 * the offer goes out), and a second pass reads what the first one found.
 */

import { join } from "node:path";
import { assertEquals, assertThrows } from "./assert.ts";
import { Manifest } from "../lib/manifest.ts";
import { UsageError } from "../lib/errors.ts";
import { withDirs } from "./helpers.ts";

Deno.test("Manifest checks the command line before walking anything", async () => {
  await withDirs(async (src) => {
    await Deno.writeTextFile(join(src, "a.txt"), "a");
    await Deno.symlink(join(src, "a.txt"), join(src, "link"));
    assertThrows(() => new Manifest([join(src, "missing")]), UsageError, "no such file");
    assertThrows(() => new Manifest([join(src, "link")]), UsageError, "nothing to send");
    await Deno.mkdir(join(src, "other"));
    await Deno.writeTextFile(join(src, "other", "a.txt"), "b");
    assertThrows(
      () => new Manifest([join(src, "a.txt"), join(src, "other", "a.txt")]),
      UsageError,
      "both be named a.txt",
    );
    // A skipped symlink takes no name: no clash with the file it shares a name with.
    await Deno.mkdir(join(src, "links"));
    await Deno.symlink(join(src, "a.txt"), join(src, "links", "a.txt"));
    const manifest = new Manifest([join(src, "a.txt"), join(src, "links", "a.txt")]);
    assertEquals([...manifest].map((e) => e.name), ["a.txt"]);
  });
});

Deno.test("Manifest walks folders only when asked, and a second pass sees the same entries", async () => {
  await withDirs(async (src) => {
    await Deno.mkdir(join(src, "tree", "sub"), { recursive: true });
    const manifest = new Manifest([join(src, "tree")]);
    // Created after the manifest: the walk has not happened yet, so these are found.
    await Deno.writeTextFile(join(src, "tree", "sub", "late.txt"), "late");
    await Deno.writeTextFile(join(src, "tree", "a.txt"), "a");
    const first = [...manifest].map((e) => e.name);
    assertEquals(first, ["tree", "tree/a.txt", "tree/sub", "tree/sub/late.txt"]);
    await Deno.writeTextFile(join(src, "tree", "b.txt"), "b");
    assertEquals([...manifest].map((e) => e.name), first);
  });
});

Deno.test("Manifest skips, with a warning, what vanishes while a folder is listed", async () => {
  await withDirs(async (src) => {
    await Deno.mkdir(join(src, "tree"));
    for (const name of ["a", "b", "c"]) await Deno.writeTextFile(join(src, "tree", name), name);
    const skipped: string[] = [];
    const manifest = new Manifest([join(src, "tree")], {
      onSkip: (path, why) => skipped.push(`${path}: ${why}`),
    });
    const walk = manifest[Symbol.iterator]();
    assertEquals(walk.next().value?.name, "tree");
    assertEquals(walk.next().value?.name, "tree/a"); // the folder is listed now: a, b, c
    await Deno.remove(join(src, "tree", "b"));
    assertEquals(walk.next().value?.name, "tree/c");
    assertEquals(walk.next().done, true);
    assertEquals(skipped, [`${join(src, "tree")}/b: vanished while the folder was being listed`]);
  });
});

Deno.test("Manifest says why a name is skipped, once", async () => {
  await withDirs(async (src) => {
    await Deno.writeTextFile(join(src, "a.txt"), "a");
    await Deno.writeTextFile(join(src, "bad\u0007bell"), "b");
    const skipped: string[] = [];
    const onSkip = (_path: string, why: string) => skipped.push(why);
    assertThrows(
      () => new Manifest([join(src, "a.txt")], { name: "x".repeat(5000), onSkip }),
      UsageError,
      "nothing to send",
    );
    [...new Manifest([src], { onSkip })];
    assertEquals(skipped, ["name too long", "control character in name"]);
  });
});
