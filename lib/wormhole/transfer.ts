/**
 * magic-wormhole's file-transfer protocol, both ends: `sender.ts --wormhole` talks to
 * `wormhole receive`, `receiver.ts --wormhole` to `wormhole send`.
 *
 * ```
 * sender   -> {transit: {abilities-v1, hints-v1}}  {offer: {file | directory | message}}
 * receiver -> {transit: …}  {answer: {file_ack: "ok"}}     (or {error: "…"})
 * transit: records with the file (a folder: a zip of it); receiver -> {ack: "ok", sha256: HEX}
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import { KIND_DIR, KIND_FILE, KIND_STREAM } from "../../protocol.ts";
import {
  ConnectionError,
  EXIT,
  IntegrityError,
  ProtocolError,
  RefusedError,
  UsageError,
  WIRE,
} from "../errors.ts";
import { writeOut } from "../io.ts";
import { Manifest, type SourceEntry } from "../manifest.ts";
import { openRegular } from "../owned_file.ts";
import { parseRelay, type RelayAddress } from "../relay.ts";
import type { Reporter } from "../report.ts";
import { APP_ID, DEFAULT_TRANSIT_RELAY, Wormhole } from "./client.ts";
import { acceptOffer, type AcceptOptions, type Sink } from "./sinks.ts";
import { type RecordPipe, Transit } from "./transit.ts";
import { planZip, writeZip, type ZipPlan } from "./zip.ts";

/**
 * Bytes per transit record we send. The Python client reassembles each record by appending
 * what arrives to a bytes object, which costs more the larger the record: measured against it,
 * 64 KiB was fastest (1 GiB in 8.5 s; 256 KiB: 20 s; 16 KiB: 10 s).
 */
const RECORD_BYTES = 64 * 1024;

/** Bytes read from a file, or written to one, at a time: a system call per record is slow. */
const FILE_CHUNK_BYTES = 1024 * 1024;

/** Settings both directions share. */
export interface WormholeOptions {
  /** The mailbox server's URL. */
  mailbox: string;
  /** The transit relay. @default {magic-wormhole's public one} */
  relay?: RelayAddress;
  /** Listen for the peer's direct connection (`--no-listen`: only dial out, or the relay). */
  transitListen: boolean;
  code?: string;
  timeoutMs: number;
  reporter: Reporter;
}

/** What `sender.ts --wormhole` sends: one file or folder, or a text message. */
export interface WormholeSendOptions extends WormholeOptions {
  paths: string[];
  text?: string;
  /** Skip what cannot be sent (with a warning) instead of refusing the whole folder. */
  ignoreUnsendableFiles: boolean;
  /** Told the code as soon as it is known (it is secret: keep it out of error messages). */
  onCode: (code: string) => void;
}

/** What the offer says and how its bytes are produced. */
interface Outgoing {
  offer: Record<string, unknown>;
  name: string;
  size: number;
  files: number;
  stream: (emit: (chunk: Uint8Array) => Promise<void>) => Promise<void>;
}

/** Sends one file, folder or text to a magic-wormhole receiver. Returns the exit code. */
export async function sendViaWormhole(options: WormholeSendOptions): Promise<number> {
  const outgoing = options.text === undefined ? prepareOutgoing(options) : undefined;
  const onCode = (code: string) => {
    options.onCode(code);
    options.reporter.code(`wormhole receive ${code}`);
  };
  const wormhole = await Wormhole.open({ ...options, mailboxUrl: options.mailbox, onCode });
  let pipe: RecordPipe | undefined;
  try {
    if (outgoing === undefined) {
      wormhole.send({ offer: { message: options.text } });
      const answer = await hearAnswer(wormhole, {});
      if ((answer as { message_ack?: unknown }).message_ack !== "ok") {
        throw new ProtocolError("the receiver did not acknowledge the message");
      }
      await wormhole.close("happy");
      options.reporter.info("ferry: text message sent");
      return EXIT.OK;
    }
    const transit = Transit.start({ ...transitOptions(options, wormhole), role: "sender" });
    wormhole.send({ transit: await transit.message() });
    wormhole.send({ offer: outgoing.offer });
    const peer: { transit?: unknown } = {};
    const answer = await hearAnswer(wormhole, peer);
    if ((answer as { file_ack?: unknown }).file_ack !== "ok") {
      transit.close();
      throw new RefusedError("the receiver did not accept the offer", WIRE.CANCELLED);
    }
    pipe = await transit.connect(peer.transit);
    await wormhole.close("happy");
    return await sendBytes(pipe, outgoing, options.reporter);
  } catch (err) {
    await wormhole.close("errory");
    throw err;
  } finally {
    pipe?.close();
  }
}

