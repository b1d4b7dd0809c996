/**
 * A frame fuzzer against a live receiver subprocess.
 *
 * Two kinds of case, from recorded valid sessions:
 * - pre-authentication: the first flight of a real sender (preamble, HELLO, PAKE) with its raw
 *   bytes mutated, as anyone on the network could send;
 * - post-authentication: a real handshake, then the plaintext frames of a valid transfer
 *   (OFFER, OFFER_END, SMALL_FILES, FILE, DATA, FILE_END, SKIP for a file the receiver has, a
 *   FILE resumed with its prefix digest, DONE), mutated, then sealed properly, so the mutations
 *   reach the decoders behind the AEAD.
 *
 * Some sessions send digests that differ (the receiver answers exists and RESTART; the restarted
 * FILE ends at once and comes again whole), and every offer has one name with a variation
 * selector. Mutations: bit flips, inserted and deleted bytes, truncation, splices of frames,
 * dropped, duplicated and reordered frames, changed types (RESTART, which only a receiver sends,
 * among them), a raw chunk just past 1 MiB, and stalls past the receiver's --timeout between
 * frames (the idle and minimum-rate deadlines). Every case is bounded in time. Afterwards:
 * the receiver never crashed (a listener that hit the wrong-guess limit exited 4 by design and
 * is restarted), nothing was written outside --dir, no symlink was created, and a good sender
 * still gets through.
 *
 *     FERRY_FUZZ_CASES=20000 FERRY_FUZZ_SEED=42 deno test -A tests/fuzz_test.ts
 */

import { join } from "node:path";
import { assert, assertEquals } from "./assert.ts";
import {
  CODE,
  type Running,
  sameFile,
  send,
  startReceiver,
  tempDir,
  withTimeout,
  writeRandomFile,
} from "./helpers.ts";
import { Channel } from "../lib/channel.ts";
import { handshake } from "../lib/handshake.ts";
import { passwordScalar } from "../lib/code_phrase.ts";
import { COMPRESS_CAPS } from "../lib/compress.ts";
import { concat, startSpake2 } from "../lib/spake2.ts";
import { createDigest, digestOf, type IHasher } from "../lib/checksum.ts";
import {
  CODEC_RAW,
  CODEC_ZSTD,
  encodeDone,
  encodeFileEnd,
  encodeFileStart,
  encodeHello,
  encodeOffer,
  encodeOfferEnd,
  encodePlainRecord,
  encodePreamble,
  encodeSkip,
  encodeSmallFiles,
  type Entry,
  FRAME_DATA,
  FRAME_DONE,
  FRAME_FILE,
  FRAME_FILE_END,
  FRAME_HELLO,
  FRAME_OFFER,
  FRAME_OFFER_END,
  FRAME_PAKE,
  FRAME_SKIP,
  FRAME_SMALL_FILES,
  KIND_DIR,
  KIND_FILE,
  MAX_PLAIN_BODY,
  ROLE_SENDER,
} from "../protocol.ts";
import * as zlib from "node:zlib";

const CASES = Number(Deno.env.get("FERRY_FUZZ_CASES") ?? 2000);
const SEED = Number(Deno.env.get("FERRY_FUZZ_SEED") ?? Math.floor(Math.random() * 2 ** 31));
const PARALLEL = 8;
const CASE_TIMEOUT_MS = 8000;
/** The receiver's --timeout, and a stall a little longer. */
const RECEIVER_TIMEOUT_S = 2;
const STALL_MS = 2300;
/** The largest payload one record carries (its type byte takes the rest). */
const MAX_FRAME_PAYLOAD = MAX_PLAIN_BODY - 1;

/** xorshift32: reproducible from FERRY_FUZZ_SEED. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  return {
    int: (n: number) => Math.floor(next() * n),
    chance: (p: number) => next() < p,
    bytes: (n: number) => Uint8Array.from({ length: n }, () => Math.floor(next() * 256)),
  };
}
type Rng = ReturnType<typeof rng>;

interface Frame {
  type: number;
  payload: Uint8Array;
}

const enc = new TextEncoder();

/** What each case's folder holds before it runs: a file to HAVE, a partial file to RESUME. */
const HAVE_TEXT = "have\n";
const RESUME_BYTES = new Uint8Array(3000).map((_, i) => (i * 7) & 255);
const RESUME_AT = 1000;

