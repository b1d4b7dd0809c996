/**
 * One connection, start to end, for either role: wrap it in a Channel, run the handshake, run
 * the transfer, and on failure tell the peer why before closing. Used the same way whether we
 * listened or connected.
 *
 * @module
 */

import { Channel } from "./channel.ts";
import { COMPRESS_CAPS, type CompressMode } from "./compress.ts";
import { exitCodeOf, FerryError } from "./errors.ts";
import { formatHost } from "./cli.ts";
import { EmptyConnectionError, type LegacyReceiveOptions, receiveLegacy } from "./legacy.ts";
import type { Reader } from "./io.ts";
import { type AttemptLimiter, handshake } from "./handshake.ts";
import type { SourceEntry } from "./manifest.ts";
import { receiveEntries, type ReceiveOptions, type ReceiveSummary } from "./receive.ts";
import type { Reporter } from "./report.ts";
import { sendEntries, type SendSummary } from "./send.ts";

/** What every session needs. */
export interface SessionOptions {
  /** SPAKE2 password scalar, derived once per process from the code phrase. */
  w: bigint;
  reporter: Reporter;
  /** Idle timeout for handshake steps and transfer reads/writes. */
  timeoutMs: number;
  /** Wrong-guess counter shared by all connections of a listener; set only when we listened. */
  limiter?: AttemptLimiter;
  /** True if we opened the connection (we confirm first in the handshake). */
  initiator: boolean;
  /** Called with the error as soon as the session fails, before the peer is told. */
  onError?: (error: unknown) => void;
  /** Label for events from this connection. */
  id: string;
}

/** Result of a session; `spokeFerry` is false if the peer never sent a valid preamble. */
export interface SessionOutcome<T> {
  summary?: T;
  error?: unknown;
  spokeFerry: boolean;
}

/** The exit code a session ended with. */
export function outcomeExitCode(outcome: SessionOutcome<{ exitCode: number }>): number {
  return outcome.error === undefined ? outcome.summary!.exitCode : exitCodeOf(outcome.error);
}

/** `host:port` of the other end of a connection. */
export function peerName(conn: Deno.Conn): string {
  const addr = conn.remoteAddr as Deno.NetAddr;
  return formatHost(addr.hostname, addr.port);
}

/** Runs a `--legacy` receiving session: the tutorial's header, then bytes until close. */
export async function legacySession(
  conn: Deno.Conn,
  options: LegacyReceiveOptions & { onError?: (error: unknown) => void },
): Promise<SessionOutcome<ReceiveSummary>> {
  try {
    return { summary: await receiveLegacy(conn, options), spokeFerry: true };
  } catch (error) {
    options.onError?.(error);
    return { error, spokeFerry: !(error instanceof EmptyConnectionError) };
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** Runs a sender session: handshake, then send `entries`. */
export function sendSession(
  conn: Deno.Conn,
  entries: readonly SourceEntry[],
  options: SessionOptions & { compress: CompressMode; stdin?: Reader },
): Promise<SessionOutcome<SendSummary>> {
  return runSession(conn, "sender", options, async (channel, peerCaps) => {
    const summary = await sendEntries(channel, entries, {
      compress: options.compress,
      peerCaps,
      reporter: options.reporter,
      id: options.id,
      idleTimeoutMs: options.timeoutMs,
      ...(options.stdin ? { stdin: options.stdin } : {}),
    });
    options.reporter.finish(options.id, { ...summary, wireBytes: channel.bytesOut });
    return summary;
  });
}

/** Runs a receiver session: handshake, then receive into `options.dir`. */
export function receiveSession(
  conn: Deno.Conn,
  options: SessionOptions & Omit<ReceiveOptions, "reporter" | "id" | "idleTimeoutMs">,
): Promise<SessionOutcome<ReceiveSummary>> {
  return runSession(conn, "receiver", options, async (channel) => {
    const summary = await receiveEntries(channel, {
      ...options,
      idleTimeoutMs: options.timeoutMs,
    });
    options.reporter.finish(options.id, { ...summary, wireBytes: channel.bytesIn });
    return summary;
  });
}

async function runSession<T>(
  conn: Deno.Conn,
  role: "sender" | "receiver",
  options: SessionOptions,
  transfer: (channel: Channel, peerCaps: number) => Promise<T>,
): Promise<SessionOutcome<T>> {
  const channel = new Channel(conn, { idleTimeoutMs: options.timeoutMs });
  try {
    const session = await handshake(channel, {
      role,
      w: options.w,
      caps: COMPRESS_CAPS,
      initiator: options.initiator,
      timeoutMs: options.timeoutMs,
      ...(options.limiter ? { limiter: options.limiter } : {}),
    });
    const summary = await transfer(channel, session.peerCaps);
    await channel.closeWrite();
    return { summary, spokeFerry: true };
  } catch (error) {
    options.onError?.(error);
    // Tell the peer what went wrong, unless it told us.
    if (error instanceof FerryError && !error.fromPeer) {
      await channel.sendError(error.wireCode, error.message);
    }
    return { error, spokeFerry: channel.peerVersion !== undefined };
  } finally {
    channel.close();
  }
}
