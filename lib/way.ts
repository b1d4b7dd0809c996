/**
 * Ways in: how the two sides can find each other besides the tutorial's own (listen on a port,
 * dial HOST). Each way is one module that exports a {@linkcode Way} (lib/discovery.ts: the LAN;
 * lib/relay.ts: a transit relay), and one line in lib/meet.ts's `WAYS`. lib/meet.ts does the
 * rest for every way alike: merges what arrives on the waiting side, races the candidates on the
 * coming side (lib/race.ts), and counts every guess against one budget (lib/budget.ts).
 *
 * @module
 */

import type { GuessBudget } from "./budget.ts";
import type { Link, LinkPath, LinkSource } from "./transport.ts";

/** Where to meet, for both sides. */
export interface MeetOptions {
  /** "sender" or "receiver": our role. */
  role: "sender" | "receiver";
  /** The code phrase; only its public part is used here. */
  code: string;
  /** Use LAN discovery. */
  discover: boolean;
  /** A transit relay to meet at, if any. */
  relay?: { host: string; port: number };
  /** Warnings for the user (a lost relay, a failed announcer). */
  warn: (text: string) => void;
  /** The code's wrong-guess budget, shared by every way in. */
  budget: GuessBudget;
}

/** What the waiting side already has: the TCP address it listens on. */
export interface Listening {
  host: string;
  port: number;
}

/** Links arriving by one way on the waiting side, and how to tell the user so. */
export interface Waited {
  links: LinkSource;
  /** "announced on the LAN", "waiting at the relay 10.0.0.9:4001". */
  said: string;
  /** What the other side must be told to come this way: `--relay tcp:10.0.0.9:4001`. */
  tell?: string;
}

/** Links to the waiting side that one way finds on the coming side. */
export interface Finder {
  /** Where it looks, for "no receiver appeared …": "on the LAN", "at the relay …". */
  where: string;
  /** What its links are marked as (a link's `path`). */
  path: LinkPath;
  /** Tried only after a short delay, or at once when nothing else is being tried. */
  slow: boolean;
  /** Said when nothing was found: what else to try. */
  hint?: string;
  /** Starts looking; its links come as they are made. `error`: why it stopped early, if so. */
  start(): Promise<LinkSource & { error?: Error }>;
  /** The last peer it brought failed other than by a wrong code: bring another. */
  again?(): void;
}

/** One way in: what it does on each side; undefined where it is off for this run. */
export interface Way {
  /** The waiting side: makes us reachable this way. Throws if it cannot start at all. */
  wait(options: MeetOptions, listening: Listening): Promise<Waited | undefined>;
  /** The coming side; `address` is the HOST the user gave, if any. */
  find(options: MeetOptions, address?: { host: string; port: number }): Finder | undefined;
}

/** A source that yields nothing and only needs stopping (an announcer: peers come by TCP). */
export function nothingButStop(stop: () => void): LinkSource {
  return {
    close: stop,
    async *[Symbol.asyncIterator](): AsyncIterator<Link> {},
  };
}
