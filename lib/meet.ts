/**
 * How the two sides meet. The waiting side (a receiver, or `sender --listen`) listens on TCP
 * like the tutorial, announces itself on the LAN, and waits at a relay if given one; the other
 * side dials HOST when it has one, else looks on the LAN, and tries the relay after a short
 * delay. Each way yields links (lib/transport.ts); the session code never knows which won.
 *
 * @module
 */

import type { GuessBudget } from "./budget.ts";
import { LAN } from "./discovery.ts";
import { AuthError, ConnectionError, UsageError, WIRE } from "./errors.ts";
import { QUIET_PEER_MS } from "./handshake.ts";
import { Race } from "./race.ts";
import { RELAY } from "./relay.ts";
import type { Reporter } from "./report.ts";
import { authenticate, type Pipe } from "./session.ts";
import {
  acceptTcp,
  closeQuietly,
  dialTcp,
  type Link,
  type LinkPath,
  type LinkSource,
  mergeSources,
  Queue,
  reachableAddresses,
  tcpLink,
} from "./transport.ts";
import type { Finder, MeetOptions, Way } from "./way.ts";

/**
 * How long the coming side tries the direct ways before it also tries the relay (at once when
 * nothing else is being tried): magic-wormhole waits a fixed delay; half a second costs a
 * direct meeting nothing and a relayed one little.
 */
export const RELAY_DELAY_MS = 500;
/** After a wrong code from one peer, how long to keep looking for another. */
const AFTER_WRONG_CODE_MS = 3000;

export type { MeetOptions } from "./way.ts";

/**
 * Every way in besides the tutorial's own (listen, dial HOST). A new way is a module that
 * exports a Way (lib/way.ts), and one entry here.
 */
const WAYS: Way[] = [LAN, RELAY];

/** What the waiting side waits on. */
export interface Waiting {
  /** The TCP port we listen on (useful with --port 0). */
  port: number;
  /** Every peer that arrives, by any way; close() stops all of them. */
  links: LinkSource;
  /** How else peers can reach us, for the user: "announced on the LAN", "waiting at relay …". */
  also: string[];
  /** Flags the other side needs to come those ways too: `--relay tcp:…`. */
  tell: string[];
  /**
   * The address to give peers: the one we listen on, or, listening on every address, the first
   * of {@linkcode reachableAddresses}; undefined when we have none to give (peers find us on the
   * LAN, or at the relay).
   */
  reachAt: string | undefined;
  /** The machine's other addresses a peer could use (listening on every address). */
  otherAddresses: string[];
}

/**
 * Starts waiting: TCP on `host:port`, like the tutorial, and every other way in that this run
 * uses (announced on the LAN, waiting at a relay): what arrives by any of them comes as one
 * source of links.
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
  const tell: string[] = [];
  for (const way of WAYS) {
    try {
      const waited = await way.wait(options, { host, port: bound });
      if (waited === undefined) continue;
      sources.push(waited.links);
      also.push(waited.said);
      if (waited.tell) tell.push(waited.tell);
    } catch (err) {
      for (const source of sources) source.close();
      throw err;
    }
  }
  const wildcard = host === "0.0.0.0" || host === "::";
  const [reachAt, ...otherAddresses] = wildcard ? await reachableAddresses() : [host];
  return { port: bound, links: mergeSources(sources), also, tell, reachAt, otherAddresses };
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
  /** Nothing else is being tried: start the slow ways (the relay) now, not after their delay. */
  slowNow(): void;
  /** The last peer a way brought (`path`) failed other than by a wrong code: bring another. */
  again(path: LinkPath): void;
  /** Whether more candidates may still come. */
  readonly searching: boolean;
  /** Why nothing (more) was found, once iteration has ended. */
  failure(): Error;
}

/**
 * Looks for the waiting side: dials `address` if given, and looks every way this run uses (on
 * the LAN without an address); the slow ways (the relay) after {@linkcode RELAY_DELAY_MS}, or at
 * once when nothing else is being tried. Yields each link as it is made.
 */
