/**
 * The waiting side: every link that arrives, by any way, served on its own and at the same
 * time, within `--max-connections` slots that no one who has not proved the code can hold
 * against a newcomer; {@linkcode accept} gives the peers that proved the code as pipes, the
 * tutorial's `for await (const conn of server)`.
 *
 * @module
 */

import type { GuessBudget } from "./budget.ts";
import { EXIT, WIRE } from "./errors.ts";
import { encodeError, encodePlainRecord, encodePreamble, FRAME_ERROR } from "../protocol.ts";
import type { Reporter } from "./report.ts";
import {
  authenticate,
  type AuthOptions,
  outcomeExitCode,
  type Pipe,
  type SessionOutcome,
  type TransferOptions,
} from "./session.ts";
import { closeQuietly, type Link, type LinkSource, Queue } from "./transport.ts";

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
  /** The peer proved the code: it no longer counts as unproven for the slots. */
  onAuthenticated: () => void;
}

/**
 * The waiting side's session on one link: prove the code (we check the peer's confirmation
 * first), then run `transfer` on the pipe. Never throws: the outcome says how it went.
 */
async function serveSession<T>(
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
    const task: Promise<void> = serve(conn, id, { onAuthenticated: proven }).then(
      (outcome) => {
        active.delete(task);
        proven();
        if (options.budget.exhausted) {
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

/** A peer that proved the code, as {@linkcode accept} yields it. */
export interface Accepted {
  pipe: Pipe;
  /** Label for events from this connection. */
  id: string;
  /** Runs the transfer: it holds this peer's slot until it ends (and, with once, ends the loop). */
  serve(transfer: Promise<SessionOutcome<{ exitCode: number }>>): void;
}

/** What {@linkcode accept} needs: how to serve, how to prove the code, what to say on failure. */
export interface AcceptOptions extends ServeOptions {
  role: "sender" | "receiver";
  w: bigint;
  timeoutMs: number;
  /** Told of a peer whose handshake failed (the waiting side says each failure itself). */
  onError: (error: unknown) => void;
}

/**
 * The waiting side as the tutorial has it, `for await (const conn of server)`: every peer that
 * arrives by any way, once it has proved the code, as a pipe to run a transfer on. Handshakes
 * run side by side, each against the code's guess budget, and a peer that fails one never
 * reaches the loop. The loop ends when the waiting ends (`once`, or the budget spent);
 * `finished` then gives the exit code.
 *
 * @example
 * ```ts ignore
 * const senders = accept(waiting.links, options);
 * for await (const sender of senders) sender.serve(receiveOn(sender.pipe, { ...target, id: sender.id }));
 * return await senders.finished;
 * ```
 */
export function accept(
  links: LinkSource,
  options: AcceptOptions,
): AsyncIterable<Accepted> & { finished: Promise<number> } {
  const queue = new Queue<Accepted>((accepted) => accepted.pipe.channel.close());
  const finished = serveConnections(links, options, (link, id, perConnection) =>
    serveSession(
      link,
      options.role,
      { ...options, id, ...perConnection },
      (pipe) => {
        const outcome = Promise.withResolvers<SessionOutcome<{ exitCode: number }>>();
        queue.push({ pipe, id, serve: (transfer) => transfer.then(outcome.resolve) });
        return outcome.promise;
      },
    ));
  // The loop goes on while the waiting does.
  queue.run(() => finished.then(() => {}, () => {}));
  return { [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator](), finished };
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
