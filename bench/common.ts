/**
 * What every benchmark case shares: the work folder (on tmpfs when there is one), the rows of
 * results, timing a receiving and a sending command, rounds taken in turns, and the table.
 *
 * @module
 */

import { join } from "node:path";

export const ROOT = new URL("..", import.meta.url).pathname;
export const RUNS = Number(Deno.env.get("BENCH_RUNS") ?? 3);
export const ONLY = Deno.env.get("BENCH_ONLY") ?? "";
export const CODE = "1-bench-code-zoo";
export const BASE = await Deno.stat("/dev/shm").then(() => "/dev/shm").catch(() =>
  Deno.makeTempDir()
);
export const WORK = await Deno.makeTempDir({ dir: BASE, prefix: "ferry-bench-" });
// The data is several GiB of RAM when BASE is /dev/shm: it goes however the bench ends.
export const cleanUp = () => Deno.removeSync(WORK, { recursive: true });
globalThis.addEventListener("error", cleanUp);
globalThis.addEventListener("unhandledrejection", cleanUp);
Deno.addSignalListener("SIGINT", () => {
  cleanUp();
  Deno.exit(130);
});
export const SHARED = join(ROOT, "../shared");
export const MiB = 1024 * 1024;

export interface Measure {
  seconds: number;
  senderRss?: number | undefined;
  receiverRss?: number | undefined;
  wireBytes?: number | undefined;
  /** Every round's seconds, in round order (medians only). */
  rounds?: number[];
}

export interface Row {
  name: string;
  ferry: Measure;
  baseline?: Measure;
  baselineName?: string;
  bytes: number;
  target: string;
  extra?: Record<string, string | number>;
}

export const rows: Row[] = [];

export async function have(command: string): Promise<boolean> {
  return await new Deno.Command("sh", { args: ["-c", `command -v ${command}`], stdout: "null" })
    .output().then((o) => o.success);
}

export function sh(script: string, env: Record<string, string> = {}) {
  return new Deno.Command("bash", { args: ["-c", script], env, stdout: "piped", stderr: "piped" });
}

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

