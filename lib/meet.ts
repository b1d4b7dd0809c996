/**
 * How the two sides meet. The waiting side (a receiver, or `sender --listen`) listens on TCP
 * like the tutorial, announces itself on the LAN, and waits at a relay if given one; the other
 * side dials HOST when it has one, else looks on the LAN, and tries the relay after a short
 * delay. Each way yields links (lib/transport.ts); the session code never knows which won.
 *
 * @module
 */

import {
  DISCOVERY_PORT,
  RELAY_SIDE_RECEIVER,
  RELAY_SIDE_SENDER,
  ROLE_RECEIVER,
  ROLE_SENDER,
} from "../protocol.ts";
import { discoveryTag, relayToken } from "./code_phrase.ts";
import { announce, discover } from "./discovery.ts";
import { AuthError, ConnectionError, UsageError } from "./errors.ts";
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

/** How long the dialling side tries the direct way before it also tries the relay. */
export const RELAY_DELAY_MS = 2000;
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
  /** UDP port for discovery (tests). @default {DISCOVERY_PORT} */
  udpPort?: number;
  /** Warnings for the user (a lost relay, a failed announcer). */
  warn: (text: string) => void;
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
    udpPort: options.udpPort ?? DISCOVERY_PORT,
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
    for (const item of this.#pending) closeQuietly(item);
    this.#queue.close();
  }

  wrongCode(): void {
    clearTimeout(this.#deadline);
    this.#deadline = setTimeout(() => this.settle(), AFTER_WRONG_CODE_MS);
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
   * One pairing at the relay, once its turn comes. A connection the relay hangs up on before
   * pairing (made redundant by another sender with this code) is tried again until the peer is
   * found or time runs out.
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
        return;
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

/** A session's outcome as {@linkcode tryCandidates} needs it. */
export interface Tried<T> {
  authenticated: boolean;
  error?: unknown;
  summary?: T;
}

/**
 * The coming side, whole: looks for the waiting side ({@linkcode findPeer}), tells the user
 * how each candidate was reached, and runs `session` on it until one authenticates. Returns
 * that session's outcome; throws its error, or why no peer was found.
 */
export async function reachPeer<T extends Tried<unknown>>(
  options: FindOptions,
  reporter: Reporter,
  session: (link: Link) => Promise<T>,
): Promise<T> {
  const warn = (text: string) => reporter.warn(text);
  const outcome = await tryCandidates(findPeer(options), (link) => {
    // Said whenever it is news: found, relayed, or direct when a relay was possible.
    reporter.connected(link, "1", link.path !== "direct" || options.relay !== undefined);
    return session(link);
  }, warn);
  if (outcome.error !== undefined) throw outcome.error;
  return outcome;
}

/**
 * Runs `session` on each candidate until one authenticates. A candidate that refuses our code
 * or drops before the handshake completes is reported and passed over while others may come;
 * the first authenticated session's outcome is returned, whatever its end.
 */
export async function tryCandidates<T extends Tried<unknown>>(
  candidates: Candidates,
  session: (link: Link) => Promise<T>,
  warn: (text: string) => void,
): Promise<T> {
  let last: T | undefined;
  for await (const link of candidates) {
    const outcome = await session(link);
    if (outcome.authenticated) {
      candidates.settle();
      return outcome;
    }
    last = outcome;
    if (outcome.error instanceof AuthError) candidates.wrongCode();
    if (candidates.searching) {
      const why = outcome.error instanceof Error ? outcome.error.message : "failed";
      warn(`${link.peer}: ${why}; still looking`);
    }
  }
  if (last) return last;
  throw candidates.failure();
}
