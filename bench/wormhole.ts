/**
 * ferry against the Python magic-wormhole client: 1 GiB sent by `sender.ts --wormhole` to
 * `wormhole receive`, and by `wormhole send` to `receiver.ts --wormhole`, each against
 * `wormhole send` to `wormhole receive` in the same rounds. A mailbox server and a transit relay
 * run on loopback; the transfer itself goes direct. Time is from starting the sender (which
 * allocates the code) until both sides have exited with the file on disk.
 *
 * @module
 */

import { join } from "node:path";
import {
  deno,
  freePort,
  fresh,
  interleave,
  makeRandom,
  type Measure,
  MiB,
  print,
  RECEIVER,
  rows,
  SENDER,
  sh,
  waitPort,
  WORK,
} from "./common.ts";

type Side = "ferry" | "wormhole";

interface Servers {
  ferry: string;
  wormhole: string;
}

/** The command line of one side; the receiver gets the code on stdin or in FERRY_CODE. */
function command(side: Side, role: "send" | "receive", servers: Servers, file: string): string {
  if (side === "wormhole") {
    return role === "send"
      ? `exec wormhole ${servers.wormhole} send ${file}`
      : `exec wormhole ${servers.wormhole} receive --accept-file`;
  }
  return role === "send"
    ? `exec ${deno} ${SENDER} --wormhole ${servers.ferry} ${file}`
    : `exec ${deno} ${RECEIVER} --wormhole ${servers.ferry} --quiet --dir .`;
}

/** The code a sender prints: `Wormhole code is: CODE` or `... run: wormhole receive CODE`. */
const CODE_LINE = /(?:Wormhole code is: |wormhole receive )(\S+)\s/;

/** Reads the sender's stderr until the code appears; the rest is drained in the background. */
async function codeFrom(stderr: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the sender ended without printing a code: ${seen.slice(-300)}`);
    seen += value;
    const match = CODE_LINE.exec(seen);
    if (match) {
      (async () => {
        while (!(await reader.read()).done);
      })().catch(() => {});
      return match[1]!;
    }
  }
}

function transfer(from: Side, to: Side, servers: Servers, file: string, out: string) {
  return async (): Promise<Measure> => {
    await fresh(out);
    const started = performance.now();
    const sender = sh(command(from, "send", servers, file)).spawn();
    const code = await codeFrom(sender.stderr);
    const receiver = new Deno.Command("bash", {
      args: ["-c", command(to, "receive", servers, file)],
      cwd: out,
      env: { FERRY_CODE: code },
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const writer = receiver.stdin.getWriter();
    await writer.write(new TextEncoder().encode(`${code}\n`));
    await writer.close();
    const [sent, received] = await Promise.all([sender.status, receiver.output()]);
    const seconds = (performance.now() - started) / 1000;
    const size = await Deno.stat(join(out, file.split("/").at(-1)!)).then((s) => s.size, () => -1);
    if (!sent.success || !received.success || size !== 1024 * MiB) {
      throw new Error(
        `${from} -> ${to} failed (sender ${sent.code}, receiver ${received.code}, ${size} bytes):` +
          ` ${new TextDecoder().decode(received.stderr).slice(-500)}`,
      );
    }
    return { seconds };
  };
}

/** Runs the case; the caller checks that `twist3` and `wormhole` are here. */
export async function wormholeCase(big: string): Promise<void> {
  if (!(await Deno.stat(big).catch(() => undefined))) await makeRandom(big, 1024 * MiB);
  const home = join(WORK, "wormhole-servers");
  await fresh(home);
  const mailboxPort = freePort(), relayPort = freePort();
  // The mailbox server keeps its database (relay.sqlite) in its working folder.
  const servers = [
    `wormhole-mailbox --port=tcp:${mailboxPort}:interface=127.0.0.1`,
    `transitrelay --port=tcp:${relayPort}:interface=127.0.0.1`,
  ].map((args) =>
    new Deno.Command("bash", {
      args: ["-c", `exec twist3 ${args}`],
      cwd: home,
      stdout: "null",
      stderr: "null",
    })
      .spawn()
  );
  try {
    await Promise.all([waitPort(mailboxPort), waitPort(relayPort)]);
    const mailbox = `ws://127.0.0.1:${mailboxPort}/v1`, relay = `tcp:127.0.0.1:${relayPort}`;
    const flags: Servers = {
      ferry: `--mailbox ${mailbox} --relay ${relay} --no-discover`,
      wormhole: `--relay-url ${mailbox} --transit-helper ${relay}`,
    };
    const out = join(WORK, "out");
    const results = await interleave({
      python: transfer("wormhole", "wormhole", flags, big, out),
      ferrySends: transfer("ferry", "wormhole", flags, big, out),
      ferryReceives: transfer("wormhole", "ferry", flags, big, out),
    });
    for (
      const [name, measure] of [
        ["1 GiB ferry -> wormhole receive", results.ferrySends],
        ["1 GiB wormhole send -> ferry", results.ferryReceives],
      ] as const
    ) {
      rows.push({
        name,
        ferry: measure,
        baseline: results.python,
        baselineName: "wormhole -> wormhole",
        bytes: 1024 * MiB,
        target: "no slower than the Python client (ratio <= 1.0x)",
      });
      print(rows.at(-1)!);
    }
  } finally {
    for (const server of servers) {
      server.kill();
      await server.status;
    }
  }
}
