/**
 * The shape of the code: no import cycles between our modules, and protocol.ts (the one file
 * that knows byte layouts) depends on nothing of ours but the error types.
 */

import { join } from "node:path";
import { assertEquals } from "./assert.ts";
import { ROOT } from "./helpers.ts";

/** Our modules reachable from `entry`, each with the modules of ours it imports (types too). */
function importGraph(entry: string): Map<string, string[]> {
  const out = new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", join(ROOT, entry)],
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: {
      specifier: string;
      dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
    }[];
  };
  const ours = (specifier: string) => specifier.startsWith(`file://${ROOT}`);
  const name = (specifier: string) => specifier.slice(`file://${ROOT}`.length);
  const graph = new Map<string, string[]>();
  for (const module of info.modules) {
    if (!ours(module.specifier)) continue;
    // Type-only imports count too: a cycle of types is the same tangle for a reader.
    const deps = (module.dependencies ?? []).map((d) =>
      d.code?.specifier ?? d.type?.specifier ?? ""
    )
      .filter(ours);
    graph.set(name(module.specifier), deps.map(name));
  }
  return graph;
}

/** Every cycle found by a depth-first walk, as `a -> b -> a`. */
function cycles(graph: Map<string, string[]>): string[] {
  const found: string[] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === "open") {
        found.push([...path.slice(path.indexOf(next)), next].join(" -> "));
      } else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(node, "done");
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return found;
}

Deno.test("no import cycles among ferry's modules", () => {
  for (const entry of ["sender.ts", "receiver.ts", "tests/helpers.ts"]) {
    assertEquals(cycles(importGraph(entry)), [], `from ${entry}`);
  }
});

Deno.test("protocol.ts imports nothing of ours but the error types", () => {
  assertEquals(importGraph("protocol.ts").get("protocol.ts"), ["lib/errors.ts"]);
});

Deno.test("a file over 400 lines says why at its top", async () => {
  const long: string[] = [];
  const files = ["sender.ts", "receiver.ts", "protocol.ts"];
  for (const dir of ["lib", "lib/wormhole", "scripts"]) {
    for (const entry of Deno.readDirSync(join(ROOT, dir))) {
      if (entry.isFile && entry.name.endsWith(".ts")) files.push(`${dir}/${entry.name}`);
    }
  }
  for (const file of files) {
    const text = await Deno.readTextFile(join(ROOT, file));
    const lines = text.trimEnd().split("\n").length;
    // The reason goes in the module's opening comment.
    const top = text.slice(0, text.indexOf("*/") + 2);
    if (lines > 400 && !/Why (over 400 lines|one long file)/.test(top)) {
      long.push(`${file} (${lines})`);
    }
  }
  assertEquals(long, []);
});
