/**
 * lib/owned_file.ts: what ferry writes is held by descriptor, never reached through a link or
 * blocked on by a FIFO, however the names change under it.
 */

import { join } from "node:path";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { withDirs } from "./helpers.ts";
import { finishFolder, NotAFileError, openRegular, OwnedFile } from "../lib/owned_file.ts";

function mkfifo(path: string): void {
  const out = new Deno.Command("mkfifo", { args: [path] }).outputSync();
  assert(out.success, "mkfifo failed");
}

Deno.test("OwnedFile.create() fails on anything already there, a dangling symlink included", () =>
  withDirs((dir, outside) => {
    Deno.symlinkSync(join(outside, "target"), join(dir, "link"));
    assertThrows(() => OwnedFile.create(join(dir, "link"), 0o600), Deno.errors.AlreadyExists);
    assertEquals([...Deno.readDirSync(outside)], [], "nothing was created through the link");
    Deno.writeTextFileSync(join(dir, "taken"), "mine");
    assertThrows(() => OwnedFile.create(join(dir, "taken"), 0o600), Deno.errors.AlreadyExists);
    assertEquals(Deno.readTextFileSync(join(dir, "taken")), "mine");
  }));

Deno.test("OwnedFile.openAt() refuses a symlink and a FIFO at once, without blocking", () =>
  withDirs((dir, outside) => {
    Deno.writeTextFileSync(join(outside, "secret"), "keep");
    Deno.symlinkSync(join(outside, "secret"), join(dir, "link.ferry-part"));
    assertThrows(() => OwnedFile.openAt(join(dir, "link.ferry-part"), 0));
    mkfifo(join(dir, "fifo.ferry-part"));
    const started = Date.now();
    assertThrows(() => OwnedFile.openAt(join(dir, "fifo.ferry-part"), 0));
    assert(Date.now() - started < 1000, "opening the FIFO blocked");
    assertEquals(Deno.readTextFileSync(join(outside, "secret")), "keep");
  }));

Deno.test("OwnedFile writes at its offset, and its mode never goes beyond what it was created with", () =>
  withDirs(async (dir) => {
    const path = join(dir, "f.ferry-part");
    const file = OwnedFile.create(path, 0o600);
    await file.write(new TextEncoder().encode("hello "));
    file.close();
    const again = OwnedFile.openAt(path, 6);
    again.writeSync(new TextEncoder().encode("world"));
    again.setMode(0o775);
    again.setTime(new Date(1_000_000));
    again.close();
    assertEquals(Deno.readTextFileSync(path), "hello world");
    const info = Deno.statSync(path);
    assertEquals(info.mode! & 0o777, 0o600, "setMode() loosened the mode");
    assertEquals(info.mtime?.getTime(), 1_000_000);
    assertThrows(() => OwnedFile.openAt(path, 100), NotAFileError);
  }));

Deno.test("openRegular() reads only the regular file that was seen, never a link or a FIFO", () =>
  withDirs((dir, outside) => {
    Deno.writeTextFileSync(join(dir, "a"), "abc");
    const seen = Deno.lstatSync(join(dir, "a"));
    const handle = openRegular(join(dir, "a"), { dev: seen.dev, ino: seen.ino! });
    const buf = new Uint8Array(10);
    assertEquals(handle.readSync(buf), 3);
    assertEquals(handle.readSync(buf), null);
    handle.close();
    // Swapped for another file after it was seen: refused.
    Deno.removeSync(join(dir, "a"));
    Deno.writeTextFileSync(join(outside, "key"), "private");
    Deno.symlinkSync(join(outside, "key"), join(dir, "a"));
    assertThrows(() => openRegular(join(dir, "a"), { dev: seen.dev, ino: seen.ino! }));
    // A new file renamed over the name (made first, so it cannot reuse the old inode).
    Deno.removeSync(join(dir, "a"));
    Deno.writeTextFileSync(join(dir, "b"), "other");
    Deno.renameSync(join(dir, "b"), join(dir, "a"));
    assertThrows(
      () => openRegular(join(dir, "a"), { dev: seen.dev, ino: seen.ino! }),
      NotAFileError,
    );
    mkfifo(join(dir, "p"));
    assertThrows(() => openRegular(join(dir, "p")));
  }));

Deno.test("finishFolder() sets mode and time only on the very folder that was made", () =>
  withDirs((dir, outside) => {
    const made = join(dir, "made");
    Deno.mkdirSync(made);
    const info = Deno.lstatSync(made);
    const id = { dev: info.dev, ino: info.ino! };
    assert(finishFolder(made, id, 0o700, new Date(2_000_000)));
    assertEquals(Deno.statSync(made).mode! & 0o777, 0o700);
    // Swapped for a link to a folder outside: nothing changes there.
    Deno.removeSync(made);
    Deno.chmodSync(outside, 0o755);
    Deno.symlinkSync(outside, made);
    assertEquals(finishFolder(made, id, 0o777, new Date(0)), false);
    assertEquals(Deno.statSync(outside).mode! & 0o777, 0o755);
  }));
