/**
 * Meeting at a magic-wormhole transit relay: both sides connect out to it, each says
 * `please relay TOKEN for side SIDE\n`, and once the other side has said the same token the
 * relay answers `ok\n` and splices the two connections. From then on it is a plain byte pipe,
 * with one catch: when either side closes (even half-closes), the relay closes both. ferry's
 * sessions end in band (DONE both ways), so a relay link simply cannot half-close.
 *
 * The token comes from the public part of the code only (see `relayToken()`), so the relay
 * learns nothing to test guesses against. Sides are fixed per role: two senders never pair.
 *
 * @module
 */

import {
  encodeRelayRequest,
  RELAY_MAX_LINE,
  RELAY_OK,
  RELAY_SIDE_RECEIVER,
  RELAY_SIDE_SENDER,
} from "../protocol.ts";
import { relayToken } from "./code_phrase.ts";
import type { Finder, MeetOptions, Waited, Way } from "./way.ts";
import type { GuessBudget } from "./budget.ts";
import { ConnectionError, UsageError } from "./errors.ts";
import { writeAll } from "./io.ts";
import {
  closeQuietly,
  dialTcp,
  formatHost,
  type Link,
  type LinkSource,
  Queue,
  tcpLink,
} from "./transport.ts";

/** A transit relay's address, from `--relay tcp:HOST:PORT` or `FERRY_RELAY`. */
export interface RelayAddress {
  host: string;
  port: number;
}

/** Parses `tcp:HOST:PORT` (or `HOST:PORT`; IPv6 in brackets). */
export function parseRelay(text: string): RelayAddress {
  const match = /^(?:tcp:)?(?:\[([^\]]+)\]|([^:\[\]]+)):(\d+)$/.exec(text.trim());
  const port = Number(match?.[3]);
  if (!match || !(port > 0 && port < 65536)) {
    throw new UsageError(
      `--relay takes tcp:HOST:PORT, e.g. tcp:relay.example.org:4001 (got ${text})`,
    );
  }
  return { host: match[1] ?? match[2]!, port };
}

/** The relay's name in messages. */
export function relayName(relay: RelayAddress): string {
  return `relay ${formatHost(relay.host, relay.port)}`;
}

/**
 * Thrown when the relay's first line is not "ok". `hungUp`: it closed without a word, as it
 * does to a connection made redundant by another of the same side (worth trying again).
 */
export class RelayRefusedError extends ConnectionError {
  readonly hungUp: boolean;
  constructor(message: string, hungUp: boolean) {
    super(message);
    this.hungUp = hungUp;
  }
}

/** Options for {@linkcode pairAtRelay}. */
export interface PairOptions {
  token: string;
  side: string;
}

/**
 * Asks the relay on `conn` for `token` and waits for `ok`; returns the spliced link. Throws
 * RelayRefusedError if the relay answers anything but ok or hangs up first (it hangs up on a
 * connection made redundant by another of our side), ConnectionError if the connection fails.
 */
export async function pairAtRelay(
  conn: Deno.TcpConn,
  relay: RelayAddress,
  options: PairOptions,
): Promise<Link> {
  const name = relayName(relay);
  try {
    await writeAll(conn, encodeRelayRequest(options.token, options.side));
    // One byte at a time: the peer's first bytes may follow "ok\n" in the same segment.
    const line: number[] = [];
    const one = new Uint8Array(1);
    while (line.length < RELAY_MAX_LINE) {
      if (await conn.read(one) === null) {
        throw new RelayRefusedError(
          `the ${name} hung up before pairing us with the other side`,
          true,
        );
      }
      if (one[0] === 0x0a) break;
      line.push(one[0]!);
    }
    const answer = new TextDecoder().decode(new Uint8Array(line));
    if (answer !== RELAY_OK) {
      throw new RelayRefusedError(
        `the ${name} refused us: ${JSON.stringify(answer.slice(0, 40))} ` +
          "(is it a magic-wormhole transit relay?)",
        false,
      );
    }
  } catch (err) {
    closeQuietly(conn);
    if (err instanceof ConnectionError) throw err;
    throw new ConnectionError(`lost the ${name} while waiting for the other side`, undefined, {
      cause: err,
    });
  }
  // The relay closes both directions when one closes: sessions end in band instead.
  return { ...tcpLink(conn, "relay", name), closeWrite: () => Promise.resolve() };
}

