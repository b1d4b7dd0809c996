#!/usr/bin/env -S deno run --v8-flags=--expose-gc --allow-net --allow-read --allow-write --allow-env=FERRY_CODE,FERRY_DEBUG,NO_COLOR
/**
 * receiver.ts: receive files from ferry senders. The tutorial's receiver.py, grown up: it
 * listens on 0.0.0.0:5001, serves many senders at once, each on its own, and writes only
 * verified files, only inside --dir.
 *
 *     deno run --allow-net --allow-read --allow-write --allow-env=FERRY_CODE receiver.ts --dir downloads
 *
 * See `--help`.
 *
 * @module
 */

import { connect, parseReceiverArgs, RECEIVER_HELP, runMain } from "./lib/cli.ts";
import { generateCode, passwordScalar } from "./lib/code_phrase.ts";
import { prepareSpake2 } from "./lib/spake2.ts";
import { EXIT, exitCodeOf, formatError, UsageError } from "./lib/errors.ts";
import { AttemptLimiter } from "./lib/handshake.ts";
import { Reporter } from "./lib/report.ts";
import {
  legacySession,
  outcomeExitCode,
  peerName,
  receiveSession,
  serveConnections,
} from "./lib/session.ts";

let secret = "";

async function main(): Promise<number> {
  // Read the command line.
  const options = parseReceiverArgs(Deno.args);
  if (options === null) {
    console.log(RECEIVER_HELP);
    return EXIT.OK;
  }
  const reporter = new Reporter({ ...options, hashLines: options.stdout ? "stderr" : "stdout" });
  const stdout = options.stdout ? { stdout: Deno.stdout } : {};
  const target = {
    dir: options.dir,
    overwrite: options.overwrite,
    maxSize: options.maxSize,
    hash: options.hash,
    ...stdout,
  };
  if (!options.stdout && !(await Deno.stat(options.dir).catch(() => null))?.isDirectory) {
    throw new UsageError(`--dir ${options.dir} is not a folder`);
  }

  // The code phrase: given to us, or made up here and shown to the user.
  if (!options.legacy && options.connect && options.code === undefined) {
    throw new UsageError("no code phrase: set FERRY_CODE (or pass --code) to the sender's code");
  }
  const code = options.legacy ? "" : options.code ?? generateCode();
  secret = code;
  const w = options.legacy ? 0n : passwordScalar(code);
  const session = { w, reporter, timeoutMs: options.timeoutMs, maxFiles: options.maxFiles };
  const claims = new Set<string>();

  // One connection, whoever opened it: the tutorial's wire, or handshake then receive.
  async function serve(conn: Deno.Conn, id: string, limiter?: AttemptLimiter) {
    const onError = (error: unknown) =>
      reporter.error(formatError(error, [code]), exitCodeOf(error));
    return options!.legacy
      ? await legacySession(conn, {
        ...target,
        reporter,
        id,
        idleTimeoutMs: session.timeoutMs,
        onError,
      })
      : await receiveSession(conn, {
        ...session,
        ...target,
        claims,
        id,
        onError,
        initiator: limiter === undefined,
        ...(limiter ? { limiter } : {}),
      });
  }

  // --connect: fetch from a sender that is listening (the server sends files too).
  if (options.connect) {
    const conn = await connect(options.connect.host, options.connect.port);
    reporter.event("connected", { peer: peerName(conn) });
    return outcomeExitCode(await serve(conn, "1"));
  }

  // Listen, like the tutorial: 0.0.0.0:5001 unless told otherwise.
  const listener = Deno.listen({ hostname: options.host, port: options.port });
  if (!options.legacy) prepareSpake2(w);
  const generated = options.code === undefined && !options.legacy ? code : undefined;
  reporter.listening(options.host, listener.addr.port, generated);

  // Serve each sender on its own, at the same time: one broken or slow sender never stalls
  // the others.
  return await serveConnections(
    listener,
    { once: options.once, maxConnections: options.maxConnections, reporter, peers: "senders" },
    serve,
  );
}

if (import.meta.main) runMain(main, () => [secret], RECEIVER_HELP);
