#!/usr/bin/env -S deno run --v8-flags=--expose-gc --allow-net --allow-read --allow-env=FERRY_CODE,FERRY_DEBUG,NO_COLOR
/**
 * sender.ts: send files to a ferry receiver. The tutorial's sender.py, grown up: it connects,
 * proves it knows the code phrase, offers everything at once, then streams the bytes, encrypted
 * and verified.
 *
 *     deno run --allow-net --allow-read sender.ts HOST[:PORT] PATH...
 *
 * With FERRY_CODE in the environment add `--allow-env=FERRY_CODE`. See `--help`.
 *
 * @module
 */

import { Manifest } from "./lib/manifest.ts";
import { connect, parseSenderArgs, runMain, SENDER_HELP } from "./lib/cli.ts";
import { generateCode, passwordScalar } from "./lib/code_phrase.ts";
import { prepareSpake2 } from "./lib/spake2.ts";
import { EXIT, exitCodeOf, formatError, UsageError } from "./lib/errors.ts";
import { legacyEntry, sendLegacy } from "./lib/legacy.ts";
import { Reporter } from "./lib/report.ts";
import { peerName, sendSession, serveConnections } from "./lib/session.ts";

let secret = "";

async function main(): Promise<number> {
  // Read the command line: where to send, what, and how.
  const options = parseSenderArgs(Deno.args);
  if (options === null) {
    console.log(SENDER_HELP);
    return EXIT.OK;
  }
  const reporter = new Reporter(options);

  // What we are about to send. The paths are checked now; folders are walked as we offer them.
  const manifest = new Manifest(options.paths, {
    ...(options.name !== undefined ? { name: options.name } : {}),
    onSkip: (path, why) => reporter.warn(`skipping ${path}: ${why}`),
  });

  // --legacy: the tutorial's wire. Connect, send "name<SEPARATOR>size", then the bytes.
  if (options.legacy) {
    const entries = [...manifest];
    legacyEntry(entries);
    using conn = await connect(options.host, options.port);
    await sendLegacy(conn, entries, { reporter });
    return EXIT.OK;
  }

  // The code phrase: given to us, or (when we listen) made up and shown to the user.
  if (options.code === undefined && !options.listen) {
    throw new UsageError("no code phrase: set FERRY_CODE (or pass --code) to the receiver's code");
  }
  const code = options.code ?? generateCode();
  secret = code;
  const session = {
    w: passwordScalar(code),
    reporter,
    timeoutMs: options.timeoutMs,
    compress: options.compress,
    hash: options.hash,
  };

  // Usually we connect to a waiting receiver, like the tutorial...
  if (!options.listen) {
    const conn = await connect(options.host, options.port);
    reporter.event("connected", { peer: peerName(conn) });
    const outcome = await sendSession(conn, manifest, { ...session, id: "1", initiator: true });
    if (outcome.error !== undefined) throw outcome.error;
    return outcome.summary!.exitCode;
  }

  // ...or, with --listen, we wait and serve each receiver that knows the code.
  using listener = Deno.listen({ hostname: options.host, port: options.port });
  reporter.listening(
    options.host,
    listener.addr.port,
    options.code === undefined ? code : undefined,
  );
  prepareSpake2(session.w);
  return await serveConnections(
    listener,
    { once: options.once, reporter, peers: "receivers" },
    (conn, id, limiter) =>
      sendSession(conn, manifest, {
        ...session,
        id,
        limiter,
        initiator: false,
        onError: (error) => reporter.error(formatError(error, [code]), exitCodeOf(error)),
      }),
  );
}

if (import.meta.main) runMain(main, () => [secret], SENDER_HELP);
