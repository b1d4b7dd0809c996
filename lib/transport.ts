/**
 * Transports: how a byte stream to the peer comes to be. Everything above this file (the
 * channel, the handshake, the transfer) sees only a {@linkcode Link}: bytes in, bytes out,
 * close. A link comes from a direct TCP connection (dialled or accepted), from a transit relay
 * (lib/relay.ts), or from a test's pipe; the code above never knows which.
 *
 * @module
 */

import dgram from "node:dgram";
import { ConnectionError } from "./errors.ts";

/** How a link reached the peer, as shown to the user and in `--json`. */
export type LinkPath = "direct" | "lan" | "relay";

/** A byte stream to the peer. Deno's TCP connections have this shape already. */
export interface Link {
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  /** Ends our direction; some links (a relay) cannot, and then this does nothing. */
  closeWrite(): Promise<void>;
  close(): void;
  /** Who is at the other end, for messages: `10.0.0.2:5001` or `relay 10.0.0.9:4001`. */
  readonly peer: string;
  /** The peer's IP address on a direct connection (relayed ones have none of their own). */
  readonly address?: string;
  readonly path: LinkPath;
}

/** What the channel needs of a link: bytes both ways and a way to end them. */
export type ByteStream = Pick<Link, "read" | "write" | "closeWrite" | "close">;

/** Links arriving one after another (accepted, found, paired); `close()` stops them. */
export interface LinkSource extends AsyncIterable<Link> {
  close(): void;
}

/**
 * The address other machines most likely reach us at: the source address of the default route.
 * Listing interfaces needs --allow-sys, which the scripts do not ask for; instead a UDP socket
 * "connected" to a documentation address (no packet is sent) learns which source address the
 * route uses. Undefined when there is no route (or only loopback).
 */
export async function outwardAddress(): Promise<string | undefined> {
  const outward = await new Promise<string | undefined>((resolve) => {
    const socket = dgram.createSocket("udp4");
    const done = (address?: string) => {
      clearTimeout(timer);
      try {
        socket.close();
      } catch {
        // Closed already.
      }
      resolve(address);
    };
    const timer = setTimeout(() => done(), 500);
    socket.on("error", () => done());
    socket.connect(9, "192.0.2.1", () => done(socket.address().address));
  });
  return outward && outward !== "0.0.0.0" && !isLoopback(outward) ? outward : undefined;
}

/**
 * Every address other machines may reach us at, those of a LAN (private ranges) first: this
 * machine's own interface addresses when Deno lets us list them (`--allow-sys=networkInterfaces`,
 * which the shebangs ask for; only asked whether granted, never prompted), else the source address
 * of the default route ({@linkcode outwardAddress}), else none. Loopback and link-local addresses
 * are left out: no other machine can use them.
 */
export async function reachableAddresses(): Promise<string[]> {
  const may = Deno.permissions.querySync({ name: "sys", kind: "networkInterfaces" });
  if (may.state !== "granted") {
    const outward = await outwardAddress();
    return outward ? [outward] : [];
  }
  const found = new Set<string>();
  for (const { address } of Deno.networkInterfaces()) {
    if (isLoopback(address) || /^fe[89ab]/i.test(address)) continue;
    if (address === "0.0.0.0" || address === "::") continue;
    found.add(address);
  }
  const rank = (address: string) =>
    /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(address)
      ? 0
      : address.includes(":")
      ? 2
      : 1;
  return [...found].sort((a, b) => rank(a) - rank(b));
}