export function findPeer(options: FindOptions): Candidates {
  return new Search(options);
}

/** One search for the waiting side: each way is a producer of links into one queue. */
class Search implements Candidates {
  #options: FindOptions;
  #queue = new Queue<Link>(closeQuietly);
  #finders: Finder[] = [];
  /** What a stop must close: the sources the ways opened. */
  #pending = new Set<{ close(): void }>();
  #lastError: Error | undefined;
  #deadline: ReturnType<typeof setTimeout>;
  #slowTimer: ReturnType<typeof setTimeout> | undefined;
  #startSlow: () => void = () => {};
  #slowTurn = new Promise<void>((resolve) => this.#startSlow = resolve);

  constructor(options: FindOptions) {
    this.#options = options;
    this.#deadline = setTimeout(() => this.settle(), options.timeoutMs);
    if (options.address) this.#queue.run(() => this.#dial(options.address!));
    for (const way of WAYS) {
      const finder = way.find(options, options.address);
      if (finder === undefined) continue;
      this.#finders.push(finder);
      this.#queue.run(async () => {
        if (finder.slow) await this.#slowTurn;
        await this.#look(finder);
      });
    }
    // Nothing quick to try: the slow ways need not wait.
    if (!options.address && this.#finders.every((finder) => finder.slow)) this.#startSlow();
    else this.#slowTimer = setTimeout(this.#startSlow, RELAY_DELAY_MS);
  }

  [Symbol.asyncIterator](): AsyncIterator<Link> {
    return this.#queue[Symbol.asyncIterator]();
  }

  get searching(): boolean {
    return this.#queue.open;
  }

  settle(): void {
    clearTimeout(this.#deadline);
    clearTimeout(this.#slowTimer);
    this.#startSlow();
    for (const item of this.#pending) closeQuietly(item);
    this.#queue.close();
  }

  wrongCode(): void {
    clearTimeout(this.#deadline);
    this.#deadline = setTimeout(() => this.settle(), AFTER_WRONG_CODE_MS);
  }

  slowNow(): void {
    clearTimeout(this.#slowTimer);
    this.#startSlow();
  }

  again(path: LinkPath): void {
    for (const finder of this.#finders) if (finder.path === path) finder.again?.();
  }

  failure(): Error {
    if (this.#lastError) return this.#lastError;
    const options = this.#options;
    const ways = this.#finders.map((finder) => finder.where).join(" or ");
    const hint = this.#finders.find((finder) => finder.hint)?.hint ?? "";
    return new ConnectionError(
      `no ${peerOf(options.role)} with this code appeared ${ways || "anywhere"} within ` +
        `${Math.round(options.timeoutMs / 1000)} s; check that it is running with the same code` +
        hint,
    );
  }

  /** The address the user gave; if it fails, the slow ways need not wait their turn. */
  async #dial({ host, port }: { host: string; port: number }): Promise<void> {
    try {
      this.#queue.push(tcpLink(await dialTcp(host, port), "direct"));
    } catch (err) {
      this.#lastError = err as Error;
      this.#startSlow();
    }
  }

  /** Every link one way finds, until the search ends. */
  async #look(finder: Finder): Promise<void> {
    if (this.#queue.closed) return;
    let source: LinkSource & { error?: Error };
    try {
      source = await finder.start();
    } catch (err) {
      this.#options.warn(`cannot look ${finder.where} (${(err as Error).message})`);
      this.#startSlow();
      return;
    }
    this.#pending.add(source);
    if (this.#queue.closed) source.close();
    for await (const link of source) this.#queue.push(link);
    if (source.error && !this.#queue.closed) this.#lastError = source.error;
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
      ? setTimeout(() => search.again("relay"), QUIET_PEER_MS)
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
      else search.again(link.path);
      if (budget.exhausted) return race.cancel();
      if (search.searching) reporter.warn(`${link.peer}: ${errorText(error)}; still looking`);
    },
    onIdle: () => search.slowNow(),
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