/** Hang-ups before pairing in a row that are still taken as someone else's pairing. */
const MAX_HANG_UPS = 20;

/** What the waiting side says when the relay's share of wrong guesses is spent. */
function guessedAtRelay(relay: RelayAddress, budget: GuessBudget): string {
  return `${budget.failuresOn("relay")} wrong codes came through the ${relayName(relay)}: ` +
    "someone who knows this code's first word may be guessing the rest there. No longer " +
    "waiting at the relay; senders that reach this machine directly still can, with the same code";
}

/** Options for {@linkcode waitAtRelay}. */
export interface WaitAtRelayOptions extends PairOptions {
  /** Told when the relay is lost and when it is back. */
  warn: (text: string) => void;
  /** Longest pause between reconnection attempts. @default {10000} */
  maxBackoffMs?: number;
  /**
   * The code's wrong-guess budget: after each wrong guess that came through the relay we wait
   * a little longer before taking the next peer there, and once the relay's share is spent we
   * stop waiting there (anyone who knows the code's public part can pair with us).
   */
  budget: GuessBudget;
}

/**
 * Keeps one connection waiting at the relay and yields each pairing as a link, re-arming so that
 * the next peer (or one arriving meanwhile) is served too: at once, or after the budget's pause
 * when wrong guesses came this way; never again once the relay's share of guesses is spent (the
 * other ways in stay open). The first connection must succeed (a relay that cannot be reached at
 * start is reported at once: exit 3); later losses are retried with a growing pause until
 * close(). A hang-up before pairing is no loss: another connection with our token (someone
 * squatting on it) was paired instead, and we take our place again at once.
 */
export async function waitAtRelay(
  relay: RelayAddress,
  options: WaitAtRelayOptions,
): Promise<LinkSource> {
  const waiter = new RelayWaiter(relay, options, await dialTcp(relay.host, relay.port));
  waiter.start();
  return waiter;
}

/** The waiting side's place at the relay, taken again after each pairing (see waitAtRelay). */
class RelayWaiter implements LinkSource {
  #relay: RelayAddress;
  #options: WaitAtRelayOptions;
  #current: Deno.TcpConn | undefined;
  #queue = new Queue<Link>(closeQuietly);
  #stopped = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;
  /** The relay was lost (said once, until it is back); the pause before the next try. */
  #lost = false;
  #backoff = 1000;
  /** Hang-ups before pairing in a row. */
  #hangUps = 0;

  constructor(relay: RelayAddress, options: WaitAtRelayOptions, first: Deno.TcpConn) {
    this.#relay = relay;
    this.#options = options;
    this.#current = first;
  }

  [Symbol.asyncIterator](): AsyncIterator<Link> {
    return this.#queue[Symbol.asyncIterator]();
  }

  start(): void {
    this.#queue.run(async () => {
      const budget = this.#options.budget;
      while (!this.#stopped) {
        await this.#pause(budget.backoffMs("relay"));
        if (budget.exhaustedOn("relay")) {
          if (!budget.exhausted) this.#options.warn(guessedAtRelay(this.#relay, budget));
          return;
        }
        try {
          await this.#pairOnce();
        } catch (err) {
          this.#current = undefined;
          if (this.#stopped) return;
          await this.#retryAfter(err);
        }
      }
    });
  }

  close(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#wake?.();
    if (this.#current) closeQuietly(this.#current);
    this.#queue.close();
  }

  /** Waits at the relay until a peer pairs with us; hands the link on. */
  async #pairOnce(): Promise<void> {
    const relay = this.#relay;
    this.#current ??= await dialTcp(relay.host, relay.port);
    const link = await pairAtRelay(this.#current, relay, this.#options);
    this.#current = undefined;
    if (this.#lost) this.#options.warn(`back at the ${relayName(relay)}`);
    this.#lost = false;
    this.#backoff = 1000;
    this.#hangUps = 0;
    this.#queue.push(link);
  }

  /** After a failure: at once for a hang-up (someone else's pairing), else a growing pause. */
  async #retryAfter(err: unknown): Promise<void> {
    if (err instanceof RelayRefusedError && err.hungUp && ++this.#hangUps <= MAX_HANG_UPS) {
      return await this.#pause(100);
    }
    if (!this.#lost) {
      const why = (err as Error).message;
      this.#options.warn(`lost the ${relayName(this.#relay)} (${why}); reconnecting`);
    }
    this.#lost = true;
    await this.#pause(this.#backoff);
    this.#backoff = Math.min(this.#backoff * 2, this.#options.maxBackoffMs ?? 10_000);
  }

  #pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(resolve, ms);
    });
  }
}

