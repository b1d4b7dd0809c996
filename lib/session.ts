/**
 * One connection, start to end, for either role: wrap it in a Channel, run the handshake, run
 * the transfer, and on failure tell the peer why before closing. Used the same way whether we
 * listened, dialled, found the peer on the LAN or met it at a relay: a session sees a Link.
 *
 * @module
 */

import { Channel } from "./channel.ts";
import { COMPRESS_CAPS, type CompressMode } from "./compress.ts";
import { EXIT, exitCodeOf, FerryError, WIRE, WIRE_MESSAGES } from "./errors.ts";
import { encodeError, encodePlainRecord, encodePreamble, FRAME_ERROR } from "../protocol.ts";
import { EmptyConnectionError, type LegacyReceiveOptions, receiveLegacy } from "./legacy.ts";
import type { Reader } from "./io.ts";
import { AttemptLimiter, handshake, QUIET_PEER_MS } from "./handshake.ts";
import type { SourceEntry } from "./manifest.ts";
import { closeQuietly, type Link, type LinkSource } from "./transport.ts";
import type { ReceiveSummary } from "./place.ts";
import { receiveEntries, type ReceiveOptions } from "./receive.ts";
import type { Reporter } from "./report.ts";
import { sendEntries, type SendSummary } from "./send.ts";

/** What every session needs. */
export interface SessionOptions {
  /** SPAKE2 password scalar, derived once per process from the code phrase. */
  w: bigint;
  reporter: Reporter;
  /** Idle timeout for handshake steps and transfer reads/writes. */
  timeoutMs: number;
  /**
   * Wrong-guess counter shared by every connection of the waiting side (the side that made the
   * code up or was started first with it). Set only there; without it we confirm first.
   */
  limiter?: AttemptLimiter;
  /** Called once the handshake succeeded (the waiting side moves the peer to another budget). */
  onAuthenticated?: () => void;
  /** Called with the error as soon as the session fails, before the peer is told. */
  onError?: (error: unknown) => void;
  /** Label for events from this connection. */
  id: string;
}

/**
 * Result of a session; `spokeFerry` is false if the peer never sent a valid preamble,
 * `authenticated` true once both confirmations were checked.
 */
export interface SessionOutcome<T> {
  summary?: T;
  error?: unknown;
  spokeFerry: boolean;
  authenticated: boolean;
}

/** The exit code a session ended with. */
export function outcomeExitCode(outcome: SessionOutcome<{ exitCode: number }>): number {
  return outcome.error === undefined ? outcome.summary!.exitCode : exitCodeOf(outcome.error);
}