/** Makes the folder of case `n` under `dst`, with what its valid transfer finds there. */
function prepareCase(dst: string, n: number): void {
  const dir = join(dst, `case-${n}`);
  Deno.mkdirSync(dir);
  Deno.writeTextFileSync(join(dir, "h.txt"), HAVE_TEXT);
  Deno.writeFileSync(join(dir, "r.bin.ferry-part"), RESUME_BYTES.subarray(0, RESUME_AT));
}

/**
 * The frames of a valid transfer of a small tree under `prefix`. With `wrongDigests`, the SKIP
 * and the resumed FILE carry digests that differ from the receiver's (it answers exists, and
 * RESTART), the restarted FILE ends at once, and the file comes again whole, as section 6 allows.
 */
function validFrames(prefix: string, hasher: IHasher, wrongDigests = false): Frame[] {
  const small = enc.encode("small file\n".repeat(9));
  const mid = new Uint8Array(3000).fill(7);
  const big = new Uint8Array(70_000).map((_, i) => (i * 31) & 255);
  const entries: Entry[] = [
    { kind: KIND_DIR, mode: 0o755, mtime: 1_700_000_000_000, size: 0, name: prefix },
    {
      kind: KIND_FILE,
      mode: 0o644,
      mtime: 1_700_000_000_000,
      size: small.length,
      name: `${prefix}/a.txt`,
    },
    {
      kind: KIND_FILE,
      mode: 0o600,
      mtime: 1_700_000_000_000,
      size: mid.length,
      name: `${prefix}/b.bin`,
    },
    {
      kind: KIND_FILE,
      mode: 0o644,
      mtime: 1_700_000_000_000,
      size: big.length,
      name: `${prefix}/c.bin`,
    },
    { kind: KIND_FILE, mode: 0o644, mtime: 0, size: HAVE_TEXT.length, name: `${prefix}/h.txt` },
    { kind: KIND_FILE, mode: 0o644, mtime: 0, size: RESUME_BYTES.length, name: `${prefix}/r.bin` },
    // Refused by name (a variation selector after a letter), the session goes on.
    { kind: KIND_FILE, mode: 0o644, mtime: 0, size: 1, name: `${prefix}/v\ufe0f.txt` },
  ];
  const digest = (bytes: Uint8Array) =>
    wrongDigests ? new Uint8Array(16).fill(0xee) : digestOf(hasher, bytes);
  // A resume whose digest differs is answered RESTART: end it at once, then send it whole.
  const resumed: Frame[] = wrongDigests
    ? [
      { type: FRAME_FILE_END, payload: encodeFileEnd({ size: 0 }) },
      { type: FRAME_FILE, payload: encodeFileStart({ index: 5, offset: 0 }) },
      { type: FRAME_DATA, payload: concat(new Uint8Array([CODEC_RAW]), RESUME_BYTES) },
      { type: FRAME_FILE_END, payload: encodeFileEnd({ size: RESUME_BYTES.length }) },
    ]
    : [
      {
        type: FRAME_DATA,
        payload: concat(new Uint8Array([CODEC_RAW]), RESUME_BYTES.subarray(RESUME_AT)),
      },
      { type: FRAME_FILE_END, payload: encodeFileEnd({ size: RESUME_BYTES.length }) },
    ];
  const zipped = zlib.zstdCompressSync(big.subarray(0, 40_000));
  return [
    ...encodeOffer(entries).map((payload) => ({ type: FRAME_OFFER, payload })),
    { type: FRAME_OFFER_END, payload: encodeOfferEnd({ count: 7, totalBytes: 76_105 }) },
    {
      type: FRAME_SMALL_FILES,
      payload: concat(
        new Uint8Array([CODEC_ZSTD]),
        zlib.zstdCompressSync(
          encodeSmallFiles([{ index: 1, data: small }, { index: 2, data: mid }]),
        ),
      ),
    },
    { type: FRAME_FILE, payload: encodeFileStart({ index: 3, offset: 0 }) },
    { type: FRAME_DATA, payload: concat(new Uint8Array([CODEC_ZSTD]), zipped) },
    { type: FRAME_DATA, payload: concat(new Uint8Array([CODEC_RAW]), big.subarray(40_000)) },
    {
      type: FRAME_FILE_END,
      payload: encodeFileEnd({ size: big.length }),
    },
    {
      type: FRAME_SKIP,
      payload: encodeSkip({ index: 4, digest: digest(enc.encode(HAVE_TEXT)) }),
    },
    {
      type: FRAME_FILE,
      payload: encodeFileStart({
        index: 5,
        offset: RESUME_AT,
        digest: digest(RESUME_BYTES.subarray(0, RESUME_AT)),
      }),
    },
    ...resumed,
    { type: FRAME_DONE, payload: encodeDone({ files: 4, bytes: 75_099 }) },
  ];
}

