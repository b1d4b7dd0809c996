/**
 * ferry benchmarks: every number is a ratio against a baseline measured in the same run.
 *
 *     deno task bench                      # the loopback cases (about 2-4 minutes)
 *     BENCH_RUNS=5 deno task bench         # more runs per case (median is reported)
 *     BENCH_BIG=1 deno task bench          # add 8 GiB for the flat-memory check
 *     BENCH_LINK=1 deno task bench         # add the 1 Gbit/s netlab link and the 50 ms relay (root;
 *                                          # scp -r through the relay runs once: ~3.5 minutes)
 *     BENCH_ONLY=small deno task bench     # cases whose name contains "small"
 *     BENCH_ONLY=wormhole deno task bench  # 1 GiB with the Python magic-wormhole client
 *
 * Time is from starting the sending process until the receiving process has exited with the
 * data on disk (both sides' start-up included, as a user feels it). Data lives on tmpfs
 * (/dev/shm) when it exists. Results are printed as a table and written to bench/out/*.json.
 *
 * Baselines: `nc` (netcat-openbsd) for one file, `tar c | nc` for many files, `scp -c
 * aes128-gcm@openssh.com` when sshd is available.
 *
 * @module
 */

import { join } from "node:path";
import {
  BASE,
  cleanUp,
  deno,
  ferryRun,
  freePort,
  fresh,
  have,
  interleave,
  makeRandom,
  type Measure,
  MiB,
  ONLY,
  print,
  RECEIVER,
  ROOT,
  rows,
  RUNS,
  SENDER,
  sh,
  SHARED,
  timed,
  waitPort,
  WORK,
} from "./common.ts";
import { wormholeCase } from "./wormhole.ts";

async function makeLogs(path: string, bytes: number): Promise<void> {
  // Synthetic web-server logs: repetitive structure, varying numbers.
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const enc = new TextEncoder();
  let written = 0;
  let n = 0;
  const paths = ["/api/items", "/api/users/42", "/static/app.js", "/login", "/api/search?q=ferry"];
  while (written < bytes) {
    let block = "";
    for (let i = 0; i < 2000; i++, n++) {
      const ms = (n * 7919) % 1000;
      block +=
        `2026-11-26T10:${String(n % 60).padStart(2, "0")}:${
          String((n * 13) % 60).padStart(2, "0")
        }.${ms}Z INFO ` +
        `10.0.${n % 256}.${(n * 31) % 256} GET ${paths[n % paths.length]} status=${
          n % 17 ? 200 : 404
        } ` +
        `bytes=${(n * 104729) % 50000} ms=${(n * 37) % 900} ua="Mozilla/5.0 (X11; Linux x86_64)"\n`;
    }
    const bytesOut = enc.encode(block);
    await file.write(bytesOut);
    written += bytesOut.length;
  }
}

async function ncCase(
  name: string,
  file: string,
  bytes: number,
  target: string,
  ferryArgs: string[] = [],
  extra?: (f: Measure, b: Measure) => Record<string, number | string>,
  others: Record<string, () => Promise<Measure>> = {},
) {
  if (ONLY && !name.includes(ONLY)) return;
  const out = join(WORK, "out");
  const results = await interleave({
    nc: async () => {
      await fresh(out);
      const port = freePort();
      return await timed(
        `nc -l 127.0.0.1 ${port} > ${out}/nc.bin`,
        `nc -N 127.0.0.1 ${port} < ${file}`,
        port,
      );
    },
    ferry: ferryRun(
      out,
      `${file} --json ${ferryArgs.join(" ")}`,
      ferryArgs.includes("--legacy") ? "--legacy" : "",
    ),
    ...others,
  });
  const { nc: baseline, ferry } = results;
  rows.push({
    name,
    ferry,
    baseline,
    baselineName: "nc",
    bytes,
    target,
    extra: { ...extra?.(ferry, baseline), ...versus(ferry, results, Object.keys(others)) },
  });
  print(rows.at(-1)!);
}