/** Runs a `--legacy` receiving session: the tutorial's header, then bytes until close. */
export async function legacySession(
  conn: Link,
  options: LegacyReceiveOptions & { onError?: (error: unknown) => void },
): Promise<SessionOutcome<ReceiveSummary>> {
  try {
    return { summary: await receiveLegacy(conn, options), spokeFerry: true, authenticated: true };
  } catch (error) {
    options.onError?.(error);
    // The tutorial's wire has no code: any real header counts as the one transfer of --once.
    const spokeFerry = !(error instanceof EmptyConnectionError);
    return { error, spokeFerry, authenticated: spokeFerry };
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** Runs a sender session: handshake, then offer and send the entries of `manifest`. */
export function sendSession(
  conn: Link,
  manifest: Iterable<SourceEntry>,
  options: SessionOptions & { compress: CompressMode; hash?: boolean; stdin?: Reader },
): Promise<SessionOutcome<SendSummary>> {
  return runSession(conn, "sender", options, async (channel, peerCaps) => {
    const summary = await sendEntries(channel, manifest, { ...options, peerCaps });
    options.reporter.finish(options.id, { ...summary, wireBytes: channel.bytesOut });
    return summary;
  });
}

/** Runs a receiver session: handshake, then receive into `options.dir`. */
export function receiveSession(
  conn: Link,
  options: SessionOptions & Omit<ReceiveOptions, "reporter" | "id" | "timeoutMs">,
): Promise<SessionOutcome<ReceiveSummary>> {
  return runSession(conn, "receiver", options, async (channel) => {
    const summary = await receiveEntries(channel, options);
    options.reporter.finish(options.id, { ...summary, wireBytes: channel.bytesIn });
    return summary;
  });
}

async function runSession<T>(
  conn: Link,
  role: "sender" | "receiver",
  options: SessionOptions,
  transfer: (channel: Channel, peerCaps: number) => Promise<T>,
): Promise<SessionOutcome<T>> {
  const channel = new Channel(conn, { timeoutMs: options.timeoutMs });
  let authenticated = false;
  try {
    const session = await handshake(channel, {
      role,
      w: options.w,
      caps: COMPRESS_CAPS,
      confirmFirst: options.limiter === undefined,
      timeoutMs: options.timeoutMs,
      ...(options.limiter ? { limiter: options.limiter } : {
        // We came to it: if it says nothing, it is probably not ferry; say so while we wait.
        onQuiet: () =>
          options.reporter.warn(
            `${conn.peer} has not answered in ${QUIET_PEER_MS / 1000} s; it may not be a ferry ` +
              `${role === "sender" ? "receiver" : "sender"} (is this the right port?)`,
          ),
      }),
    });
    authenticated = true;
    options.onAuthenticated?.();
    const summary = await transfer(channel, session.peerCaps);
    await channel.closeWrite();
    return { summary, spokeFerry: true, authenticated };
  } catch (error) {
    options.reporter.abandon(options.id);
    options.onError?.(error);
    // Tell the peer what went wrong, unless it told us. A local failure that is not one of
    // ours (a permission, a disk) is named by its kind only: local paths stay local.
    if (error instanceof FerryError) {
      if (!error.fromPeer) await channel.sendError(error.wireCode, error.message);
    } else {
      const code = role === "receiver" ? WIRE.WRITE_FAILED : WIRE.READ_FAILED;
      await channel.sendError(code, WIRE_MESSAGES[code]);
    }
    return { error, spokeFerry: channel.peerVersion !== undefined, authenticated };
  } finally {
    channel.close();
  }
}

/** Connections a waiting side serves at once unless told otherwise (`--max-connections`). */
export const DEFAULT_MAX_CONNECTIONS = 64;

/** Options for {@linkcode serveConnections}. */
export interface ServeOptions {
  /**
   * Stop after the first authenticated session (on the tutorial's wire, the first that sent a
   * header): a wrong code or a peer that only knocks does not end a `--once` listener.
   */
  once: boolean;
  /** Connections served at the same time; more are told "busy". @default {DEFAULT_MAX_CONNECTIONS} */
  maxConnections?: number;

  reporter: Reporter;
  /** What the other side is called in messages: "senders" or "receivers". */
  peers: string;
}

/** What a waiting side's session gets besides its link: shared guess count, budget signal. */
export interface PerConnection {
  limiter: AttemptLimiter;
  onAuthenticated: () => void;
}

/**
 * Serves every link from `links` on its own, at the same time: one broken or slow peer never
 * stalls the others. Stops after the first real session with `once`, or when the wrong-guess
 * limit is reached (exit 4). Returns the exit code.
 */
export async function serveConnections(
  links: LinkSource,
  options: ServeOptions,
  serve: (
    conn: Link,
    id: string,
    perConnection: PerConnection,
  ) => Promise<SessionOutcome<{ exitCode: number }>>,
): Promise<number> {
  const limiter = new AttemptLimiter();
  const waiting = new WaitingRoom();
  const active = new Set<Promise<void>>();
  let result: number = EXIT.OK;
  let stopping = false;
  const stop = (exitCode: number) => {
    if (stopping) return;
    stopping = true;
    result = exitCode;
    links.close();
  };
  let count = 0;
  for await (const conn of links) {
    const id = String(++count);
    // Full: make room by dropping the oldest unproven connection of the address that holds the
    // most of them (the newcomer's own first, on a tie).
    if (
      active.size >= (options.maxConnections ?? DEFAULT_MAX_CONNECTIONS) &&
      !waiting.evictFor(conn.address)
    ) {
      refuseBusy(conn);
      continue;
    }
    const proven = waiting.enter(conn);
    options.reporter.connected(conn, id);
    const task: Promise<void> = serve(conn, id, { limiter, onAuthenticated: proven }).then(
      (outcome) => {
        active.delete(task);
        proven();
        if (limiter.exhausted) {
          options.reporter.error(
            `ferry: too many wrong codes; no longer accepting ${options.peers}`,
            EXIT.AUTH,
          );
          stop(EXIT.AUTH);
        } else if (options.once && outcome.authenticated) {
          stop(outcomeExitCode(outcome));
        }
      },
    );
    active.add(task);
  }
  await Promise.all(active);
  return result;
}

/**
 * Connections that have not proved the code yet, by peer address, oldest first. When every
 * slot is taken, the address holding the most of them gives up its oldest: a host that opens
 * connections and never finishes a handshake cannot keep other hosts out, nor the others who
 * share its address.
 */
class WaitingRoom {
  #byAddress = new Map<string, Link[]>();

  /** Adds a link; returns the function that takes it out (proved, or ended), once or more. */
  enter(link: Link): () => void {
    const address = link.address;
    if (address === undefined) return () => {};
    const list = this.#byAddress.get(address) ?? [];
    list.push(link);
    this.#byAddress.set(address, list);
    return () => this.#leave(address, link);
  }

  /**
   * Drops the oldest unproven link of the address that holds the most, `address` (the
   * newcomer's) included and preferred on a tie: a host flooding from the newcomer's own address
   * (a shared host, a NAT) gives up its own oldest, and never another host's. False if no link
   * is unproven.
   */
  evictFor(address: string | undefined): boolean {
    let fullest = address !== undefined && this.#byAddress.has(address) ? address : undefined;
    let most = fullest === undefined ? 0 : this.#byAddress.get(fullest)!.length;
    for (const [other, list] of this.#byAddress) {
      if (list.length > most) [fullest, most] = [other, list.length];
    }
    if (fullest === undefined) return false;
    const oldest = this.#byAddress.get(fullest)![0]!;
    this.#leave(fullest, oldest);
    closeQuietly(oldest);
    return true;
  }

  #leave(address: string, link: Link): void {
    const list = this.#byAddress.get(address);
    const at = list?.indexOf(link) ?? -1;
    if (at < 0) return;
    list!.splice(at, 1);
    if (list!.length === 0) this.#byAddress.delete(address);
  }
}

/** Over --max-connections: say so in protocol terms, then hang up. */
function refuseBusy(conn: Link): void {
  const error = encodeError({ code: WIRE.BUSY, message: "too many connections" });
  const refusal = new Uint8Array([...encodePreamble(), ...encodePlainRecord(FRAME_ERROR, error)]);
  conn.write(refusal).catch(() => {}).finally(() => conn.close());
}