/** One mutation of a byte string. */
function mutateBytes(r: Rng, b: Uint8Array, donor: Uint8Array): Uint8Array {
  const at = r.int(b.length + 1);
  switch (r.int(6)) {
    case 0: { // flip bits
      const out = b.slice();
      for (let i = 0, n = 1 + r.int(4); i < n && out.length; i++) {
        out[r.int(out.length)]! ^= 1 << r.int(8);
      }
      return out;
    }
    case 1: // insert random bytes
      return concat(b.subarray(0, at), r.bytes(1 + r.int(16)), b.subarray(at));
    case 2: // delete a run
      return concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + r.int(16))));
    case 3: // truncate
      return b.subarray(0, at);
    case 4: { // splice from another frame
      const from = r.int(donor.length + 1);
      return concat(b.subarray(0, at), donor.subarray(from, from + 1 + r.int(64)), b.subarray(at));
    }
    default: { // interesting integers at a random place
      const out = b.slice();
      const values = [0x00, 0xff, 0x7f, 0x80];
      for (let i = 0; i < 4 && at + i < out.length; i++) {
        out[at + i] = values[r.int(values.length)]!;
      }
      return out;
    }
  }
}

/** One mutation of a frame sequence. */
function mutateFrames(r: Rng, frames: Frame[]): Frame[] {
  const out = frames.map((f) => ({ ...f }));
  const rounds = 1 + r.int(3);
  for (let round = 0; round < rounds; round++) {
    const i = r.int(out.length);
    const j = r.int(out.length);
    switch (r.int(7)) {
      case 0:
      case 1:
      case 2:
        out[i] = { type: out[i]!.type, payload: mutateBytes(r, out[i]!.payload, out[j]!.payload) };
        break;
      case 6: // a raw chunk just past 1 MiB, which DATA may never decode to
        out[i] = {
          type: out[i]!.type,
          payload: concat(
            new Uint8Array([CODEC_RAW]),
            r.bytes(1 + r.int(62)),
            new Uint8Array(1 << 20),
          ),
        };
        break;
      case 3: // drop a frame
        out.splice(i, 1);
        break;
      case 4: // duplicate or move a frame
        out.splice(j, 0, r.chance(0.5) ? { ...out[i]! } : out.splice(i, 1)[0]!);
        break;
      default: // change a type
        out[i] = {
          type: r.chance(0.5)
            ? r.int(256)
            : [0x10, 0x11, 0x12, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x30][r.int(11)]!,
          payload: out[i]!.payload,
        };
    }
    if (out.length === 0) out.push({ type: r.int(256), payload: r.bytes(r.int(40)) });
  }
  return out;
}

/** Reads whatever the receiver says until it closes (bounded); returns how long that took. */
async function drain(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(65536);
  while ((await conn.read(buf).catch(() => null)) !== null) { /* discard */ }
}

const W = passwordScalar(CODE);

/** Every failure must be a clean refusal, never a bug ("internal error" is how ferry says so). */
function noInternalErrors(stderr: string): void {
  const bugs = stderr.split("\n").filter((line) => line.includes("internal error"));
  assertEquals(bugs, [], `seed ${SEED}`);
}

/** A pre-authentication case: the first flight of a sender, mutated. */
async function rawCase(port: number, r: Rng): Promise<void> {
  const hello = encodePlainRecord(
    FRAME_HELLO,
    encodeHello({ role: ROLE_SENDER, caps: COMPRESS_CAPS }),
  );
  const pake = encodePlainRecord(FRAME_PAKE, (await startSpake2("A", W)).share);
  let flight = concat(encodePreamble(), hello, pake);
  for (let i = 0, n = 1 + r.int(3); i < n; i++) flight = mutateBytes(r, flight, pake);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(flight).catch(() => 0);
    await conn.closeWrite().catch(() => {});
    await drain(conn);
  } finally {
    conn.close();
  }
}

