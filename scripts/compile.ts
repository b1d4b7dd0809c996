/**
 * Builds standalone `ferry-send` and `ferry-receive` executables with `deno compile`, with the
 * narrowest permissions baked in.
 *
 *     deno task compile                       # for this machine, into dist/
 *     deno task compile --target aarch64-apple-darwin
 *
 * Targets: x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu, x86_64-apple-darwin,
 * aarch64-apple-darwin, x86_64-pc-windows-msvc.
 *
 * `deno compile` downloads a small runtime (denort) for each target the first time. Where that
 * download is impossible (an offline machine), point DENORT_BIN at a denort binary you have.
 *
 * @module
 */

import { parseArgs } from "node:util";

export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

const ENV = "--allow-env=FERRY_CODE,FERRY_RELAY,FERRY_DEBUG";
/** What each executable may do: the receiver writes, the sender only reads. */
export const BINARIES = [
  {
    name: "ferry-send",
    script: "sender.ts",
    permissions: ["--allow-net", "--allow-read", "--allow-sys=networkInterfaces", ENV],
  },
  {
    name: "ferry-receive",
    script: "receiver.ts",
    permissions: [
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-sys=statfs,networkInterfaces",
      ENV,
    ],
  },
];

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: { target: { type: "string" }, out: { type: "string" } },
  });
  if (values.target && !TARGETS.includes(values.target)) {
    console.error(`compile: unknown target ${values.target}; one of ${TARGETS.join(", ")}`);
    return 2;
  }
  const root = new URL("..", import.meta.url).pathname;
  const out = values.out ?? `${root}dist`;
  await Deno.mkdir(out, { recursive: true });
  for (const binary of BINARIES) {
    const suffix = values.target ? `-${values.target}` : "";
    const args = [
      "compile",
      // Lets lib/memory.ts keep memory flat, as the scripts' shebangs do.
      "--v8-flags=--expose-gc",
      ...binary.permissions,
      ...(values.target ? ["--target", values.target] : []),
      "--output",
      `${out}/${binary.name}${suffix}`,
      `${root}${binary.script}`,
    ];
    console.error(`compile: deno ${args.join(" ")}`);
    const result = await new Deno.Command(Deno.execPath(), {
      args,
      stdout: "inherit",
      stderr: "inherit",
    })
      .output();
    if (!result.success) {
      console.error(`compile: building ${binary.name} failed (see above)`);
      return 1;
    }
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
