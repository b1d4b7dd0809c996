/**
 * A hostile peer on the LAN, for the meeting tests: it knows the code's public part (the tag
 * anyone can copy from a sender's query), announces `--ports` ports as a waiting receiver, and
 * on each connection either says nothing (`--mode silent`) or runs the waiting side's handshake
 * with a wrong guess (`--mode guess`), counting the guesses a sender let it test. It stops after
 * `--seconds`, or on SIGTERM, and prints `guesses N`.
 *
 *     FERRY_CODE=42-absurd-ribbon-castle deno run -A tests/tools/lan_impostor.ts --ports 8 --mode guess
 */

import { parseArgs } from "node:util";
import { Channel } from "../../lib/channel.ts";
import { discoveryTag, passwordScalar } from "../../lib/code_phrase.ts";
import { COMPRESS_CAPS } from "../../lib/compress.ts";
import { announce } from "../../lib/discovery.ts";
import { AuthError } from "../../lib/errors.ts";
import { handshake } from "../../lib/handshake.ts";
import { ROLE_RECEIVER } from "../../protocol.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    ports: { type: "string", default: "2" },
    mode: { type: "string", default: "silent" },
    seconds: { type: "string", default: "20" },
  },
});
const code = Deno.env.get("FERRY_CODE")!;
const tag = discoveryTag(code);
// Same public part, and a secret it can only guess.
const guess = passwordScalar(`${code.split("-").slice(0, 2).join("-")}-wrong-guess`);
let guesses = 0;
const open = new Set<Deno.Conn>();

async function serve(conn: Deno.Conn): Promise<void> {
  open.add(conn);
  try {
    if (values.mode === "silent") {
      await conn.read(new Uint8Array(1 << 16)).catch(() => null);
      // Hold it, silent, until the sender gives up on it.
      while ((await conn.read(new Uint8Array(1 << 16)).catch(() => null)) !== null) { /* keep */ }
      return;
    }
    const channel = new Channel(conn, { timeoutMs: 10_000 });
    try {
      await handshake(channel, {
        role: "receiver",
        w: guess,
        caps: COMPRESS_CAPS,
        confirmFirst: false,
      });
    } catch (err) {
      // The sender showed its confirmation: one guess tested (and it did not match ours).
      if (err instanceof AuthError) guesses++;
    } finally {
      channel.close();
    }
  } finally {
    open.delete(conn);
  }
}

const stops: (() => void)[] = [];
for (let i = 0; i < Number(values.ports); i++) {
  const listener = Deno.listen({ hostname: "0.0.0.0", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const announcer = await announce(port, { tag, role: ROLE_RECEIVER });
  stops.push(() => {
    announcer.stop();
    listener.close();
  });
  (async () => {
    for await (const conn of listener) serve(conn);
  })().catch(() => {});
}
const finish = () => {
  for (const stop of stops) stop();
  for (const conn of open) conn.close();
  console.log(`guesses ${guesses}`);
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", finish);
console.error(`impostor: ${values.ports} ports announced`);
setTimeout(finish, Number(values.seconds) * 1000);
