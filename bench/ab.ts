/**
 * A/B: the same transfers with two revisions of ferry, taking turns round by round, so that a
 * reshaping can be shown to cost nothing: 1 GiB (throughput), 10,000 files of 4 KiB (per-file
 * cost) and a one-byte file (start-up and meeting). Prints each revision's median and B/A, as a
 * ratio of medians and as the median of round-by-round ratios.
 *
 *     BENCH_RUNS=7 deno run -A bench/ab.ts REV_A [REV_B]    # B defaults to the working tree
 *     BENCH_ONLY=start-up BENCH_RUNS=25 deno run -A bench/ab.ts REV_A REV_B
 *
 * @module
 */

import { join } from "node:path";
import {
  cleanUp,
  CODE,
  deno,
  freePort,
  fresh,
  interleave,
  makeRandom,
  type Measure,
  MiB,
  ONLY,
  pairedRatio,
  ROOT,
  RUNS,
  sh,
  timed,
  WORK,
} from "./common.ts";

/** A checkout of `rev` (a worktree outside the repository), or the working tree. */
async function checkout(rev: string | undefined, name: string): Promise<string> {
  if (rev === undefined) return ROOT;
  const dir = join(WORK, `rev-${name}`);
  const made = await sh(`git -C ${ROOT} worktree add --detach ${dir} ${rev}`).output();
  if (!made.success) {
    throw new Error(`git worktree add ${rev}: ${new TextDecoder().decode(made.stderr)}`);
  }
  return dir;
}

/** One transfer with the ferry at `root`. */
function run(root: string, out: string, send: string): () => Promise<Measure> {
  return async () => {
    await fresh(out);
    const port = freePort();
    return await timed(
      `${deno} ${
        join(root, "receiver.ts")
      } --once --quiet --host 127.0.0.1 --port ${port} --dir ${out}`,
      `${deno} ${join(root, "sender.ts")} 127.0.0.1:${port} ${send} --quiet`,
      port,
    );
  };
}

async function makeSmallFiles(dir: string): Promise<void> {
  const block = new Uint8Array(4096);
  for (let d = 0; d < 100; d++) {
    await Deno.mkdir(join(dir, `d${d}`), { recursive: true });
    for (let f = 0; f < 100; f++) {
      crypto.getRandomValues(block);
      await Deno.writeFile(join(dir, `d${d}`, `f${f}`), block);
    }
  }
}

const [revA, revB] = Deno.args;
if (!revA) {
  console.error("usage: deno run -A bench/ab.ts REV_A [REV_B]");
  Deno.exit(2);
}
const roots = { A: await checkout(revA, "a"), B: await checkout(revB, "b") };
try {
  const big = join(WORK, "big.bin");
  await makeRandom(big, 1024 * MiB);
  const small = join(WORK, "small");
  await makeSmallFiles(small);
  const one = join(WORK, "one.txt");
  await Deno.writeTextFile(one, "x");
  const cases = ([["1 GiB", big], ["10,000 x 4 KiB", small], ["start-up", one]] as const)
    .filter(([name]) => name.includes(ONLY));
  console.log(`A = ${revA}, B = ${revB ?? "working tree"}, ${RUNS} rounds each, code ${CODE}`);
  const results: Record<string, unknown> = {};
  for (const [name, path] of cases) {
    const out = join(WORK, "out");
    const got = await interleave({ A: run(roots.A, out, path), B: run(roots.B, out, path) });
    const ratio = got.B.seconds / got.A.seconds;
    const paired = pairedRatio(got.B, got.A);
    console.log(
      `${name.padEnd(16)} A ${got.A.seconds.toFixed(3)} s  B ${got.B.seconds.toFixed(3)} s  ` +
        `B/A ${ratio.toFixed(3)} (paired ${paired?.toFixed(3)})  rounds A ${
          got.A.rounds!.map((s) => s.toFixed(2)).join(" ")
        } | B ${got.B.rounds!.map((s) => s.toFixed(2)).join(" ")}`,
    );
    results[name] = { a: got.A.rounds, b: got.B.rounds, ratio, paired };
  }
  await Deno.mkdir(join(ROOT, "bench/out"), { recursive: true });
  const file = join(ROOT, "bench/out", `ab-${Date.now()}.json`);
  await Deno.writeTextFile(file, JSON.stringify({ a: revA, b: revB ?? "working tree", results }));
  console.log(`written ${file}`);
} finally {
  for (const root of Object.values(roots)) {
    if (root !== ROOT) await sh(`git -C ${ROOT} worktree remove --force ${root}`).output();
  }
  cleanUp();
}
