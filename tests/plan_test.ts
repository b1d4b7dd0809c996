/**
 * The receiver's planner, entry by entry: what it answers when two connections offer the same
 * name at once, and when a file cannot fit in the free space.
 */

import { join } from "node:path";
import { assertEquals } from "./assert.ts";
import { withDirs } from "./helpers.ts";
import { KIND_FILE, REPLY_REFUSE, REPLY_SEND } from "../protocol.ts";
import { lazyHasher } from "../lib/checksum.ts";
import { WIRE } from "../lib/errors.ts";
import { freeSpace, Planner } from "../lib/plan.ts";
import { SafeRoot } from "../lib/safe_path.ts";

const file = (name: string, size: number) => ({
  kind: KIND_FILE,
  mode: 0o644,
  mtime: 0,
  size,
  name,
});

Deno.test("a name another connection is sending now is a duplicate, not a busy receiver", () =>
  withDirs((_src, dst) => {
    const claims = new Set<string>();
    const first = new Planner(new SafeRoot(dst), {}, lazyHasher(), claims);
    const second = new Planner(new SafeRoot(dst), {}, lazyHasher(), claims);
    assertEquals(first.plan(file("same.bin", 10)).reply.action, REPLY_SEND);
    const clash = second.plan(file("same.bin", 10)).reply;
    assertEquals([clash.action, clash.reason], [REPLY_REFUSE, WIRE.DUPLICATE]);
    // Once the first lets go, the name is free again.
    first.release();
    const third = new Planner(new SafeRoot(dst), {}, lazyHasher(), claims);
    assertEquals(third.plan(file("same.bin", 10)).reply.action, REPLY_SEND);
  }));

Deno.test("files that do not fit in the free space are refused as no space, with the numbers", () =>
  withDirs((_src, dst) => {
    const free = freeSpace(dst);
    if (!Number.isFinite(free)) throw new Error("the test runs with --allow-sys: statfs must work");
    const planner = new Planner(new SafeRoot(dst), {}, lazyHasher(), new Set());
    // Half the free space fits; another half and a byte more does not.
    const half = Math.floor(free / 2);
    assertEquals(planner.plan(file("a.bin", half)).reply.action, REPLY_SEND);
    const over = planner.plan(file(join("sub", "b.bin"), free - half + 1));
    assertEquals([over.reply.action, over.reply.reason], [REPLY_REFUSE, WIRE.NO_SPACE]);
    assertEquals(/^[\d.]+ \w+ offered, [\d.]+ \w+ free$/.test(over.note ?? ""), true, over.note);
  }));
