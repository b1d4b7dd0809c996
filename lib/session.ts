/**
 * One connection, start to end, for either role: prove the code on a link ({@linkcode
 * authenticate}), which gives a {@linkcode Pipe}; run the transfer on the pipe; on failure tell
 * the peer why before closing. The same whether we listened, dialled, found the peer on the LAN
 * or met it at a relay: a transfer sees a pipe. The waiting side serves many at once
 * ({@linkcode serveConnections}), each on its own.
 *
 * @module
 */

import { Channel } from "./channel.ts";
import { COMPRESS_CAPS, type CompressMode } from "./compress.ts";
import { EXIT, exitCodeOf, FerryError, WIRE, WIRE_MESSAGES } from "./errors.ts";
import { encodeError, encodePlainRecord, encodePreamble, FRAME_ERROR } from "../protocol.ts";
import { EmptyConnectionError, type LegacyReceiveOptions, receiveLegacy } from "./legacy.ts";
import type { GuessBudget } from "./budget.ts";
import { DEFAULT_IDLE_TIMEOUT_MS } from "./channel.ts";
import { guardLink } from "./deadline.ts";
import { handshake } from "./handshake.ts";
import type { SourceEntry } from "./manifest.ts";
import { closeQuietly, type Link, type LinkSource } from "./transport.ts";
import type { ReceiveSummary } from "./place.ts";
import { receiveEntries, type ReceiveOptions } from "./receive.ts";
import type { Reporter } from "./report.ts";
import { sendEntries, type SendSummary } from "./send.ts";

/**
 * An authenticated connection: the channel, sealed with the session keys, that a transfer runs
 * on, whichever way the peer came. Every read and write on it is under `--timeout` and the
 * minimum rate (lib/channel.ts).
 */
export interface Pipe {
  channel: Channel;
  /** How it reached the peer (for messages and the `connected` event). */
  link: Link;
  /** The codecs the peer can decompress. */
  peerCaps: number;
}

/** What proving the code on a link needs. */
export interface AuthOptions {
  /** SPAKE2 password scalar, derived once per process from the code phrase. */
  w: bigint;
  /** Idle timeout for the handshake's steps (the whole handshake has its own cap). */
  timeoutMs: number;
  /**
   * We are the waiting side: we check the peer's confirmation before showing ours. The side
   * that came to us shows its own first.
   */
  waiting: boolean;
  /** The code's wrong-guess budget, shared by every handshake of this run. */
  budget?: GuessBudget;
  /** Called if a peer we came to says nothing for a while (probably not ferry). */
  onQuiet?: (link: Link) => void;
  /** Called with the error as soon as the handshake fails, before the peer is told. */
  onError?: (error: unknown) => void;
}

/**
 * Proves the code on `link` (lib/handshake.ts) and returns the pipe. On failure the peer is
 * told why (unless it told us), the link is closed, and the error is thrown.
 */
export async function authenticate(
  link: Link,
  role: "sender" | "receiver",
  options: AuthOptions,
): Promise<Pipe> {
  const channel = new Channel(link, { timeoutMs: options.timeoutMs });
  try {
    const session = await handshake(channel, {
      role,
      w: options.w,
      caps: COMPRESS_CAPS,
      confirmFirst: !options.waiting,
      timeoutMs: options.timeoutMs,
      way: link.path,
      ...(options.budget ? { budget: options.budget } : {}),
      ...(options.onQuiet ? { onQuiet: () => options.onQuiet!(link) } : {}),
    });
    return { channel, link, peerCaps: session.peerCaps };
  } catch (error) {
    options.onError?.(error);
    await tellPeer(channel, role, error);
    channel.close();
    throw error;
  }
}

/** What a transfer on a pipe needs besides its own options. */
export interface TransferOptions {
  reporter: Reporter;
  /** Idle timeout for the transfer's reads and writes. */
  timeoutMs: number;
  /** Called with the error as soon as the transfer fails, before the peer is told. */
  onError?: (error: unknown) => void;
  /** Label for events from this connection. */
  id: string;
}

/** Result of a session: `authenticated` once both confirmations were checked. */
export interface SessionOutcome<T> {
  summary?: T;
  error?: unknown;
  authenticated: boolean;
}

/** The exit code a session ended with. */
export function outcomeExitCode(outcome: SessionOutcome<{ exitCode: number }>): number {
  return outcome.error === undefined ? outcome.summary!.exitCode : exitCodeOf(outcome.error);
}

/** The exit code of a transfer we came to; its error is thrown, for the script to say. */
export function finished(outcome: SessionOutcome<{ exitCode: number }>): number {
  if (outcome.error !== undefined) throw outcome.error;
  return outcome.summary!.exitCode;
}

