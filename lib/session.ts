/**
 * One connection, start to end, for either role: prove the code on a link ({@linkcode
 * authenticate}), which gives a {@linkcode Pipe}; run the transfer on the pipe; on failure tell
 * the peer why before closing. The same whether we listened, dialled, found the peer on the LAN
 * or met it at a relay: a transfer sees a pipe. The waiting side serves many at once, each on
 * its own (lib/serve.ts).
 *
 * @module
 */

import { Channel } from "./channel.ts";
import { COMPRESS_CAPS, type CompressMode } from "./compress.ts";
import { exitCodeOf, FerryError, WIRE, WIRE_MESSAGES } from "./errors.ts";
import { EmptyConnectionError, type LegacyReceiveOptions, receiveLegacy } from "./legacy.ts";
import type { GuessBudget } from "./budget.ts";
import { DEFAULT_IDLE_TIMEOUT_MS } from "./channel.ts";
import { guardLink } from "./deadline.ts";
import { handshake } from "./handshake.ts";
import type { SourceEntry } from "./manifest.ts";
import { closeQuietly, type Link } from "./transport.ts";
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
