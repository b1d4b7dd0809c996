#!/usr/bin/env -S deno run --v8-flags=--expose-gc --allow-net --allow-read --allow-write --allow-sys=statfs,networkInterfaces --allow-env=FERRY_CODE,FERRY_RELAY,FERRY_DEBUG,NO_COLOR
/**
 * receiver.ts: receive files from ferry senders. The tutorial's receiver.py, grown up: it
 * listens on 0.0.0.0:5001 (and says so on the LAN, and waits at a relay if given one), serves
 * many senders at once, each on its own, and writes only verified files, only inside --dir.
 * With --wormhole it receives from magic-wormhole's `wormhole send` instead. See `--help`.
 *
 *     deno run --allow-net --allow-read --allow-write --allow-env=FERRY_CODE,FERRY_RELAY receiver.ts --dir downloads
 *
 * @module
 */

import { parseReceiverArgs, RECEIVER_HELP, type ReceiverOptions, runMain } from "./lib/cli.ts";
import { generateCode, passwordScalar } from "./lib/code_phrase.ts";
import { EXIT } from "./lib/errors.ts";
import { GuessBudget } from "./lib/budget.ts";
import { connect, waitForPeers } from "./lib/meet.ts";
import { Reporter } from "./lib/report.ts";
import { accept, serveConnections } from "./lib/serve.ts";
import { finished, legacySession, receiveOn } from "./lib/session.ts";
import { prepareSpake2 } from "./lib/spake2.ts";
import { receiveViaWormhole } from "./lib/wormhole/transfer.ts";

let secret = "";

async function main(): Promise<number> {
  // Read the command line.
  const options = parseReceiverArgs(Deno.args);
  if (options === null) {
    console.log(RECEIVER_HELP);
    return EXIT.OK;
  }
  const reporter = new Reporter({ ...options, hashLines: options.stdout ? "stderr" : "stdout" });
  if (options.madeDir) reporter.info(`ferry: made the folder ${Deno.realPathSync(options.dir)}`);
  secret = options.code ?? "";
  if (options.wormhole !== undefined) return await receiveViaWormhole({ ...options, reporter });

  // The code phrase: given to us, or made up here and shown to the user. Whoever answers for
  // it gets at most a few guesses in all, whichever way they come.
  const code = options.legacy ? "" : options.code ?? generateCode();
  secret = code;
  const w = options.legacy ? 0n : passwordScalar(code);
  const budget = new GuessBudget();
  const warn = reporter.warn.bind(reporter);
  const meet = { ...options, role: "receiver" as const, code, w, budget, warn };

  // --connect: fetch from a listening sender (the server sends files too), at HOST or found.
  // What comes back has proved the code: a pipe, sealed with the session's keys.
  if (options.connect) {
    const pipe = await connect({ ...meet, ...options.connect }, reporter);
    return finished(await receiveOn(pipe, receiving(options, reporter, "1")));
  }

  // Listen, like the tutorial: 0.0.0.0:5001 unless told otherwise; say so on the LAN, and wait
  // at the relay too if there is one.
  const waiting = await waitForPeers(options.host, options.port, meet);
  const generated = options.code === undefined && !options.legacy ? code : undefined;
  const into = options.stdout || options.madeDir ? undefined : Deno.realPathSync(options.dir);
  const peers = options.legacy ? "sender.ts --legacy" : "sender.ts";
  reporter.listening(options.host, waiting, generated, peers, into);
  if (!options.legacy) prepareSpake2(w);

  // The side that waits says each sender's failure itself, without the code.
  const onError = (error: unknown) => reporter.sessionFailed(error, [code]);
  const serving = {
    once: options.once,
    maxConnections: options.maxConnections,
    reporter,
    peers: "senders",
    budget,
  };
  if (options.legacy) {
    return await serveConnections(
      waiting.links,
      serving,
      (link, id) => legacySession(link, { ...receiving(options, reporter, id), onError }),
    );
  }

  // Serve each sender that proves the code on its own, at the same time: a broken or slow one
  // never stalls the rest.
  const senders = accept(waiting.links, {
    ...serving,
    role: "receiver",
    w,
    timeoutMs: options.timeoutMs,
    onError,
  });
  for await (const sender of senders) {
    sender.serve(receiveOn(sender.pipe, { ...receiving(options, reporter, sender.id), onError }));
  }
  return await senders.finished;
}

/** What receiving needs, for connection `id`. */
function receiving(options: ReceiverOptions, reporter: Reporter, id: string) {
  return {
    // Names being written by any session of this receiver: a second one for a name is refused.
    claims,
    dir: options.dir,
    overwrite: options.overwrite,
    maxSize: options.maxSize,
    maxFiles: options.maxFiles,
    hash: options.hash,
    timeoutMs: options.timeoutMs,
    ...(options.stdout ? { stdout: Deno.stdout } : {}),
    reporter,
    id,
  };
}
const claims = new Set<string>();

if (import.meta.main) runMain(main, () => [secret], RECEIVER_HELP);