/** Runs a `--legacy` receiving session: the tutorial's header, then bytes until close. */
export async function legacySession(
  conn: Link,
  options: LegacyReceiveOptions & { onError?: (error: unknown) => void },
): Promise<SessionOutcome<ReceiveSummary>> {
  // The tutorial's wire has no code: it gets the same deadlines as every other stack.
  const pipe = guardLink(conn, options.timeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
  try {
    return { summary: await receiveLegacy(pipe, options), authenticated: true };
  } catch (error) {
    options.onError?.(error);
    // Any real header counts as the one transfer of --once; a knock without one does not.
    return { error, authenticated: !(error instanceof EmptyConnectionError) };
  } finally {
    closeQuietly(pipe);
  }
}

/** Sends the entries of `manifest` on an authenticated pipe: offer, then the bytes. */
export function sendOn(
  pipe: Pipe,
  manifest: Iterable<SourceEntry>,
  options: TransferOptions & { compress: CompressMode; hash?: boolean },
): Promise<SessionOutcome<SendSummary>> {
  return transferOn(pipe, "sender", options, async (channel) => {
    const summary = await sendEntries(channel, manifest, { ...options, peerCaps: pipe.peerCaps });
    options.reporter.finish(options.id, { ...summary, wireBytes: channel.bytesOut });
    return summary;
  });
}

/** Receives into `options.dir` on an authenticated pipe. */
export function receiveOn(
  pipe: Pipe,
  options: TransferOptions & Omit<ReceiveOptions, "reporter" | "id" | "timeoutMs">,
): Promise<SessionOutcome<ReceiveSummary>> {
  return transferOn(pipe, "receiver", options, async (channel) => {
    const summary = await receiveEntries(channel, options);
    options.reporter.finish(options.id, { ...summary, wireBytes: channel.bytesIn });
    return summary;
  });
}

/**
 * Runs `transfer` on the pipe; on failure the peer is told why before the pipe closes. The
 * outcome carries the summary or the error (never thrown: a waiting side goes on serving).
 */
async function transferOn<T>(
  pipe: Pipe,
  role: "sender" | "receiver",
  options: TransferOptions,
  transfer: (channel: Channel) => Promise<T>,
): Promise<SessionOutcome<T>> {
  const channel = pipe.channel;
  try {
    const summary = await transfer(channel);
    await channel.closeWrite();
    return { summary, authenticated: true };
  } catch (error) {
    options.reporter.abandon(options.id);
    options.onError?.(error);
    await tellPeer(channel, role, error);
    return { error, authenticated: true };
  } finally {
    channel.close();
  }
}

/**
 * Tells the peer what went wrong, unless it told us. A local failure that is not one of ours
 * (a permission, a disk) is named by its kind only: local paths stay local.
 */
async function tellPeer(channel: Channel, role: "sender" | "receiver", error: unknown) {
  if (error instanceof FerryError) {
    if (!error.fromPeer) await channel.sendError(error.wireCode, error.message);
  } else {
    const code = role === "receiver" ? WIRE.WRITE_FAILED : WIRE.READ_FAILED;
    await channel.sendError(code, WIRE_MESSAGES[code]);
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
  /** The code's wrong-guess budget: when it is spent, the waiting side stops (exit 4). */
  budget: GuessBudget;
}

/** What a waiting side's session gets besides its link. */
export interface PerConnection {
  /** The code's wrong-guess budget, shared by every way in. */
  budget: GuessBudget;
  /** The peer proved the code: it no longer counts as unproven for the slots. */
  onAuthenticated: () => void;
}

/**
 * The waiting side's session on one link: prove the code (we check the peer's confirmation
 * first), then run `transfer` on the pipe. Never throws: the outcome says how it went.
 */
export async function serveSession<T>(
  link: Link,
  role: "sender" | "receiver",
  options: Omit<AuthOptions, "waiting"> & TransferOptions & Partial<PerConnection>,
  transfer: (pipe: Pipe) => Promise<SessionOutcome<T>>,
): Promise<SessionOutcome<T>> {
  let pipe: Pipe;
  try {
    pipe = await authenticate(link, role, { ...options, waiting: true });
  } catch (error) {
    // (Said already, through onError, before the peer was told.)
    options.reporter.abandon(options.id);
    return { error, authenticated: false };
  }
  options.onAuthenticated?.();
  return await transfer(pipe);
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
  const budget = options.budget;
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
      !waiting.evictFor(slotKey(conn))
    ) {
      refuseBusy(conn);
      continue;
    }
    const proven = waiting.enter(conn);
    options.reporter.connected(conn, id);
    const task: Promise<void> = serve(conn, id, { budget, onAuthenticated: proven }).then(
      (outcome) => {
        active.delete(task);
        proven();
        if (budget.exhausted) {
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
 * Connections that have not proved the code yet, by where they came from (the peer's address,
 * or the relay's), oldest first. When every slot is taken, the one holding the most of them
 * gives up its oldest: a host that opens connections and never finishes a handshake cannot keep
 * other hosts out, nor the others who share its address, nor can silent pairings at a relay.
 */
class WaitingRoom {
  #byAddress = new Map<string, Link[]>();

  /** Adds a link; returns the function that takes it out (proved, or ended), once or more. */
  enter(link: Link): () => void {
    const address = slotKey(link);
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
  evictFor(address: string): boolean {
    let fullest = this.#byAddress.has(address) ? address : undefined;
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

/** Where a link counts for the slots: its peer's address, or for a relayed one, the relay. */
function slotKey(link: Link): string {
  return link.address ?? link.peer;
}

/** Over --max-connections: say so in protocol terms, then hang up. */
function refuseBusy(conn: Link): void {
  const error = encodeError({ code: WIRE.BUSY, message: "too many connections" });
  const refusal = new Uint8Array([...encodePreamble(), ...encodePlainRecord(FRAME_ERROR, error)]);
  conn.write(refusal).catch(() => {}).finally(() => conn.close());
}
