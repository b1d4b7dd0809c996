/**
 * Budgets as values: what one run of ferry may spend on peers it cannot trust yet. The code's
 * secret part is about 22 bits, and what makes that enough is that nobody gets more than a few
 * guesses at it: every completed PAKE with a wrong peer is one, whichever way the peer came
 * (dialled, accepted, found on the LAN, met at a relay) and whichever side we are. One
 * {@linkcode GuessBudget} per code is passed to every way in and counted here, in one place.
 *
 * @module
 */

import { AuthError, WIRE } from "./errors.ts";

/** Wrong guesses one run allows for one code, over every way in and both roles. */
export const MAX_WRONG_GUESSES = 10;

/**
 * Where a peer came from, for the budget. A way a stranger can use without our address (anyone
 * who knows the code's public part can pair at a relay; anyone on the LAN can announce a port)
 * may spend at most a share of it, so that guessing there cannot use up the others; a direct
 * connection (the address the user gave, or our listening port) may spend all of it.
 */
export type Way = "direct" | "lan" | "relay";

/** Options for {@linkcode GuessBudget}. */
export interface GuessBudgetOptions {
  /** Wrong guesses in all. @default {MAX_WRONG_GUESSES} */
  max?: number;
  /** Wrong guesses the LAN or the relay may spend. @default {half of max, rounded up} */
  perWay?: number;
}

/**
 * The wrong-guess budget of one code. A guess is reserved before a handshake computes its key
 * and given back when it ends: spent if the peer turned out to be wrong, unspent if it went away
 * before it could test its guess. While the guesses left are all being tried, a further
 * handshake waits for one to come back, so guesses made at the same moment never add up to
 * more than the budget.
 *
 * @example Two wrong guesses on the LAN, then the right peer
 * ```ts
 * import { GuessBudget } from "./budget.ts";
 * const budget = new GuessBudget({ max: 4 });
 * // Peers found on the LAN may spend half of it; the address the user gave, all of it.
 * for (let i = 0; i < 2; i++) {
 *   await budget.reserve("lan");
 *   budget.release("lan", true);
 * }
 * console.assert(budget.exhaustedOn("lan") && !budget.exhausted);
 * await budget.reserve("direct");
 * budget.release("direct", false);
 * ```
 */
export class GuessBudget {
  readonly max: number;
  readonly perWay: number;
  #wrong = new Map<Way, number>();
  #trying = new Map<Way, number>();
  #turns: (() => void)[] = [];

  constructor(options: GuessBudgetOptions = {}) {
    this.max = options.max ?? MAX_WRONG_GUESSES;
    this.perWay = options.perWay ?? Math.ceil(this.max / 2);
  }

  /** Wrong guesses spent in all. */
  get failures(): number {
    return sum(this.#wrong);
  }

  /** No guess is left on any way. */
  get exhausted(): boolean {
    return this.failures >= this.max;
  }

  /** No guess is left on `way` (its share, or the whole budget, is spent). */
  exhaustedOn(way: Way): boolean {
    return this.exhausted || (this.#wrong.get(way) ?? 0) >= this.#share(way);
  }

  /** Wrong guesses spent on `way`. */
  failuresOn(way: Way): number {
    return this.#wrong.get(way) ?? 0;
  }

  /**
   * How long a waiting side pauses on `way` before it takes the next peer there: nothing at
   * first, then 0.5, 1, 2, 4 s after each wrong guess on it, so that guesses there come slowly.
   */
  backoffMs(way: Way): number {
    const wrong = this.failuresOn(way);
    return wrong === 0 ? 0 : Math.min(500 * 2 ** (wrong - 1), 4000);
  }

  /**
   * Takes one guess on `way` for a handshake about to compute its key, waiting while all the
   * guesses left are being tried. Throws AuthError (too many attempts) once none are left.
   */
  async reserve(way: Way): Promise<void> {
    while (!this.exhaustedOn(way) && this.#busy(way)) {
      await new Promise<void>((resolve) => this.#turns.push(resolve));
    }
    if (this.exhaustedOn(way)) {
      throw new AuthError(
        "too many wrong codes; no longer accepting guesses",
        WIRE.TOO_MANY_ATTEMPTS,
      );
    }
    this.#trying.set(way, (this.#trying.get(way) ?? 0) + 1);
  }

  /** Gives back a reserved guess: `wrong` if the peer could test its guess and it was wrong. */
  release(way: Way, wrong: boolean): void {
    this.#trying.set(way, (this.#trying.get(way) ?? 1) - 1);
    if (wrong) this.#wrong.set(way, this.failuresOn(way) + 1);
    for (const wake of this.#turns.splice(0)) wake();
  }

  /** Every guess left, in all or on `way`, is being tried now. */
  #busy(way: Way): boolean {
    const onWay = this.failuresOn(way) + (this.#trying.get(way) ?? 0);
    return this.failures + sum(this.#trying) >= this.max || onWay >= this.#share(way);
  }

  /** Most wrong guesses `way` may spend. */
  #share(way: Way): number {
    return way === "direct" ? this.max : this.perWay;
  }
}

function sum(counts: Map<Way, number>): number {
  let total = 0;
  for (const count of counts.values()) total += count;
  return total;
}
