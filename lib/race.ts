/**
 * One race among contenders: every way in hands the links it makes to {@linkcode Race.enter};
 * each is proved (a handshake) while the others are, at most a few at once; the first proved
 * wins, every other is closed, and any that arrives later is closed on arrival. ferry's own
 * meeting and magic-wormhole's transit both run on it, so a silent candidate never holds up a
 * ready one, and losers never linger.
 *
 * @module
 */

import { closeQuietly, type Link } from "./transport.ts";

/** Options for {@linkcode Race}. */
export interface RaceOptions {
  /** Proofs in progress at once; more links wait their turn. @default {8} */
  maxInFlight?: number;
  /** A link failed its proof (or lost the race): told with why. */
  onLoss?: (link: Link, error: unknown) => void;
  /** Nothing is being proved and nothing waits: the moment to try slower ways at once. */
  onIdle?: () => void;
}

/** What a proof gives: the winner's value, and how to drop it if it comes second. */
export interface Proved<T> {
  value: T;
  /** Closes what the proof opened (a losing, proved link). */
  discard(): void;
}

/**
 * The links of one meeting and their proofs; {@linkcode Race.winner} resolves with the first
 * proved one.
 *
 * @example
 * ```ts
 * import { Race } from "./race.ts";
 * const race = new Race<string>((link) =>
 *   Promise.resolve({ value: link.peer, discard: () => link.close() })
 * );
 * const link = { peer: "a", path: "direct" as const, close() {} } as never;
 * race.enter(link);
 * race.end();
 * console.assert((await race.winner()) === "a");
 * ```
 */
export class Race<T> {
  #prove: (link: Link) => Promise<Proved<T>>;
  #options: RaceOptions;
  #waiting: Link[] = [];
  #proving = new Set<Link>();
  #settled = false;
  #ended = false;
  #result = Promise.withResolvers<T | undefined>();

  constructor(prove: (link: Link) => Promise<Proved<T>>, options: RaceOptions = {}) {
    this.#prove = prove;
    this.#options = options;
  }

  /** A winner was found, or the race was given up: every further link is closed. */
  get settled(): boolean {
    return this.#settled;
  }

  /** Links being proved or waiting their turn. */
  get pending(): number {
    return this.#proving.size + this.#waiting.length;
  }

  /** A new contender. */
  enter(link: Link): void {
    if (this.#settled) return closeQuietly(link);
    this.#waiting.push(link);
    this.#next();
  }

  /** No more links will come: the race ends once the last proof fails. */
  end(): void {
    this.#ended = true;
    this.#finishIfDone();
  }

  /** Gives up: closes every link still in the race; winner() resolves undefined. */
  cancel(): void {
    this.#settle(undefined);
  }

  /** The first proved link's value, or undefined if none was (after end() or cancel()). */
  winner(): Promise<T | undefined> {
    return this.#result.promise;
  }

  #next(): void {
    while (!this.#settled && this.#waiting.length > 0) {
      if (this.#proving.size >= (this.#options.maxInFlight ?? 8)) return;
      const link = this.#waiting.shift()!;
      this.#proving.add(link);
      this.#prove(link).then(
        (proved) => {
          this.#proving.delete(link);
          if (this.#settled) {
            proved.discard();
            this.#options.onLoss?.(link, new Error("another connection won"));
          } else {
            this.#settle(proved.value);
          }
        },
        (error) => {
          this.#proving.delete(link);
          closeQuietly(link);
          if (!this.#settled) this.#options.onLoss?.(link, error);
          this.#next();
          this.#finishIfDone();
        },
      );
    }
  }

  #finishIfDone(): void {
    if (this.#settled || this.pending > 0) return;
    if (this.#ended) this.#settle(undefined);
    else this.#options.onIdle?.();
  }

  #settle(value: T | undefined): void {
    if (this.#settled) return;
    this.#settled = true;
    for (const link of [...this.#waiting, ...this.#proving]) closeQuietly(link);
    this.#waiting = [];
    this.#result.resolve(value);
  }
}
