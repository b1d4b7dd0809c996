/**
 * README.md teaches from the real code: every excerpt that names its file must still be in that
 * file, word for word, and the documented exit codes must match --help.
 */

import { join } from "node:path";
import { assert, assertEquals } from "./assert.ts";
import { ROOT } from "./helpers.ts";
import { EXIT_CODES_HELP } from "../lib/cli.ts";

const readme = await Deno.readTextFile(join(ROOT, "README.md"));

Deno.test("README code excerpts are the real code", async () => {
  const blocks = [...readme.matchAll(/```ts\n\/\/ ([\w./]+)\n([\s\S]*?)```/g)];
  assert(blocks.length >= 4, `only ${blocks.length} excerpts found`);
  // Formatting may re-indent an excerpt, so lines are compared without their indentation.
  const lines = (text: string) => text.split("\n").map((l) => l.trim()).join("\n");
  for (const [, file, body] of blocks) {
    const source = lines(await Deno.readTextFile(join(ROOT, file!)));
    assert(
      source.includes(lines(body!).trim()),
      `README excerpt from ${file} is not in ${file}:\n${body}`,
    );
  }
});

Deno.test("README gives the two set-up commands and the exit codes of --help", () => {
  assert(readme.includes("npx -y deno@2.9.6 task demo"));
  assert(readme.includes("npx -y deno@2.9.6 task test"));
  for (const line of EXIT_CODES_HELP.split("\n").slice(1)) {
    const [, code, meaning] = /^\s+(\d+)\s+(.*)$/.exec(line)!;
    const row = readme.split("\n").find((l) => l.split("|")[1]?.trim() === code);
    assert(row, `exit code ${code} missing from README`);
    assertEquals(
      row!.split("|")[2]!.trim().replaceAll("`", ""),
      meaning!.trim().replaceAll("`", ""),
    );
  }
});
