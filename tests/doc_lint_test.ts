/**
 * protocol.ts is the contract a compatible peer is written from: every export has a doc comment
 * and an explicit type (`deno doc --lint` is clean).
 */

import { join } from "node:path";
import { assert } from "./assert.ts";
import { ROOT } from "./helpers.ts";

Deno.test("deno doc --lint protocol.ts: every export is documented", () => {
  const out = new Deno.Command(Deno.execPath(), {
    args: ["doc", "--lint", join(ROOT, "protocol.ts")],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert(out.success, text);
});
