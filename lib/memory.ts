/**
 * Keeping memory flat while `node:crypto` and `node:zlib` allocate.
 *
 * Every `cipher.update()` returns a new buffer, so each 1 MiB chunk sealed or opened leaves 1 MiB
 * of garbage behind (and so does each decompressed chunk). V8 frees such buffers at its next
 * young-generation collection, but a loop that creates few JavaScript objects rarely triggers
 * one: about 90 MB of them piled up before V8 collected, whatever the file size. So after every
 * 8 MiB of discarded buffers we ask V8 for a young-generation collection. Each took 0.4-0.6 ms
 * here, about 70 ms per GiB per side (~3% of a loopback transfer), for a peak RSS of ~90 MB
 * instead of ~150 MB, flat from 1 GiB to 8 GiB. Collecting every 4 MiB instead saved ~5 MB more
 * and cost twice the time.
 *
 * That needs V8's `gc()`, which exists only under `--v8-flags=--expose-gc`: the scripts'
 * shebangs and the compiled binaries pass it. Without the flag (a plain `deno run`) this does
 * nothing and a transfer peaks near 150 MB instead of under 100 MB; nothing else changes.
 *
 * @module
 */

/** Discarded bytes between two collections. */
const COLLECT_EVERY = 8 * 1024 * 1024;

const gc = (globalThis as { gc?: (options: { type: "minor" }) => void }).gc;
let discarded = 0;

/** Notes that a buffer of `bytes` just became garbage; collects young garbage now and then. */
export function discard(bytes: number): void {
  if (gc === undefined) return;
  discarded += bytes;
  if (discarded < COLLECT_EVERY) return;
  discarded = 0;
  gc({ type: "minor" });
}
