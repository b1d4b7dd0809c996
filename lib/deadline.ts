/**
 * The deadline every stack runs under: `--timeout` of silence, and a minimum rate. One
 * {@linkcode Deadline} watches all the reads and writes of one connection; ferry's channel uses
 * it, and {@linkcode guardLink} wraps any other link in it (the tutorial's wire, magic-wormhole's
 * transit), so a stall is cut the same way whichever protocol runs on top.
 *
 * @module
 */

import { ConnectionError, WIRE } from "./errors.ts";
import { closeQuietly, type Link } from "./transport.ts";

/** Bytes per second a peer must keep up on average over the idle timeout (PROTOCOL.md §9). */
export const MIN_RATE = 1024;

/**
 * How much longer, in ms, the peer may keep us waiting. It drains while a read or write waits
 * on the peer; every byte the peer moves earns back 1000 / MIN_RATE ms, up to the idle
 * timeout. Silence ends the connection after the idle timeout, as does a trickle slower than
 * MIN_RATE, only later.
 *
 * @example A deadline that expires on silence
 * ```ts
 * import { Deadline } from "./deadline.ts";
 * let why = "";
 * const deadline = new Deadline(50, (reason) => why = reason);
 * await deadline.guard("receiving", () => new Promise((r) => setTimeout(() => r(null), 120)))
 *   .catch(() => {});
 * console.assert(why.startsWith("peer stopped responding"));
 * deadline.stop();
 * ```
 */
export class Deadline {
  #idleMs: number;
  #credit: number;
  /** When #credit was last brought up to date. */
  #creditAt = Date.now();
  /** When the peer last moved a byte (or did work for us). */
  #earnedAt = Date.now();
  /** Credit, in ms, that work which proved useless may still earn (see `unproven`). */
  #unprovenLeft: number;
  /** Reads and writes in progress. */
  #pending = 0;
  /** One timer watches all of them (a timer per operation cost ~1% of a transfer). */
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #onExpire: (why: string) => void;
  #stopped = false;
  /** Why the connection was closed under us by the timer, if it was. */
  expired?: string;

  /** `onExpire` closes the connection; the operations waiting on it then fail with `why`. */
  constructor(idleMs: number, onExpire: (why: string) => void) {
    this.#idleMs = idleMs;
    this.#credit = idleMs;
    this.#unprovenLeft = idleMs;
    this.#onExpire = onExpire;
  }

  /** Changes the idle timeout (the transfer may use another than the handshake). */
  setIdleTimeout(ms: number): void {
    this.#idleMs = ms;
    this.#spend();
    this.#credit = ms;
    this.#unprovenLeft = ms;
    clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
    if (this.#pending > 0) this.#watch();
  }

  /**
   * Counts `bytes` of work toward the minimum rate that moved few bytes on the wire: file data
   * before compression (a chunk of zeros travels as a few bytes), and the bytes of a file the
   * peer digested when its digest proved equal to ours (those bytes need not travel).
   */
  progress(bytes: number): void {
    this.#spend();
    if (bytes > 0) this.#earnedAt = this.#creditAt;
    this.#credit = Math.min(this.#idleMs, this.#credit + bytes * (1000 / MIN_RATE));
  }

  /**
   * Counts `bytes` of work the peer says it did that did not prove useful (a digest that turned
   * out different): it earns credit as {@linkcode Deadline.progress} does, but only from an
   * allowance of one idle timeout per connection in all. A peer that makes us compare made-up
   * digests over and over is cut within about twice the idle timeout, not held forever.
   */
  unproven(bytes: number): void {
    const earned = Math.min(this.#unprovenLeft, bytes * (1000 / MIN_RATE));
    this.#unprovenLeft -= earned;
    this.#spend();
    if (earned > 0) this.#earnedAt = this.#creditAt;
    this.#credit = Math.min(this.#idleMs, this.#credit + earned);
  }

  /**
   * Runs one read or write under the idle timeout and the minimum rate. Time counts only while
   * an operation waits, and bytes moved either way count: a read may wait for minutes while our
   * own writes stream a large file. Errors of a connection that went away become
   * ConnectionError, saying `what` we were doing.
   */
  async guard<T>(what: string, op: () => Promise<T>): Promise<T> {
    this.#spend();
    this.#pending++;
    this.#watch();
    try {
      const result = await op();
      // Reads and writes resolve to the bytes they moved (a read at EOF to null).
      if (typeof result === "number") this.progress(result);
      return result;
    } catch (err) {
      if (this.expired !== undefined) throw new ConnectionError(this.expired, WIRE.TIMEOUT);
      if (err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted) {
        throw new ConnectionError(`connection closed while ${what}`);
      }
      if (
        err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe ||
        err instanceof Deno.errors.ConnectionAborted || err instanceof Deno.errors.NotConnected
      ) {
        throw new ConnectionError(`connection lost while ${what}`, WIRE.CANCELLED, { cause: err });
      }
      throw err;
    } finally {
      this.#spend();
      this.#pending--;
    }
  }

  /** Ends it now because time ran out: pending and later operations fail saying `why`. */
  expire(why: string): void {
    this.expired ??= why;
    this.stop();
    this.#onExpire(why);
  }

  /** No more watching (the connection is closed). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
  }

  /** Brings #credit up to now: time passes against it only while something waits on the peer. */
  #spend(now = Date.now()): void {
    if (this.#pending > 0) this.#credit -= now - this.#creditAt;
    this.#creditAt = now;
  }

  /** Arms the watchdog unless it is armed; it disarms itself when nothing is in progress. */
  #watch(): void {
    if (this.#watchdog !== undefined || this.#stopped) return;
    const arm = (ms: number) => {
      this.#watchdog = setTimeout(check, ms);
      // The operation it watches keeps the process alive; the timer alone must not.
      Deno.unrefTimer(this.#watchdog);
    };
    const check = () => {
      this.#watchdog = undefined;
      if (this.#pending === 0 || this.#stopped) return;
      this.#spend();
      if (this.#credit > 0) return arm(this.#credit);
      const window = Math.round(this.#idleMs / 1000);
      this.expire(
        Date.now() - this.#earnedAt >= this.#idleMs
          ? `peer stopped responding (no data for ${window} s)`
          : `peer too slow (under ${MIN_RATE / 1024} KiB/s for ${window} s)`,
      );
    };
    arm(Math.max(this.#credit, 1));
  }
}

/**
 * Wraps `link` so that every read and write on it is under the idle timeout and the minimum
 * rate, as ferry's own channel is: for the stacks that do not run on a channel (the tutorial's
 * wire, magic-wormhole's transit). `deadline` is there to count work that moved few bytes.
 */
export function guardLink(link: Link, idleMs: number): Link & { deadline: Deadline } {
  const deadline = new Deadline(idleMs, () => closeQuietly(link));
  return {
    read: (buffer) => deadline.guard("receiving", () => link.read(buffer)),
    write: (bytes) => deadline.guard("sending", () => link.write(bytes)),
    closeWrite: () => link.closeWrite(),
    close: () => {
      deadline.stop();
      closeQuietly(link);
    },
    peer: link.peer,
    path: link.path,
    ...(link.address !== undefined ? { address: link.address } : {}),
    deadline,
  };
}