/** Reads the receiver's messages up to its answer; an `error` from it is a refusal. */
async function hearAnswer(wormhole: Wormhole, peer: { transit?: unknown }) {
  for (let i = 0; i < 16; i++) {
    const message = await wormhole.receive("waiting for the receiver to accept");
    if (message.error !== undefined) {
      throw new RefusedError(
        `the receiver refused: ${String(message.error).slice(0, 200)}`,
        WIRE.CANCELLED,
      );
    }
    if (message.transit !== undefined) peer.transit = message.transit;
    if (typeof message.answer === "object" && message.answer !== null) return message.answer;
  }
  throw new ProtocolError("the receiver sent many messages but no answer");
}

function transitOptions(options: WormholeOptions, wormhole: Wormhole) {
  return {
    key: wormhole.deriveKey(`${APP_ID}/transit-key`),
    listen: options.transitListen,
    timeoutMs: options.timeoutMs,
    relay: options.relay ?? parseRelay(DEFAULT_TRANSIT_RELAY),
  };
}

/** Checks the command line and plans the offer before anyone is contacted. */
function prepareOutgoing(options: WormholeSendOptions): Outgoing {
  if (options.paths.length !== 1) {
    throw new UsageError("magic-wormhole sends one file or folder at a time (or --text)");
  }
  if (options.paths[0] === "-") {
    throw new UsageError("magic-wormhole needs the size first: stdin cannot go with --wormhole");
  }
  const manifest = new Manifest(options.paths, {
    onSkip: (path, why) => options.reporter.warn(`skipping ${path}: ${why}`),
    refuseUnsendable: !options.ignoreUnsendableFiles,
  });
  const entries = [...manifest];
  const first = entries[0]!;
  if (first.kind === KIND_FILE) {
    return {
      offer: { file: { filename: first.name, filesize: first.size } },
      name: first.name,
      size: first.size,
      files: 1,
      stream: (emit) => streamFile(first, emit),
    };
  }
  if (first.kind === KIND_STREAM) throw new UsageError("nothing to send");
  const plan: ZipPlan = planZip(first.name, entries);
  const files = plan.items.filter((item) => item.entry.kind !== KIND_DIR).length;
  return {
    offer: {
      directory: {
        mode: "zipfile/deflated",
        dirname: first.name,
        zipsize: plan.zipSize,
        numbytes: plan.numBytes,
        numfiles: plan.items.length,
      },
    },
    name: `${first.name}/`,
    size: plan.zipSize,
    files,
    stream: async (emit) => {
      await writeZip(plan, (entry) => readChunks(entry), emit);
    },
  };
}

/** The bytes of a listed file, read only if it is still the file that was listed. */
async function* readChunks(entry: SourceEntry): AsyncGenerator<Uint8Array> {
  const file = openRegular(entry.source!, entry.identity);
  try {
    for (;;) {
      const buffer = new Uint8Array(FILE_CHUNK_BYTES);
      const n = await file.read(buffer);
      if (n === null) return;
      yield buffer.subarray(0, n);
    }
  } finally {
    file.close();
  }
}

async function streamFile(entry: SourceEntry, emit: (chunk: Uint8Array) => Promise<void>) {
  let sent = 0;
  for await (const chunk of readChunks(entry)) {
    sent += chunk.length;
    if (sent > entry.size) break;
    await emit(chunk);
  }
  if (sent !== entry.size) {
    throw new IntegrityError(`${entry.name} changed while it was being sent`);
  }
}

/** Streams the offer's bytes as records, then checks the receiver's SHA-256 acknowledgement. */
async function sendBytes(
  pipe: RecordPipe,
  outgoing: Outgoing,
  reporter: Reporter,
): Promise<number> {
  const hash = createHash("sha256");
  reporter.start("1", outgoing.files, outgoing.size);
  reporter.fileStart("1", outgoing.name, outgoing.size, 0);
  // Records of RECORD_BYTES: a zip comes in small pieces, a file in large ones.
  const pending = new Uint8Array(RECORD_BYTES);
  let pendingLength = 0;
  let bytes = 0;
  const emit = async (chunk: Uint8Array) => {
    let at = 0;
    if (pendingLength > 0) {
      at = Math.min(chunk.length, RECORD_BYTES - pendingLength);
      pending.set(chunk.subarray(0, at), pendingLength);
      pendingLength += at;
      if (pendingLength < RECORD_BYTES) return;
      pendingLength = 0;
      await sendRecord(pending);
    }
    for (; chunk.length - at >= RECORD_BYTES; at += RECORD_BYTES) {
      await sendRecord(chunk.subarray(at, at + RECORD_BYTES));
    }
    pending.set(chunk.subarray(at));
    pendingLength = chunk.length - at;
  };
  const sendRecord = async (record: Uint8Array) => {
    hash.update(record);
    bytes += record.length;
    await pipe.send(record);
    reporter.progress("1", record.length);
  };
  await outgoing.stream(emit);
  if (pendingLength > 0) await sendRecord(pending.subarray(0, pendingLength));
  if (bytes !== outgoing.size) {
    throw new IntegrityError(`sent ${bytes} bytes where the offer said ${outgoing.size}`);
  }
  const ack = await readAck(pipe);
  if (ack.sha256 !== hash.digest("hex")) {
    throw new IntegrityError("the receiver's SHA-256 of the data differs from ours");
  }
  reporter.fileDone("1", { name: outgoing.name, size: outgoing.size, status: "ok" });
  reporter.finish("1", { files: outgoing.files, bytes, failed: 0, exitCode: EXIT.OK });
  return EXIT.OK;
}

