import { assertEquals } from "./assert.ts";
import { nameProblem, SafeRoot } from "../lib/safe_path.ts";
import { tempDir } from "./helpers.ts";

Deno.test("nameProblem() accepts ordinary relative names", () => {
  for (
    const name of [
      "a.txt",
      "dir/sub/file.tar.gz",
      "ünïcödé/日本語.txt",
      "..hidden",
      "a..b",
      "%2e%2e/x",
      "C",
      "with space",
    ]
  ) {
    assertEquals(nameProblem(name), undefined, name);
  }
});

Deno.test("nameProblem() refuses traversal, absolute paths and unsafe characters", () => {
  const cases: [string, string][] = [
    ["", "empty name"],
    ["../etc/passwd", "'..' component"],
    ["a/../../b", "'..' component"],
    ["./a", "'.' component"],
    ["/etc/passwd", "absolute path"],
    ["C:\\Windows", "drive letter"],
    ["c:foo", "drive letter"],
    ["..\\..\\x", "backslash"],
    ["a//b", "empty path component"],
    ["a/", "empty path component"],
    ["nul\0byte", "control character"],
    ["line\nbreak", "control character"],
    ["esc\x1b[2J", "control character"],
    ["del\x7f", "control character"],
    ["c1\u009b", "control character"],
    ["evil\u202etxt.exe", "invisible or bidirectional-override character"],
    ["zero\u200bwidth", "invisible or bidirectional-override character"],
    ["a\u2215b", "look-alike slash"],
    ["a\uff0fb", "look-alike slash"],
    ["x".repeat(256), "path component too long"],
    ["a/".repeat(2100) + "b", "name too long"],
    ["a/".repeat(128) + "b", "too many nested folders"],
  ];
  for (const [name, why] of cases) assertEquals(nameProblem(name), why, JSON.stringify(name));
});

Deno.test("SafeRoot.ensureDir() creates folders but refuses to go through a symlink", async () => {
  const root = await tempDir();
  const outside = await tempDir();
  try {
    await Deno.symlink(outside, `${root}/link`);
    const safe = new SafeRoot(root);
    assertEquals(await safe.ensureDir("a/b/c"), undefined);
    assertEquals((await Deno.stat(`${root}/a/b/c`)).isDirectory, true);
    assertEquals(await safe.ensureDir("link/inside"), "symlink");
    assertEquals(await safe.ensureParent("link/file.txt"), "symlink");
    await Deno.writeTextFile(`${root}/plain`, "x");
    assertEquals(await safe.ensureParent("plain/file.txt"), "not-a-folder");
    assertEquals([...Deno.readDirSync(outside)].length, 0);
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});
