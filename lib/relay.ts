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

import { encodeRelayRequest, RELAY_MAX_LINE, RELAY_OK } from "../protocol.ts";
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
  let current: Deno.TcpConn | undefined = await dialTcp(relay.host, relay.port);
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let wake: (() => void) | undefined;
  const queue = new Queue<Link>(closeQuietly);
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, ms);
    });

  queue.run(async () => {
    let backoff = 1000;
    let lost = false;
    let hangUps = 0;
    while (!stopped) {
      await pause(options.budget.backoffMs("relay"));
      if (options.budget.exhaustedOn("relay")) {
        if (!options.budget.exhausted) options.warn(guessedAtRelay(relay, options.budget));
        break;
      }
      try {
        current ??= await dialTcp(relay.host, relay.port);
        const link = await pairAtRelay(current, relay, options);
        current = undefined;
        if (lost) options.warn(`back at the ${relayName(relay)}`);
        lost = false;
        backoff = 1000;
        hangUps = 0;
        queue.push(link);
      } catch (err) {
        current = undefined;
        if (stopped) break;
        if (err instanceof RelayRefusedError && err.hungUp && ++hangUps <= MAX_HANG_UPS) {
          await pause(100);
          continue;
        }
        if (!lost) {
          options.warn(`lost the ${relayName(relay)} (${(err as Error).message}); reconnecting`);
        }
        lost = true;
        await pause(backoff);
        backoff = Math.min(backoff * 2, options.maxBackoffMs ?? 10_000);
      }
    }
  });
  return {
    [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator](),
    close: () => {
      stopped = true;
      clearTimeout(timer);
      wake?.();
      if (current) closeQuietly(current);
      queue.close();
    },
  };
}