async function readAck(pipe: RecordPipe): Promise<{ ack?: unknown; sha256?: unknown }> {
  const record = await pipe.receive();
  if (record === null) throw new ConnectionError("the receiver closed before acknowledging");
  let ack: { ack?: unknown; sha256?: unknown };
  try {
    ack = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(record));
  } catch {
    throw new ProtocolError("the receiver's acknowledgement is not JSON");
  }
  if (ack?.ack !== "ok") throw new IntegrityError("the receiver did not acknowledge the data");
  return ack;
}

/** What `receiver.ts --wormhole` needs. */
export interface WormholeReceiveOptions extends WormholeOptions, AcceptOptions {}

/** Receives what a magic-wormhole sender offers. Returns the exit code. */
export async function receiveViaWormhole(options: WormholeReceiveOptions): Promise<number> {
  if (options.code === undefined) {
    throw new UsageError("--wormhole needs the sender's code: set FERRY_CODE (or --wormhole CODE)");
  }
  const wormhole = await Wormhole.open({ ...options, mailboxUrl: options.mailbox });
  let sink: Sink | undefined;
  let pipe: RecordPipe | undefined;
  try {
    const peer: { transit?: unknown } = {};
    const offer = await hearOffer(wormhole, peer);
    if (typeof offer.message === "string") {
      wormhole.send({ answer: { message_ack: "ok" } });
      await wormhole.close("happy");
      writeOut(`${offer.message}\n`);
      return EXIT.OK;
    }
    try {
      sink = acceptOffer(offer, options);
    } catch (err) {
      wormhole.send({ error: (err as Error).message });
      throw err;
    }
    const transit = Transit.start({ ...transitOptions(options, wormhole), role: "receiver" });
    wormhole.send({ transit: await transit.message() });
    wormhole.send({ answer: { file_ack: "ok" } });
    pipe = await transit.connect(peer.transit);
    await wormhole.close("happy");
    return await receiveBytes(pipe, sink, options.reporter);
  } catch (err) {
    sink?.abandon();
    await wormhole.close("errory");
    throw err;
  } finally {
    pipe?.close();
  }
}

async function hearOffer(wormhole: Wormhole, peer: { transit?: unknown }) {
  for (let i = 0; i < 16; i++) {
    const message = await wormhole.receive("waiting for the sender's offer");
    if (message.error !== undefined) {
      throw new ConnectionError(`the sender gave up: ${String(message.error).slice(0, 200)}`);
    }
    if (message.transit !== undefined) peer.transit = message.transit;
    const offer = message.offer;
    if (typeof offer === "object" && offer !== null) return offer as Record<string, unknown>;
  }
  throw new ProtocolError("the sender sent many messages but no offer");
}

/** Receives exactly the offered bytes, acknowledges them with their SHA-256, then places them. */
async function receiveBytes(pipe: RecordPipe, sink: Sink, reporter: Reporter): Promise<number> {
  const hash = createHash("sha256");
  reporter.start("1", 1, sink.size);
  reporter.fileStart("1", sink.name, sink.size, 0);
  // Records are gathered into chunks of FILE_CHUNK_BYTES before they are written. A sink may
  // keep what it is given (the unzipper does), so each chunk is a new buffer.
  let chunk = new Uint8Array(FILE_CHUNK_BYTES);
  let chunkLength = 0;
  let bytes = 0;
  while (bytes < sink.size) {
    const record = await pipe.receive();
    if (record === null) {
      throw new ConnectionError(`the sender went away after ${bytes} of ${sink.size} bytes`);
    }
    bytes += record.length;
    if (bytes > sink.size) {
      throw new IntegrityError(`the sender sent more than the ${sink.size} bytes it offered`);
    }
    hash.update(record);
    if (chunkLength + record.length > chunk.length) {
      await sink.write(chunk.subarray(0, chunkLength));
      chunk = new Uint8Array(Math.max(FILE_CHUNK_BYTES, record.length));
      chunkLength = 0;
    }
    chunk.set(record, chunkLength);
    chunkLength += record.length;
    reporter.progress("1", record.length);
  }
  if (chunkLength > 0) await sink.write(chunk.subarray(0, chunkLength));
  const files = sink.finish();
  await pipe.send(
    new TextEncoder().encode(JSON.stringify({ ack: "ok", sha256: hash.digest("hex") })),
  );
  reporter.fileDone("1", { name: sink.name, size: sink.size, status: "ok" });
  reporter.finish("1", { files, bytes, failed: 0, exitCode: EXIT.OK });
  return EXIT.OK;
}
