/**
 * A folder from a magic-wormhole sender arrives as one zip, unpacked as it streams in. These
 * tests feed real zips to the receiving side's sink and play the local user who races it, and
 * the sender who packs a zip to make folders.
 */

import { join } from "node:path";
import { Zip, ZipPassThrough } from "fflate";
import { assert, assertEquals, assertThrows } from "./assert.ts";
import { tempDir } from "./helpers.ts";
import { acceptOffer } from "../lib/wormhole/sinks.ts";
import { Reporter } from "../lib/report.ts";
import { RefusedError, WIRE } from "../lib/errors.ts";
import { MAX_DEPTH } from "../protocol.ts";
import { concat } from "../lib/spake2.ts";

/** A stored zip of `files` (name to bytes), as one buffer. */
function zipOf(files: [string, Uint8Array][]): Uint8Array {
  const chunks: Uint8Array[] = [];
  const zip = new Zip((err, chunk) => {
    if (err) throw err;
    chunks.push(chunk);
  });
  for (const [name, data] of files) {
    const entry = new ZipPassThrough(name);
    zip.add(entry);
    entry.push(data, true);
  }
  zip.end();
  return concat(...chunks);
}

/** The offer a wormhole sender makes for `zip`, a folder named `dirname`. */
function folderOffer(dirname: string, zip: Uint8Array, numfiles: number, numbytes: number) {
  return {
    directory: { mode: "zipfile/deflated", dirname, zipsize: zip.length, numbytes, numfiles },
  };
}

const options = (dir: string) => ({
  dir,
  overwrite: false,
  maxSize: 1 << 30,
  maxFiles: 100_000,
  stdout: false,
  reporter: new Reporter({ quiet: true }),
});

/** Every folder below `dir`, counted without following links. */
function countFolders(dir: string): number {
  let count = 0;
  for (const item of Deno.readDirSync(dir)) {
    if (item.isDirectory) count += 1 + countFolders(join(dir, item.name));
  }
  return count;
}

Deno.test("wormhole unzip: the folder swapped for a link after ferry made it gets nothing, nor does the link's target", async () => {
  const dst = await tempDir();
  const outside = await tempDir();
  try {
    const data = new TextEncoder().encode("holiday photo");
    const zip = zipOf([["a.jpg", data], ["sub/b.jpg", data]]);
    const sink = acceptOffer(folderOffer("pics", zip, 2, data.length * 2), options(dst));
    // The receiver made pics/ when it accepted the offer. A local user who polls --dir moves it
    // away and puts a link to a folder of their own in its place, before the first byte.
    await Deno.rename(join(dst, "pics"), join(dst, "pics-moved"));
    await Deno.symlink(outside, join(dst, "pics"));
    const err = assertThrows(() => {
      sink.write(zip);
      sink.finish();
    });
    assert(err instanceof RefusedError && err.wireCode === WIRE.SYMLINK, String(err));
    sink.abandon();
    assertEquals([...Deno.readDirSync(outside)], []);
    assertEquals([...Deno.readDirSync(join(dst, "pics-moved"))], []);
  } finally {
    await Deno.remove(dst, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("wormhole unzip: an existing folder or a link at the folder's name is refused before any byte", async () => {
  const dst = await tempDir();
  const outside = await tempDir();
  try {
    const zip = zipOf([["a.txt", new Uint8Array(3)]]);
    await Deno.mkdir(join(dst, "mine"));
    await Deno.symlink(outside, join(dst, "link"));
    for (const [name, code] of [["mine", WIRE.EXISTS], ["link", WIRE.SYMLINK]] as const) {
      const err = assertThrows(() => acceptOffer(folderOffer(name, zip, 1, 3), options(dst)));
      assert(err instanceof RefusedError && err.wireCode === code, `${name}: ${err}`);
    }
    assertEquals([...Deno.readDirSync(outside)], []);
    assertEquals([...Deno.readDirSync(join(dst, "mine"))], []);
  } finally {
    await Deno.remove(dst, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("wormhole unzip: deep names make at most one folder per entry and one full depth", async () => {
  const dst = await tempDir();
  try {
    // 100 entries, each at the bottom of its own tree of 127 folders: 12,700 folders if each
    // entry may make a whole depth, as the zip of a few dozen KiB asks.
    const files: [string, Uint8Array][] = [];
    for (let i = 0; i < 100; i++) {
      files.push([`${i}/${"d/".repeat(MAX_DEPTH - 3)}f`, new Uint8Array(0)]);
    }
    const zip = zipOf(files);
    const sink = acceptOffer(folderOffer("deep", zip, 100, 0), options(dst));
    const err = assertThrows(() => {
      sink.write(zip);
      sink.finish();
    });
    assert(err instanceof RefusedError, String(err));
    const folders = countFolders(dst);
    assert(folders <= 100 + MAX_DEPTH + 1, `${folders} folders made`);
    // The budget refuses the excess, not the first entries.
    assert(folders >= MAX_DEPTH, `${folders} folders made`);
  } finally {
    await Deno.remove(dst, { recursive: true });
  }
});

Deno.test("wormhole unzip: a plain folder of files and subfolders unpacks whole", async () => {
  const dst = await tempDir();
  try {
    const files: [string, Uint8Array][] = [];
    for (let i = 0; i < 20; i++) files.push([`s${i % 3}/t/f${i}.txt`, new Uint8Array([i])]);
    const zip = zipOf(files);
    const sink = acceptOffer(folderOffer("tree", zip, 20, 20), options(dst));
    sink.write(zip);
    assertEquals(sink.finish(), 20);
    for (let i = 0; i < 20; i++) {
      assertEquals(
        Deno.readFileSync(join(dst, "tree", `s${i % 3}/t/f${i}.txt`)),
        new Uint8Array([i]),
      );
    }
  } finally {
    await Deno.remove(dst, { recursive: true });
  }
});