/** True for an address only this machine can reach: `localhost`, 127.x, ::1. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host.startsWith("127.") || host === "::1";
}

/** `host:port`, with brackets around IPv6. */
export function formatHost(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Wraps a TCP connection as a link, with Nagle off: the channel batches small frames itself. */
export function tcpLink(conn: Deno.TcpConn, path: LinkPath, peer?: string): Link {
  // Nagle would hold a small write back until the previous one is acknowledged, and the peer
  // may delay that acknowledgement by 40 ms when it has nothing to say.
  conn.setNoDelay(true);
  const addr = conn.remoteAddr as Deno.NetAddr;
  return {
    read: (buffer) => conn.read(buffer),
    write: (bytes) => conn.write(bytes),
    closeWrite: () => conn.closeWrite(),
    close: () => conn.close(),
    peer: peer ?? formatHost(addr.hostname, addr.port),
    ...(path === "relay" ? {} : { address: addr.hostname }),
    path,
  };
}

/** Connects by TCP, turning the runtime's errors into a one-line ConnectionError (exit 3). */
export async function dialTcp(host: string, port: number): Promise<Deno.TcpConn> {
  try {
    return await Deno.connect({ hostname: host, port });
  } catch (err) {
    const why = err instanceof Deno.errors.ConnectionRefused
      ? "connection refused (is the other side running and listening?)"
      : (err as Error).message.replace(/ \(os error \d+\)/, "");
    throw new ConnectionError(`could not connect to ${formatHost(host, port)}: ${why}`);
  }
}

/** How long accepting pauses after a failure such as running out of file descriptors. */
const ACCEPT_RETRY_MS = 100;

/**
 * Every connection a TCP listener accepts, as direct links. A failed accept (out of file
 * descriptors: the kernel keeps the connection queued) is reported once to `warn` and retried
 * after a pause, while the transfers already running go on; only closing the listener ends it.
 */
export function acceptTcp(
  listener: Deno.Listener<Deno.TcpConn>,
  warn: (text: string) => void = () => {},
): LinkSource {
  let closed = false;
  return {
    async *[Symbol.asyncIterator]() {
      let warned = false;
      while (!closed) {
        let conn: Deno.TcpConn;
        try {
          conn = await listener.accept();
        } catch (err) {
          if (closed || err instanceof Deno.errors.BadResource) return;
          if (!warned) warn(`cannot accept a connection now (${(err as Error).message}); retrying`);
          warned = true;
          await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
          continue;
        }
        warned = false;
        yield tcpLink(conn, "direct");
      }
    },
    close: () => {
      closed = true;
      try {
        listener.close();
      } catch {
        // Already closed.
      }
    },
  };
}

/**
 * A queue of items that several producers fill and one consumer drains in order. Iteration
 * ends when every producer added with {@linkcode Queue.run} has finished and nothing is left,
 * or at {@linkcode Queue.close}; items still queued then are handed to `discard`.
 */
export class Queue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #waiting: ((item: IteratorResult<T>) => void) | undefined;
  #producers = 0;
  #closed = false;
  #discard: (item: T) => void;

  constructor(discard: (item: T) => void = () => {}) {
    this.#discard = discard;
  }

  /** Adds an item; after close() it is discarded at once. */
  push(item: T): void {
    if (this.#closed) return this.#discard(item);
    if (this.#waiting) {
      const wake = this.#waiting;
      this.#waiting = undefined;
      wake({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
  }

  /** Runs a producer; the queue stays open at least until it settles (its error is its own). */
  run(producer: () => Promise<void>): Promise<void> {
    this.#producers++;
    return producer().finally(() => {
      this.#producers--;
      this.#wakeIfDone();
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** True while items are queued or a producer may still add some. */
  get open(): boolean {
    return !this.#closed && (this.#items.length > 0 || this.#producers > 0);
  }

  /** Ends iteration; queued and later items are discarded. */
  close(): void {
    this.#closed = true;
    for (const item of this.#items.splice(0)) this.#discard(item);
    this.#wakeIfDone();
  }

  #wakeIfDone(): void {
    if (this.#items.length > 0 || !this.#waiting) return;
    if (!this.#closed && this.#producers > 0) return;
    const wake = this.#waiting;
    this.#waiting = undefined;
    wake({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.#items.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.#closed || this.#producers === 0) {
          return Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve) => this.#waiting = resolve);
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}

/** Closes a link, ignoring that it may be closed already. */
export function closeQuietly(link: { close(): void }): void {
  try {
    link.close();
  } catch {
    // Already closed.
  }
}

/** Links from several sources, in arrival order, as one source; `close()` closes them all. */
export function mergeSources(sources: LinkSource[]): LinkSource {
  const queue = new Queue<Link>(closeQuietly);
  for (const source of sources) {
    queue.run(async () => {
      for await (const link of source) queue.push(link);
    }).catch(() => queue.close());
  }
  return {
    [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator](),
    close: () => {
      for (const source of sources) source.close();
      queue.close();
    },
  };
}
