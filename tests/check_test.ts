/**
 * The code stays formatted, lint-clean and type-correct: the same checks as `deno task check`,
 * inside the suite so CI keeps main honest.
 */

import { assertEquals } from "./assert.ts";
import { ROOT } from "./helpers.ts";

async function deno(args: string[]): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, output: decode(out.stdout) + decode(out.stderr) };
}

Deno.test("deno fmt --check, deno lint and deno check pass", async () => {
  for (
    const args of [
      ["fmt", "--check"],
      ["lint"],
      ["check", "sender.ts", "receiver.ts", "protocol.ts", "lib/", "bench/", "scripts/"],
    ]
  ) {
    const result = await deno(args);
    assertEquals(result.code, 0, `deno ${args.join(" ")}:\n${result.output.slice(-3000)}`);
  }
});

Deno.test("no test prints SKIP and then returns, which would count it as passed", () => {
  const offenders: string[] = [];
  for (const item of Deno.readDirSync(`${ROOT}/tests`)) {
    if (!item.name.endsWith(".ts")) continue;
    const lines = Deno.readTextFileSync(`${ROOT}/tests/${item.name}`).split("\n");
    lines.forEach((line, i) => {
      // A SKIP line followed by a return: the test ends there and is counted as passed. Such a
      // case is decided before the tests and given `ignore:`, with its reason printed.
      if (/console\.log\(.*SKIP/.test(line) && /^\s*return\b/.test(lines[i + 1] ?? "")) {
        offenders.push(`${item.name}:${i + 1}`);
      }
    });
  }
  assertEquals(offenders, []);
});
