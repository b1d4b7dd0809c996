/**
 * How the two sides meet. The waiting side (a receiver, or `sender --listen`) listens on TCP
 * like the tutorial, announces itself on the LAN, and waits at a relay if given one; the other
 * side dials HOST when it has one, else looks on the LAN, and tries the relay after a short
 * delay. Each way yields links (lib/transport.ts); the session code never knows which won.
 *
 * @module
 */

import { RELAY_SIDE_RECEIVER, RELAY_SIDE_SENDER, ROLE_RECEIVER, ROLE_SENDER } from "../protocol.ts";
import { discoveryTag, relayToken } from "./code_phrase.ts";
import { announce, discover } from "./discovery.ts";
import type { GuessBudget } from "./budget.ts";
import { AuthError, ConnectionError, UsageError, WIRE } from "./errors.ts";
import { QUIET_PEER_MS } from "./handshake.ts";
import { Race } from "./race.ts";
import { authenticate, type Pipe } from "./session.ts";
import type { Reporter } from "./report.ts";
import {
  pairAtRelay,
  type RelayAddress,
  relayName,
  RelayRefusedError,
  waitAtRelay,
} from "./relay.ts";
import {
  acceptTcp,
  closeQuietly,
  dialTcp,
  type Link,
  type LinkSource,
  mergeSources,
  outwardAddress,
  Queue,
  tcpLink,
} from "./transport.ts";

/**
 * How long the coming side tries the direct ways before it also tries the relay (at once when
 * nothing else is being tried): magic-wormhole waits a fixed delay; half a second costs a
 * direct meeting nothing and a relayed one little.
 */
export const RELAY_DELAY_MS = 500;
/** After a wrong code from one peer, how long to keep looking for another. */
const AFTER_WRONG_CODE_MS = 3000;

/** Where to meet, for both sides. */
export interface MeetOptions {
  /** "sender" or "receiver": our role. */
  role: "sender" | "receiver";
  /** The code phrase; only its public part is used here. */
  code: string;
  /** Use LAN discovery. */
  discover: boolean;
  /** A transit relay to meet at, if any. */
  relay?: RelayAddress;
  /** Warnings for the user (a lost relay, a failed announcer). */
  warn: (text: string) => void;
  /** The code's wrong-guess budget, shared by every way in. */
  budget: GuessBudget;
}

const ROLE = { sender: ROLE_SENDER, receiver: ROLE_RECEIVER } as const;
const SIDE = { sender: RELAY_SIDE_SENDER, receiver: RELAY_SIDE_RECEIVER } as const;

/** What the waiting side waits on. */
export interface Waiting {
  /** The TCP port we listen on (useful with --port 0). */
  port: number;
  /** Every peer that arrives, by any way; close() stops all of them. */
  links: LinkSource;
  /** How else peers can reach us, for the user: "announced on the LAN", "waiting at relay …". */
  also: string[];
  /**
   * The address to give peers: the one we listen on, or our outward one for 0.0.0.0; undefined
   * when we have none to give (no route out: peers find us on the LAN, or at the relay).
   */
  reachAt: string | undefined;
}

/**
 * Starts waiting: TCP on `host:port`, announced on the LAN unless `host` is a loopback address
 * (nobody there could dial it) or discovery is off, and at the relay if there is one.
 */
export async function waitForPeers(
  host: string,
  port: number,
  options: MeetOptions,
): Promise<Waiting> {
  const listener = listenTcp(host, port);
  const sources: LinkSource[] = [acceptTcp(listener, options.warn)];
  const bound = (listener.addr as Deno.NetAddr).port;
  const also: string[] = [];
  if (options.discover && !isLoopback(host)) {
    try {
      const announcer = await announce(bound, discoveryOptions(options, options.role));
      sources.push({ close: () => announcer.stop(), async *[Symbol.asyncIterator]() {} });
      also.push("announced on the LAN");
    } catch (err) {
      options.warn(
        `cannot announce on the LAN (${(err as Error).message}); give peers the address`,
      );
    }
  }
  if (options.relay) {
    also.push(`waiting at the ${relayName(options.relay)}`);
    try {
      sources.push(
        await waitAtRelay(options.relay, {
          token: relayToken(options.code),
          side: SIDE[options.role],
          warn: options.warn,
          budget: options.budget,
        }),
      );
    } catch (err) {
      for (const source of sources) source.close();
      throw err;
    }
  }
  const wildcard = host === "0.0.0.0" || host === "::";
  const reachAt = wildcard ? await outwardAddress() : host;
  return { port: bound, links: mergeSources(sources), also, reachAt };
}