/** A post-authentication case: real handshake, then mutated frames, properly sealed. */
async function sealedCase(port: number, r: Rng, n: number, hasher: IHasher): Promise<void> {
  const frames = mutateFrames(r, validFrames(`case-${n}`, hasher, r.chance(0.3)));
  // Now and then a stall past the receiver's --timeout before one frame: its deadlines too.
  const stallAt = r.chance(0.005) ? r.int(frames.length) : -1;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const channel = new Channel(conn, { timeoutMs: 5000 });
  try {
    await handshake(channel, { role: "sender", w: W, caps: COMPRESS_CAPS, confirmFirst: true });
    const reading = drain(conn);
    for (const [i, frame] of frames.entries()) {
      // Past what one record can carry: the channel refuses to send it, as it should.
      if (frame.payload.length > MAX_FRAME_PAYLOAD) continue;
      if (i === stallAt) {
        await channel.flush();
        await new Promise((resolve) => setTimeout(resolve, STALL_MS));
      }
      await channel.send(frame.type, frame.payload);
    }
    await channel.closeWrite();
    await reading;
  } catch {
    // The receiver hung up on us: expected for most cases.
  } finally {
    channel.close();
  }
}

Deno.test(`fuzz: ${CASES} mutated sessions against a live receiver (seed ${SEED})`, async () => {
  console.log(`fuzz: seed ${SEED} (FERRY_FUZZ_SEED=${SEED} reproduces), ${CASES} cases`);
  const box = await tempDir();
  const dst = join(box, "dst");
  await Deno.mkdir(dst);
  for (let k = 0; k < CASES; k++) prepareCase(dst, k);
  const hasher = await createDigest();
  const start = () =>
    startReceiver(["--dir", dst, "--timeout", String(RECEIVER_TIMEOUT_S), "--quiet"]);
  let receiver: Running = await start();
  let restarts = 0;
  let exited: { code: number; stderr: string } | null = null;
  const watch = (rcv: Running) => rcv.process.status.then(async () => exited = await rcv.finish());
  let watching = watch(receiver);
  const r = rng(SEED);
  try {
    for (let n = 0; n < CASES; n += PARALLEL) {
      const batch = [];
      for (let k = n; k < Math.min(CASES, n + PARALLEL); k++) {
        const caseRng = rng(SEED + k * 7919 + 1);
        const run = r.chance(0.5)
          ? rawCase(receiver.port, caseRng)
          : sealedCase(receiver.port, caseRng, k, hasher);
        batch.push(withTimeout(run, CASE_TIMEOUT_MS, `case ${k} (seed ${SEED})`));
      }
      await Promise.all(batch);
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (exited) {
        // The only way out is the wrong-guess limit, which mutated confirmations can reach.
        const done: { code: number; stderr: string } = exited;
        assertEquals(
          done.code,
          4,
          `receiver died at case ${n} (seed ${SEED}): ${done.stderr.slice(-2000)}`,
        );
        assert(done.stderr.includes("too many wrong codes"), done.stderr.slice(-2000));
        noInternalErrors(done.stderr);
        restarts++;
        exited = null;
        receiver = await start();
        watching = watch(receiver);
      }
    }
    // Still serving a good sender.
    const src = await tempDir();
    await writeRandomFile(join(src, "after-fuzz.bin"), 200_000, 99);
    const sent = await send([`127.0.0.1:${receiver.port}`, join(src, "after-fuzz.bin")]);
    assertEquals(sent.code, 0, sent.stderr);
    assert(await sameFile(join(src, "after-fuzz.bin"), join(dst, "after-fuzz.bin")));
    await Deno.remove(src, { recursive: true });
  } finally {
    receiver.process.kill("SIGTERM");
    await watching;
  }
  noInternalErrors((exited as { stderr: string } | null)?.stderr ?? "");
  // Nothing beside dst, no symlink anywhere below it.
  assertEquals([...Deno.readDirSync(box)].map((e) => e.name), ["dst"]);
  const walk = (dir: string): void => {
    for (const item of Deno.readDirSync(dir)) {
      assert(!item.isSymlink, `symlink created: ${join(dir, item.name)}`);
      if (item.isDirectory) walk(join(dir, item.name));
    }
  };
  walk(dst);
  console.log(`fuzz: ${CASES} cases, ${restarts} listener restarts after the wrong-guess limit`);
  await Deno.remove(box, { recursive: true });
});