export async function waitPort(port: number, host = "127.0.0.1", netns?: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (netns) {
      const ok = await sh(
        `ip netns exec ${netns} bash -c 'exec 3<>/dev/tcp/${host}/${port}' 2>/dev/null`,
      ).output();
      if (ok.success) return;
    } else {
      try {
        (await Deno.connect({ hostname: host, port })).close();
        return;
      } catch { /* not yet */ }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nothing listening on ${host}:${port}`);
}

/** Parses `/usr/bin/time -f "RSS %M"` output (KiB) into bytes. */
export function rssOf(stderr: string): number | undefined {
  const m = /RSS (\d+)/.exec(stderr);
  return m ? Number(m[1]) * 1024 : undefined;
}

/**
 * Starts a receiving command, waits for its port, runs the sending command, and times from
 * the sender's start until the receiver exits.
 */
export async function timed(
  receive: string,
  sendCmd: string,
  port: number,
  opts: { host?: string; netns?: string } = {},
): Promise<Measure> {
  const receiver = sh(`/usr/bin/time -f "RSS %M" ${receive}`, { FERRY_CODE: CODE }).spawn();
  // The probe connection of waitPort would be taken as the first (garbage) connection; ferry
  // ignores it, nc would not, so for nc we wait a fixed moment instead.
  if (receive.includes("receiver.ts")) await waitPort(port, opts.host ?? "127.0.0.1", opts.netns);
  else await new Promise((r) => setTimeout(r, 300));
  const started = performance.now();
  const sender = await sh(`/usr/bin/time -f "RSS %M" ${sendCmd}`, { FERRY_CODE: CODE }).output();
  const received = await receiver.output();
  const seconds = (performance.now() - started) / 1000;
  const sendErr = new TextDecoder().decode(sender.stderr);
  const recvErr = new TextDecoder().decode(received.stderr);
  if (!sender.success || !received.success) {
    throw new Error(`benchmark run failed:\n$ ${sendCmd}\n${sendErr}\n$ ${receive}\n${recvErr}`);
  }
  const sendOut = new TextDecoder().decode(sender.stdout);
  const done = sendOut.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
    .find((e) => e.event === "done");
  return {
    seconds,
    senderRss: rssOf(sendErr),
    receiverRss: rssOf(recvErr),
    wireBytes: done?.wire_bytes,
  };
}

export function median(values: Measure[]): Measure {
  const sorted = [...values].sort((a, b) => a.seconds - b.seconds);
  const mid = sorted[Math.floor(sorted.length / 2)]!;
  return {
    ...mid,
    senderRss: Math.max(...values.map((v) => v.senderRss ?? 0)),
    receiverRss: Math.max(...values.map((v) => v.receiverRss ?? 0)),
    rounds: values.map((v) => v.seconds),
  };
}

/**
 * The median of round-by-round ratios: each ferry run against the baseline run of the same
 * round, minutes apart at most. It follows the machine's drift better than a ratio of medians.
 */
export function pairedRatio(ferry: Measure, baseline: Measure): number | undefined {
  const f = ferry.rounds;
  const b = baseline.rounds;
  if (!f || !b || f.length !== b.length || f.length === 0) return undefined;
  const ratios = f.map((seconds, i) => seconds / b[i]!).sort((x, y) => x - y);
  return ratios[Math.floor(ratios.length / 2)];
}

/**
 * Runs each contender once per round, `runs` rounds, and returns each one's median. Taking turns
 * matters on a shared machine: its speed drifts over minutes (we saw 2x), and a ratio between
 * two blocks of runs measured minutes apart would partly measure the drift.
 */
export async function interleave<K extends string>(
  contenders: Record<K, () => Promise<Measure>>,
  runs = RUNS,
): Promise<Record<K, Measure>> {
  const keys = Object.keys(contenders) as K[];
  const results = new Map<K, Measure[]>(keys.map((key) => [key, []]));
  for (let i = 0; i < runs; i++) {
    for (const key of keys) results.get(key)!.push(await contenders[key]());
  }
  return Object.fromEntries(keys.map((key) => [key, median(results.get(key)!)])) as Record<
    K,
    Measure
  >;
}

// As the scripts' shebangs and the compiled binaries run (see lib/memory.ts).
export const deno = `${Deno.execPath()} run -A --v8-flags=--expose-gc`;
export const SENDER = join(ROOT, "sender.ts");
export const RECEIVER = join(ROOT, "receiver.ts");

export async function fresh(dir: string): Promise<string> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

/** One ferry transfer on loopback into a fresh `out`: `send` follows the sender's address. */
export function ferryRun(out: string, send: string, receive = ""): () => Promise<Measure> {
  return async () => {
    await fresh(out);
    const port = freePort();
    return await timed(
      `${deno} ${RECEIVER} --once --quiet --host 127.0.0.1 --port ${port} --dir ${out} ${receive}`,
      `${deno} ${SENDER} 127.0.0.1:${port} ${send}`,
      port,
    );
  };
}

export async function makeRandom(path: string, bytes: number): Promise<void> {
  await sh(`head -c ${bytes} /dev/urandom > ${path}`).output();
}

export function print(row: Row): void {
  const f = row.ferry;
  const b = row.baseline;
  const ratio = b ? (f.seconds / b.seconds).toFixed(2) + "x" : "-";
  const paired = b ? pairedRatio(f, b) : undefined;
  const mbps = (row.bytes / MiB / f.seconds).toFixed(0);
  const rss = `${((f.senderRss ?? 0) / MiB).toFixed(0)}/${
    ((f.receiverRss ?? 0) / MiB).toFixed(0)
  } MiB`;
  const extra = row.extra
    ? "  " + Object.entries(row.extra).map(([k, v]) => `${k}=${v}`).join(" ")
    : "";
  console.log(
    `${row.name.padEnd(34)} ferry ${f.seconds.toFixed(2).padStart(6)} s  ${
      (row.baselineName ?? "").padEnd(10)
    } ${b ? b.seconds.toFixed(2).padStart(6) + " s" : "      -"}  ratio ${ratio.padStart(6)}${
      paired === undefined ? "" : ` (paired ${paired.toFixed(2)}x)`
    }  ${mbps.padStart(5)} MiB/s  RSS send/recv ${rss}  target ${row.target}${extra}`,
  );
}