/** Deno.listen, with its failures said in words and with the flag that changes them. */
function listenTcp(host: string, port: number): Deno.TcpListener {
  try {
    return Deno.listen({ hostname: host, port });
  } catch (err) {
    if (err instanceof Deno.errors.AddrInUse) {
      throw new UsageError(
        `port ${port} is in use (another receiver?); choose another with --port, or 0 for any`,
      );
    }
    if (err instanceof Deno.errors.AddrNotAvailable) {
      throw new UsageError(`${host} is not an address of this machine; check --host`);
    }
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new UsageError(`port ${port} needs privileges; choose one above 1023 with --port`);
    }
    throw err;
  }
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host.startsWith("127.") || host === "::1";
}

function discoveryOptions(options: MeetOptions, role: "sender" | "receiver") {
  return {
    tag: discoveryTag(options.code),
    role: ROLE[role],
  };
}

/** Options for {@linkcode findPeer}. */
export interface FindOptions extends MeetOptions {
  /** The peer's address, when the user gave one: dialled first. */
  address?: { host: string; port: number } | undefined;
  /** How long to look before giving up. */
  timeoutMs: number;
}

/** Candidate links to the waiting side, in the order they come, until one is settled. */
export interface Candidates extends AsyncIterable<Link> {
  /** A session on one of them authenticated: stop looking, close the rest. */
  settle(): void;
  /** A candidate refused our code: keep looking only a little longer. */
  wrongCode(): void;
  /** Nothing else is being tried: go to the relay now rather than after its delay. */
  relayNow(): void;
  /** The peer met at the relay was not ours: pair there once more (while looking). */
  retryRelay(): void;
  /** Whether more candidates may still come. */
  readonly searching: boolean;
  /** Why nothing (more) was found, once iteration has ended. */
  failure(): Error;
}

/**
 * Looks for the waiting side: dials `address` if given, else listens on the LAN; after
 * {@linkcode RELAY_DELAY_MS} (at once when there is no other way, or the direct way failed)
 * also waits at the relay. Yields each link as it is made.
 */
export function findPeer(options: FindOptions): Candidates {
  return new Search(options);
}

/** One search for the waiting side: each way is a producer of links into one queue. */
class Search implements Candidates {
  #options: FindOptions;
  #queue = new Queue<Link>(closeQuietly);
  /** What a stop must close: the LAN search, connections waiting at the relay. */
  #pending = new Set<{ close(): void }>();
  #lastError: Error | undefined;
  #deadline: ReturnType<typeof setTimeout>;
  #relayTimer: ReturnType<typeof setTimeout> | undefined;
  #startRelay: () => void = () => {};
  #relayStarted = new Promise<void>((resolve) => this.#startRelay = resolve);
  /** Wakes the relay producer for another pairing. */
  #relayAgain: () => void = () => {};