/**
 * The coming side's pairings at the relay: one at a time, another only when the last one's peer
 * was not ours ({@linkcode RelayMeeting.again}). A connection the relay hangs up on before
 * pairing (made redundant by another of our side with this code) is tried again until the peer
 * is found or the search ends; any other failure ends it, and is kept as `error`.
 */
class RelayMeeting implements LinkSource {
  error?: Error;
  #relay: RelayAddress;
  #options: PairOptions;
  #queue = new Queue<Link>(closeQuietly);
  #conn: Deno.TcpConn | undefined;
  #next: () => void = () => {};

  constructor(relay: RelayAddress, options: PairOptions) {
    this.#relay = relay;
    this.#options = options;
    this.#queue.run(() => this.#pairings());
  }

  [Symbol.asyncIterator](): AsyncIterator<Link> {
    return this.#queue[Symbol.asyncIterator]();
  }

  /** Pair once more. */
  again(): void {
    this.#next();
  }

  close(): void {
    this.#next();
    if (this.#conn) closeQuietly(this.#conn);
    this.#queue.close();
  }

  async #pairings(): Promise<void> {
    const relay = this.#relay;
    while (!this.#queue.closed) {
      try {
        this.#conn = await dialTcp(relay.host, relay.port);
        // Closed while we dialled: this connection must not wait at the relay for nobody.
        if (this.#queue.closed) return closeQuietly(this.#conn);
        const link = await pairAtRelay(this.#conn, relay, this.#options);
        this.#conn = undefined;
        this.#queue.push(link);
        await new Promise<void>((resolve) => this.#next = resolve);
      } catch (err) {
        // Closed by us: found elsewhere, or out of time.
        if (this.#queue.closed) return;
        this.error = err as Error;
        if (!(err instanceof RelayRefusedError && err.hungUp)) return;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }
}

const SIDE = { sender: RELAY_SIDE_SENDER, receiver: RELAY_SIDE_RECEIVER } as const;

/**
 * A transit relay as a way in (`--relay`). Both sides meet there by a token from the code's
 * public part; the waiting side keeps its place there, the coming side goes there after the
 * direct ways have had a moment.
 */
export const RELAY: Way = {
  async wait(options: MeetOptions): Promise<Waited | undefined> {
    if (!options.relay) return undefined;
    const token = relayToken(options.code);
    const links = await waitAtRelay(options.relay, {
      token,
      side: SIDE[options.role],
      warn: options.warn,
      budget: options.budget,
    });
    const { host, port } = options.relay;
    return {
      links,
      said: `waiting at the ${relayName(options.relay)}`,
      tell: `--relay tcp:${formatHost(host, port)}`,
    };
  },
  find(options: MeetOptions): Finder | undefined {
    const relay = options.relay;
    if (!relay) return undefined;
    let meeting: RelayMeeting | undefined;
    return {
      where: `at the ${relayName(relay)}`,
      path: "relay",
      slow: true,
      start: () => {
        meeting = new RelayMeeting(relay, {
          token: relayToken(options.code),
          side: SIDE[options.role],
        });
        return Promise.resolve(meeting);
      },
      again: () => meeting?.again(),
    };
  },
};
