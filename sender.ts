#!/usr/bin/env -S deno run --v8-flags=--expose-gc --allow-net --allow-read --allow-sys=networkInterfaces --allow-env=FERRY_CODE,FERRY_RELAY,FERRY_DEBUG,NO_COLOR
/**
 * sender.ts: send files to a ferry receiver. The tutorial's sender.py, grown up: it connects
 * (to HOST, or to a receiver it finds on the LAN or meets at a relay), proves it knows the code
 * phrase, offers everything at once, then streams the bytes, encrypted and verified. With
 * --wormhole it sends to magic-wormhole's `wormhole receive` instead. See `--help`.
 *
 *     FERRY_CODE=7-absurd-ribbon-castle deno run --allow-net --allow-read --allow-env=FERRY_CODE,FERRY_RELAY sender.ts [HOST[:PORT]] PATH...
 *
 * @module
 */

import { parseSenderArgs, runMain, SENDER_HELP, type SenderOptions } from "./lib/cli.ts";
import { generateCode, passwordScalar } from "./lib/code_phrase.ts";
import { EXIT } from "./lib/errors.ts";
import { legacyEntry, sendLegacy } from "./lib/legacy.ts";
import { Manifest } from "./lib/manifest.ts";
import { GuessBudget } from "./lib/budget.ts";
import { connect, type MeetOptions, waitForPeers } from "./lib/meet.ts";
import { Reporter } from "./lib/report.ts";
import { accept } from "./lib/serve.ts";
import { finished, sendOn } from "./lib/session.ts";
import { prepareSpake2 } from "./lib/spake2.ts";
import { dialTcp } from "./lib/transport.ts";
import { sendViaWormhole } from "./lib/wormhole/transfer.ts";

let secret = "";

async function main(): Promise<number> {
  // Read the command line: where to send, what, and how.
  const options = parseSenderArgs(Deno.args);
  if (options === null) {
    console.log(SENDER_HELP);
    return EXIT.OK;
  }
  const reporter = new Reporter(options);
  const warn = (text: string) => reporter.warn(text);
  const onCode = (code: string) => void (secret = code);
  if (options.wormhole) return await sendViaWormhole({ ...options, reporter, onCode });

  // What we are about to send. The paths are checked now; folders are walked as we offer them.
  const manifest = new Manifest(options.paths, {
    ...(options.name !== undefined ? { name: options.name } : {}),
    onSkip: (path, why) => warn(`skipping ${path}: ${why}`),
    refuseUnsendable: !options.ignoreUnsendableFiles,
  });
  if (options.legacy) return await sendTutorialWay(options, manifest, reporter);

  // The code phrase: given to us, or (when we listen) made up and shown to the user. Whoever
  // answers for it gets at most a few guesses in all, whichever way they come.
  const code = options.code ?? generateCode();
  secret = code;
  const w = passwordScalar(code);
  const budget = new GuessBudget();
  const meet = { ...options, role: "sender" as const, code, w, budget, warn };
  if (options.listen) return await serveReceivers(options, manifest, reporter, meet);

  // Connect to the receiver: at HOST like the tutorial, else found on the LAN or met at the
  // relay. What comes back has proved the code: a pipe, sealed with the session's keys.
  if (options.readAsPath !== undefined) {
    reporter.info(`ferry: ${options.readAsPath} is a path here, so it is sent; no HOST given`);
  }
  const pipe = await connect(meet, reporter);

  // Send: offer everything at once, then stream the bytes.
  return finished(await sendOn(pipe, manifest, { ...options, reporter, id: "1" }));
}

/** --listen: wait for receivers (on TCP, the LAN, a relay) and serve each that knows the code. */
async function serveReceivers(
  options: SenderOptions,
  manifest: Manifest,
  reporter: Reporter,
  meet: MeetOptions & { w: bigint },
): Promise<number> {
  const waiting = await waitForPeers(options.host, options.port, meet);
  const generated = options.code === undefined ? meet.code : undefined;
  reporter.listening(options.host, waiting, generated, "receiver.ts --connect");
  prepareSpake2(meet.w);
  // Serve each receiver that proves the code on its own, at the same time.
  const onError = (error: unknown) => reporter.sessionFailed(error, [meet.code]);
  const receivers = accept(waiting.links, {
    once: options.once,
    reporter,
    peers: "receivers",
    budget: meet.budget,
    role: "sender",
    w: meet.w,
    timeoutMs: options.timeoutMs,
    onError,
  });
  for await (const receiver of receivers) {
    receiver.serve(
      sendOn(receiver.pipe, manifest, { ...options, reporter, id: receiver.id, onError }),
    );
  }
  return await receivers.finished;
}

/** --legacy: the tutorial's wire. Connect, send "name<SEPARATOR>size", then the bytes. */
async function sendTutorialWay(options: SenderOptions, manifest: Manifest, reporter: Reporter) {
  const entries = [...manifest];
  legacyEntry(entries);
  using conn = await dialTcp(options.address!.host, options.address!.port);
  await sendLegacy(conn, entries, { reporter });
  return EXIT.OK;
}

if (import.meta.main) runMain(main, () => [secret], SENDER_HELP);