/** `NAME_s` and `vs_NAME` columns for the other contenders of a case. */
function versus(
  ferry: Measure,
  results: Record<string, Measure>,
  names: string[],
): Record<string, string> {
  const columns: Record<string, string> = {};
  for (const name of names) {
    columns[`${name}_s`] = results[name]!.seconds.toFixed(2);
    columns[`vs_${name}`] = (ferry.seconds / results[name]!.seconds).toFixed(2) + "x";
  }
  return columns;
}

interface Sshd {
  port: number;
  /** The client's private key. */
  key: string;
  /** An `ssh` command line for this server (for `rsync -e`). */
  ssh: string;
  stop: () => Promise<void>;
}

/** What an ssh client needs for a throwaway server: its key, no host key checks, quiet. */
function clientOptions(key: string): string {
  return `-i ${key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR`;
}

/** Options for `scp` to reach `sshd` on `port` (its own, or a relay's in front of it). */
function sshOptions(sshd: Sshd, port = sshd.port): string {
  return `-P ${port} ${clientOptions(sshd.key)}`;
}

/** An sshd on a loopback port, for scp and rsync baselines (when openssh-server is installed). */
async function startSshd(): Promise<Sshd | undefined> {
  if (!(await Deno.stat("/usr/sbin/sshd").catch(() => null))) return undefined;
  const dir = await Deno.makeTempDir({ prefix: "ferry-sshd-" });
  const port = freePort();
  await Deno.mkdir("/run/sshd", { recursive: true }).catch(() => {});
  await sh(
    `ssh-keygen -q -t ed25519 -N "" -f ${dir}/host && ssh-keygen -q -t ed25519 -N "" -f ${dir}/user && cp ${dir}/user.pub ${dir}/authorized_keys`,
  ).output();
  await Deno.writeTextFile(
    `${dir}/sshd_config`,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${dir}/host`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      `PidFile ${dir}/pid`,
      "PermitRootLogin yes",
      "PasswordAuthentication no",
      "StrictModes no",
      "UsePAM no",
      "Subsystem sftp internal-sftp",
    ].join("\n") + "\n",
  );
  const daemon = new Deno.Command("/usr/sbin/sshd", {
    args: ["-D", "-e", "-f", `${dir}/sshd_config`],
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitPort(port).catch(() => {});
  const key = `${dir}/user`;
  const ssh = `ssh -p ${port} ${clientOptions(key)}`;
  const probe = await sh(`${ssh} root@127.0.0.1 true`).output();
  if (!probe.success) {
    daemon.kill();
    await daemon.status;
    return undefined;
  }
  return {
    port,
    key,
    ssh,
    stop: async () => {
      daemon.kill();
      await daemon.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** One timed run of a plain command (scp, rsync), after `prepare`. */
function commandRun(prepare: () => Promise<unknown>, command: string): () => Promise<Measure> {
  return async () => {
    await prepare();
    const started = performance.now();
    const out = await sh(command).output();
    if (!out.success) throw new Error(`${command}: ${new TextDecoder().decode(out.stderr)}`);
    return { seconds: (performance.now() - started) / 1000 };
  };
}

console.log(
  `ferry bench: ${navigator.hardwareConcurrency} cores, data in ${BASE}, median of ${RUNS} runs`,
);
if (!(await have("nc"))) {
  console.log("bench: netcat missing; installing netcat-openbsd");
  await sh("apt-get install -y netcat-openbsd >/dev/null 2>&1").output();
}

const sshd = await startSshd();
if (!sshd) console.log("bench: no sshd (apt-get install openssh-server): scp and rsync skipped");
const scpCommand = (from: string, to: string) =>
  `scp -q -c aes128-gcm@openssh.com ${sshOptions(sshd!)} ${from} root@127.0.0.1:${to}`;

// 1 GiB random: encrypted default and --legacy against nc (and scp when there is an sshd).
const big = join(WORK, "random-1g.bin");
if (!ONLY || "1 GiB".includes(ONLY) || ONLY.includes("GiB")) {
  await makeRandom(big, 1024 * MiB);
  const out = join(WORK, "out");
  const scp = sshd
    ? { scp_aes128gcm: commandRun(() => fresh(out), scpCommand(big, `${out}/`)) }
    : {};
  await ncCase("1 GiB encrypted (default)", big, 1024 * MiB, "<= 3x nc, < scp", [], undefined, scp);
  await ncCase("1 GiB --legacy (plaintext)", big, 1024 * MiB, "<= 1.5x nc", ["--legacy"]);
  await ncCase("1 GiB --compress none", big, 1024 * MiB, "(reference)", ["--compress", "none"]);
}

// Compressible logs: bytes on the wire, auto vs none.
if (!ONLY || "logs".includes(ONLY)) {
  const logs = join(WORK, "logs.txt");
  await makeLogs(logs, 512 * MiB);
  const size = (await Deno.stat(logs)).size;
  await ncCase("512 MiB logs --compress auto", logs, size, ">= 3x fewer bytes", [], (f) => ({
    wire_ratio: (size / (f.wireBytes ?? size)).toFixed(1),
  }));
}

// Incompressible: auto vs none, same run.
if (!ONLY || "incompressible".includes(ONLY)) {
  const noise = join(WORK, "noise.bin");
  await makeRandom(noise, 512 * MiB);
  const out = join(WORK, "out");
  const run = (mode: string) => ferryRun(out, `${noise} --json --compress ${mode}`);
  const { none, auto } = await interleave(
    { none: run("none"), auto: run("auto") },
    Math.max(RUNS, 5),
  );
  rows.push({
    name: "512 MiB random, auto vs none",
    ferry: auto,
    baseline: none,
    baselineName: "none",
    bytes: 512 * MiB,
    target: "<= 1.03x",
  });
  print(rows.at(-1)!);
}

// 10,000 files of 4 KiB in 100 folders: tar c | nc against ferry.
if (!ONLY || "small".includes(ONLY)) {
  const tree = join(WORK, "tree");
  await fresh(tree);
  for (let d = 0; d < 100; d++) {
    await Deno.mkdir(join(tree, `d${d}`));
    for (let f = 0; f < 100; f++) {
      await Deno.writeFile(
        join(tree, `d${d}`, `f${f}.bin`),
        crypto.getRandomValues(new Uint8Array(4096)),
      );
    }
  }
  const out = join(WORK, "out");
  const rsync: Record<string, () => Promise<Measure>> = sshd
    ? {
      rsync_ssh: commandRun(
        () => fresh(out),
        `rsync -a -e "${sshd.ssh}" ${tree} root@127.0.0.1:${out}/`,
      ),
    }
    : {};
  const ferryTree = (args: string) => ferryRun(out, `${tree} ${args}`);
  const results: Record<string, Measure> = await interleave({
    tarNc: async () => {
      await fresh(out);
      const port = freePort();
      return await timed(
        `nc -l 127.0.0.1 ${port} | tar x -C ${out}`,
        `tar c -C ${WORK} tree | nc -N 127.0.0.1 ${port}`,
        port,
      );
    },
    // As tar runs here: no line per file. Then with --json, which writes two events per file.
    ferry: ferryTree(""),
    json: ferryTree("--json"),
    ...rsync,
  });
  rows.push({
    name: "10,000 x 4 KiB files",
    ferry: results.ferry!,
    baseline: results.tarNc!,
    baselineName: "tar|nc",
    bytes: 10_000 * 4096,
    target: "<= 3x tar|nc, 2x faster than rsync",
    extra: versus(results.ferry!, results, ["json", ...Object.keys(rsync)]),
  });
  print(rows.at(-1)!);
}

// 8 GiB: peak memory must match the 1 GiB run (flat).
async function freeBytes(dir: string): Promise<number> {
  const df = await sh(`df --output=avail -B1 ${dir} | tail -1`).output();
  return Number(new TextDecoder().decode(df.stdout));
}

async function hugeCase(): Promise<void> {
  // The copy goes to a folder on disk: two 8 GiB files in RAM-backed /dev/shm can use up memory.
  const out = await Deno.makeTempDir({ prefix: "ferry-bench-8g-" });
  try {
    if ((await freeBytes(WORK)) < 9 * 1024 * MiB || (await freeBytes(out)) < 9 * 1024 * MiB) {
      console.log(`SKIP: 8 GiB case: it needs 9 GiB free in ${BASE} and in ${out}`);
      return;
    }
    const huge = join(WORK, "random-8g.bin");
    // Made from the 1 GiB file, which BENCH_ONLY may have skipped.
    if (!(await Deno.stat(big).then(() => true, () => false))) await makeRandom(big, 1024 * MiB);
    await sh(`for i in 1 2 3 4 5 6 7 8; do cat ${big}; done > ${huge}`).output();
    const ferry = await ferryRun(out, `${huge} --json`)();
    await Deno.remove(huge);
    rows.push({
      name: "8 GiB encrypted (memory)",
      ferry,
      bytes: 8192 * MiB,
      target: "RSS <= 100 MB, same as 1 GiB",
    });
    print(rows.at(-1)!);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}
if (Deno.env.get("BENCH_BIG") === "1") await hugeCase();

// Real links: 1 Gbit/s between two namespaces, and 50 ms round trips through a relay.
if (Deno.env.get("BENCH_LINK") === "1") {
  const netlab = join(SHARED, "netlab.sh");
  const up = await sh(`${netlab} up 1gbit`).output();
  if (!up.success) {
    console.log(`bench: netlab unavailable: ${new TextDecoder().decode(up.stderr).trim()}`);
  } else {
    try {
      await linkCases(netlab);
    } finally {
      await sh(`${netlab} down`).output();
    }
  }
  if (!ONLY || "1,000 files".includes(ONLY) || ONLY.includes("RTT")) await relayCase();
}

async function linkCases(netlab: string): Promise<void> {
  const out = join(WORK, "out");
  const overLink = (path: string, args = "") => async () => {
    await fresh(out);
    return await timed(
      `${netlab} b ${deno} ${RECEIVER} --once --quiet --host 10.77.0.2 --port 5001 --dir ${out}`,
      `${netlab} a ${deno} ${SENDER} 10.77.0.2:5001 ${path} --json ${args}`,
      5001,
      { host: "10.77.0.2", netns: "ferrylab-b" },
    );
  };

  if (!ONLY || "256 MiB over 1 Gbit/s link".includes(ONLY) || ONLY.includes("Gbit")) {
    const file = join(WORK, "random-256m.bin");
    await makeRandom(file, 256 * MiB);
    // The fixed cost of a transfer (start-up, handshake), measured with one byte in the same
    // run, so the steady rate while data flows can be told apart from it.
    const tiny = join(WORK, "one-byte.bin");
    await Deno.writeFile(tiny, new Uint8Array([1]));
    const { nc: baseline, ferry, fixed } = await interleave({
      nc: async () => {
        await fresh(out);
        return await timed(
          `${netlab} b nc -l 10.77.0.2 5001 > ${out}/nc.bin`,
          `${netlab} a nc -N 10.77.0.2 5001 < ${file}`,
          5001,
        );
      },
      ferry: overLink(file),
      fixed: overLink(tiny),
    });
    rows.push({
      name: "256 MiB over 1 Gbit/s link",
      ferry,
      baseline,
      baselineName: "nc",
      bytes: 256 * MiB,
      target: ">= 95% of nc throughput",
      extra: {
        throughput_vs_nc: `${(100 * baseline.seconds / ferry.seconds).toFixed(0)}%`,
        fixed_cost_s: fixed.seconds.toFixed(2),
        steady_vs_nc: `${(100 * baseline.seconds / (ferry.seconds - fixed.seconds)).toFixed(0)}%`,
      },
    });
    print(rows.at(-1)!);
  }

  // Compressible logs across the same link: auto must beat sending them as they are.
  if (!ONLY || "256 MiB logs over 1 Gbit/s link".includes(ONLY) || ONLY.includes("Gbit")) {
    const logs = join(WORK, "logs-256m.txt");
    await makeLogs(logs, 256 * MiB);
    const size = (await Deno.stat(logs)).size;
    const { auto, none } = await interleave({
      auto: overLink(logs, "--compress auto"),
      none: overLink(logs, "--compress none"),
    });
    rows.push({
      name: "256 MiB logs over 1 Gbit/s link",
      ferry: auto,
      baseline: none,
      baselineName: "none",
      bytes: size,
      target: "auto faster than none",
      extra: { wire_ratio: (size / (auto.wireBytes ?? size)).toFixed(1) },
    });
    print(rows.at(-1)!);
  }
}

/**
 * 1,000 small files through a 50 ms round trip, against one file of the same total size, and
 * once against `scp -r` (when there is an sshd): it needs several round trips per file, so one
 * run takes minutes.
 */
async function relayCase(): Promise<void> {
  const SCP_R_LIMIT_S = 900;
  const proxy = join(SHARED, "delay_proxy.py");
  const thousand = join(WORK, "thousand");
  await fresh(thousand);
  for (let i = 0; i < 1000; i++) {
    await Deno.writeFile(join(thousand, `f${i}.bin`), crypto.getRandomValues(new Uint8Array(4096)));
  }
  const one = join(WORK, "one-4m.bin");
  await makeRandom(one, 1000 * 4096);
  const out = join(WORK, "out");
  /** Runs `run` with a relay that adds 25 ms each way in front of `port`. */
  const throughRelay = async <T>(port: number, run: (relayPort: number) => Promise<T>) => {
    const relayPort = freePort();
    const relay = new Deno.Command("python3", {
      args: [proxy, String(relayPort), String(port), "25"],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await waitPort(relayPort).catch(() => {});
    try {
      return await run(relayPort);
    } finally {
      relay.kill();
      await relay.status;
    }
  };
  const overRelay = (path: string) => async () => {
    await fresh(out);
    const port = freePort();
    return await throughRelay(port, (relayPort) =>
      timed(
        `${deno} ${RECEIVER} --once --quiet --host 127.0.0.1 --port ${port} --dir ${out}`,
        `${deno} ${SENDER} 127.0.0.1:${relayPort} ${path} --json`,
        port,
      ));
  };
  const { single, many } = await interleave({
    single: overRelay(one),
    many: overRelay(thousand),
  });
  const extra: Record<string, string> = {
    extra_round_trips: ((many.seconds - single.seconds) / 0.05).toFixed(1),
  };
  if (sshd) {
    await fresh(out);
    const started = performance.now();
    const scp = await throughRelay(sshd.port, (relayPort) =>
      sh(
        `timeout ${SCP_R_LIMIT_S} scp -q -r -c aes128-gcm@openssh.com ${
          sshOptions(sshd, relayPort)
        } ${thousand} root@127.0.0.1:${out}/`,
      ).output());
    const seconds = (performance.now() - started) / 1000;
    if (scp.success) {
      extra.scp_r_s = seconds.toFixed(1);
      extra.vs_scp_r = (many.seconds / seconds).toFixed(4) + "x";
    } else {
      extra.scp_r_s = scp.code === 124 ? `>${SCP_R_LIMIT_S}` : `failed (exit ${scp.code})`;
    }
  }
  rows.push({
    name: "1,000 files over 50 ms RTT",
    ferry: many,
    baseline: single,
    baselineName: "1 file",
    bytes: 1000 * 4096,
    target: "a few RTTs more than 1 file, far ahead of scp -r",
    extra,
  });
  print(rows.at(-1)!);
}

// 256 MiB through a magic-wormhole transit relay on loopback, against a plain byte pipe through
// the same relay (bench/relay_pipe.py: the same handshake line, then raw bytes).
async function transitRelayCase(): Promise<void> {
  const file = join(WORK, "random-256m.bin");
  await makeRandom(file, 256 * MiB);
  const out = join(WORK, "out");
  const relayPort = freePort();
  const relay = sh(`exec twist3 transitrelay --port=tcp:${relayPort}:interface=127.0.0.1`).spawn();
  await waitPort(relayPort);
  const relayAt = `tcp:127.0.0.1:${relayPort}`;
  const pipe = join(ROOT, "bench/relay_pipe.py");
  const token = "ab".repeat(32);
  try {
    const results = await interleave({
      pipe: async () => {
        await fresh(out);
        const receiving = sh(
          `python3 ${pipe} receive 127.0.0.1 ${relayPort} ${token} ${out}/p.bin ${256 * MiB}`,
        ).spawn();
        await new Promise((r) => setTimeout(r, 300));
        const started = performance.now();
        const sent = await sh(`python3 ${pipe} send 127.0.0.1 ${relayPort} ${token} ${file}`)
          .output();
        const got = await receiving.output();
        if (!sent.success || !got.success) throw new Error("relay pipe failed");
        return { seconds: (performance.now() - started) / 1000 };
      },
      ferry: async () => {
        await fresh(out);
        const port = freePort();
        const measure = await timed(
          `${deno} ${RECEIVER} --once --quiet --host 127.0.0.1 --port ${port} --dir ${out} --relay ${relayAt}`,
          `${deno} ${SENDER} ${file} --json --no-discover --relay ${relayAt}`,
          port,
        );
        return measure;
      },
    });
    rows.push({
      name: "256 MiB through a transit relay",
      ferry: results.ferry,
      baseline: results.pipe,
      baselineName: "byte pipe via relay",
      bytes: 256 * MiB,
      target: ">= 90% of the pipe's throughput (ratio <= 1.11x)",
    });
    print(rows.at(-1)!);
  } finally {
    relay.kill();
    await relay.status;
  }
}
if ((!ONLY || "relay".includes(ONLY) || ONLY.includes("relay")) && (await have("twist3"))) {
  await transitRelayCase();
}

// Finding a waiting receiver on the LAN (a namespace of our own, multicast over loopback): a
// one-byte send without HOST, against the same send with HOST, same rounds.
async function discoveryCase(): Promise<void> {
  const netns = `ferry-bench-lan-${Deno.pid}`;
  const setup = await sh(
    `ip netns add ${netns} && ip -n ${netns} link set lo up && ` +
      `ip -n ${netns} link set lo multicast on && ip -n ${netns} route add 224.0.0.0/4 dev lo`,
  ).output();
  if (!setup.success) {
    console.log("bench: cannot make a network namespace (root?); LAN discovery skipped");
    return;
  }
  const one = join(WORK, "one-byte.txt");
  await Deno.writeTextFile(one, "x");
  const out = join(WORK, "out");
  const inLan = `ip netns exec ${netns}`;
  const run = (withHost: boolean) => async () => {
    await fresh(out);
    const port = freePort();
    return await timed(
      `${inLan} ${deno} ${RECEIVER} --once --quiet --port ${port} --dir ${out}`,
      `${inLan} ${deno} ${SENDER} ${withHost ? `127.0.0.1:${port}` : ""} ${one} --json`,
      port,
      { netns },
    );
  };
  try {
    const results = await interleave({ host: run(true), lan: run(false) });
    rows.push({
      name: "finding the receiver on the LAN",
      ferry: results.lan,
      baseline: results.host,
      baselineName: "same send with HOST",
      bytes: 1,
      target: "whole send under 1 s",
      extra: { discovery_ms: ((results.lan.seconds - results.host.seconds) * 1000).toFixed(0) },
    });
    print(rows.at(-1)!);
  } finally {
    await sh(`ip netns del ${netns}`).output();
  }
}
if (!ONLY || "discovery".includes(ONLY) || ONLY.includes("LAN")) await discoveryCase();

// 1 GiB with the Python magic-wormhole client, both ways, against it talking to itself.
if (!ONLY || "wormhole".includes(ONLY) || ONLY.includes("wormhole")) {
  if ((await have("twist3")) && (await have("wormhole"))) await wormholeCase(big);
  else console.log("bench: no wormhole/twist3 (apt-get install magic-wormhole ...): skipped");
}

await sshd?.stop();
await Deno.mkdir(join(ROOT, "bench/out"), { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
await Deno.writeTextFile(
  join(ROOT, `bench/out/results-${stamp}.json`),
  JSON.stringify(
    { date: new Date().toISOString(), cores: navigator.hardwareConcurrency, runs: RUNS, rows },
    null,
    2,
  ),
);
cleanUp();
console.log(`bench: results written to bench/out/results-${stamp}.json`);