  constructor(options: FindOptions) {
    this.#options = options;
    this.#deadline = setTimeout(() => this.settle(), options.timeoutMs);
    if (options.address) this.#queue.run(() => this.#dial(options.address!));
    else if (options.discover) this.#queue.run(() => this.#lookOnLan());
    if (options.relay) {
      if (!options.address && !options.discover) this.#startRelay();
      else this.#relayTimer = setTimeout(this.#startRelay, RELAY_DELAY_MS);
      this.#queue.run(() => this.#meetAtRelay(options.relay!));
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Link> {
    return this.#queue[Symbol.asyncIterator]();
  }

  get searching(): boolean {
    return this.#queue.open;
  }

  settle(): void {
    clearTimeout(this.#deadline);
    clearTimeout(this.#relayTimer);
    this.#startRelay();
    this.#relayAgain();
    for (const item of this.#pending) closeQuietly(item);
    this.#queue.close();
  }

  wrongCode(): void {
    clearTimeout(this.#deadline);
    this.#deadline = setTimeout(() => this.settle(), AFTER_WRONG_CODE_MS);
  }

  relayNow(): void {
    clearTimeout(this.#relayTimer);
    this.#startRelay();
  }

  retryRelay(): void {
    this.#relayAgain();
  }

  failure(): Error {
    if (this.#lastError) return this.#lastError;
    const options = this.#options;
    const onLan = options.discover && !options.address;
    const ways = [
      onLan ? "on the LAN" : "",
      options.relay ? `at the ${relayName(options.relay)}` : "",
    ]
      .filter((way) => way !== "").join(" or ");
    return new ConnectionError(
      `no ${peerOf(options.role)} with this code appeared ${ways || "anywhere"} within ` +
        `${Math.round(options.timeoutMs / 1000)} s; check that it is running with the same code` +
        (onLan ? ", on this network (or pass its address, or --relay)" : ""),
    );
  }

  /** The address the user gave; if it fails, the relay need not wait its turn. */
  async #dial({ host, port }: { host: string; port: number }): Promise<void> {
    try {
      this.#queue.push(tcpLink(await dialTcp(host, port), "direct"));
    } catch (err) {
      this.#lastError = err as Error;
      this.#startRelay();
    }
  }

  /** Every waiting side with our tag that announces itself on the LAN. */
  async #lookOnLan(): Promise<void> {
    let source: LinkSource;
    try {
      source = await discover(discoveryOptions(this.#options, peerOf(this.#options.role)));
    } catch (err) {
      this.#options.warn(`cannot look on the LAN (${(err as Error).message})`);
      this.#startRelay();
      return;
    }
    this.#pending.add(source);
    if (this.#queue.closed) source.close();
    for await (const link of source) this.#queue.push(link);
  }

  /**
   * Pairings at the relay, once its turn comes: one at a time, another only when the last one's
   * peer was not ours ({@linkcode Search.retryRelay}). A connection the relay hangs up on before
   * pairing (made redundant by another of our side with this code) is tried again until the
   * peer is found or time runs out.
   */
  async #meetAtRelay(relay: RelayAddress): Promise<void> {
    await this.#relayStarted;
    const token = relayToken(this.#options.code);
    while (!this.#queue.closed) {
      try {
        const conn = await dialTcp(relay.host, relay.port);
        this.#pending.add(conn);
        this.#queue.push(await pairAtRelay(conn, relay, { token, side: SIDE[this.#options.role] }));
        this.#pending.delete(conn);
        await new Promise<void>((resolve) => this.#relayAgain = resolve);
      } catch (err) {
        // Closed by us: found elsewhere, or out of time (failure() says which).
        if (this.#queue.closed) return;
        this.#lastError = err as Error;
        if (!(err instanceof RelayRefusedError && err.hungUp)) return;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }
}

function peerOf(role: "sender" | "receiver"): "sender" | "receiver" {
  return role === "sender" ? "receiver" : "sender";
}

/** Options for {@linkcode connect}. */
export interface ConnectOptions extends FindOptions {
  /** SPAKE2 password scalar of the code. */
  w: bigint;
}

/**
 * The coming side, whole: looks for the waiting side every way it has ({@linkcode findPeer})
 * and proves the code on each candidate as it comes, several at once ({@linkcode Race}). The
 * first that proves it is returned as a pipe; the rest are closed. A candidate that turns out
 * wrong is reported and passed over, within the code's guess budget: when a way in has used
 * its share, it is given up, and so is the search when none is left.
 */
export async function connect(options: ConnectOptions, reporter: Reporter): Promise<Pipe> {
  const search = findPeer(options);
  const budget = options.budget;
  const auth = { w: options.w, timeoutMs: options.timeoutMs, waiting: false, budget };
  let lastError: unknown;
  const race: Race<Pipe> = new Race(async (link) => {
    // A peer met at the relay that says nothing may be squatting on our token there: pair
    // once more meanwhile, and let the two race.
    const squatter = link.path === "relay"
      ? setTimeout(() => search.retryRelay(), QUIET_PEER_MS)
      : undefined;
    try {
      const pipe = await authenticate(link, options.role, {
        ...auth,
        // A peer that says nothing at an address the user gave is worth a word.
        ...(link.path === "direct"
          ? { onQuiet: () => reporter.warn(quietPeer(link, options)) }
          : {}),
      });
      return { value: pipe, discard: () => pipe.channel.close() };
    } finally {
      clearTimeout(squatter);
    }
  }, {
    onLoss: (link, error) => {
      lastError = error;
      // A peer that checked our code and said "wrong" is not met again the same way; one that
      // failed otherwise (silent, gone: someone squatting on the relay) may be.
      if (error instanceof AuthError) search.wrongCode();
      else if (link.path === "relay") search.retryRelay();
      if (budget.exhausted) return race.cancel();
      if (search.searching) reporter.warn(`${link.peer}: ${errorText(error)}; still looking`);
    },
    onIdle: () => search.relayNow(),
  });
  (async () => {
    for await (const link of search) race.enter(link);
    race.end();
  })();
  const pipe = await race.winner();
  search.settle();
  if (pipe) {
    // Said whenever it is news: found, relayed, or direct when a relay was possible.
    reporter.connected(pipe.link, "1", pipe.link.path !== "direct" || options.relay !== undefined);
    return pipe;
  }
  // More than one peer with another code: someone guessing, more likely than a typo.
  if (budget.failures > 1) throw guessing(budget, options);
  throw lastError ?? search.failure();
}

/** The words for a peer that said nothing at an address the user gave. */
function quietPeer(link: Link, options: FindOptions): string {
  return `${link.peer} has not answered in ${QUIET_PEER_MS / 1000} s; it may not be a ferry ` +
    `${peerOf(options.role)} (is this the right port?)`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : "failed";
}

/** Too many peers answered with another code: someone may be guessing. Exit 4. */
function guessing(budget: GuessBudget, options: FindOptions): AuthError {
  return new AuthError(
    `${budget.failures} peers that answered for this code did not know it: someone may be ` +
      "guessing it on this network. Stopped before they could try more; give the " +
      `${peerOf(options.role)}'s address (HOST), or start again with a new code`,
    WIRE.TOO_MANY_ATTEMPTS,
  );
}
