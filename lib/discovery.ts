/**
 * LAN discovery: the waiting side announces on UDP multicast where it listens, under a tag
 * derived from the public part of the code (never the secret part, never a file name); the side
 * that looks for it asks, listens, and dials what it hears. `node:dgram` works in Deno with
 * `--allow-net` alone.
 *
 * Announcements go out every second and at once in answer to a query (at most five a second),
 * with a multicast TTL of 1: they never leave the local network.
 *
 * @module
 */

import dgram from "node:dgram";
import { networkInterfaces } from "node:os";
import {
  decodeDiscovery,
  DISCOVERY_ANNOUNCE,
  DISCOVERY_GROUP,
  DISCOVERY_PORT,
  DISCOVERY_QUERY,
  encodeDiscovery,
  ROLE_RECEIVER,
  ROLE_SENDER,
} from "../protocol.ts";
import { discoveryTag } from "./code_phrase.ts";
import {
  type Finder,
  type Listening,
  type MeetOptions,
  nothingButStop,
  type Waited,
  type Way,
} from "./way.ts";
import {
  closeQuietly,
  dialTcp,
  formatHost,
  isLoopback,
  type Link,
  type LinkSource,
  Queue,
  tcpLink,
} from "./transport.ts";

/** Seconds between announcements, and between queries. */
export const ANNOUNCE_INTERVAL_MS = 1000;
/** Shortest pause between two answers to queries. */
const ANSWER_INTERVAL_MS = 200;
/**
 * Announcers one search dials at most, and ports of one address: anyone on the LAN can copy our
 * tag from a query and announce many ports; each costs a dial and maybe a guess (the guess
 * budget bounds those), and a real waiting side announces one port.
 */
export const MAX_ANNOUNCERS = 16;
const MAX_PORTS_PER_ADDRESS = 4;

/** Where and how discovery runs; tests change the port. */
export interface DiscoveryOptions {
  /** 16-byte tag from `discoveryTag(code)`. */
  tag: Uint8Array;
  /** ANNOUNCE: our role. Looking: the role we look for. */
  role: number;
}

/** Opens the shared UDP socket: bound to the discovery port, in the group on every interface. */
async function openSocket(udpPort: number): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(udpPort, () => {
      socket.off("error", reject);
      resolve();
    });
  });
  socket.setMulticastTTL(1);
  socket.setMulticastLoopback(true);
  let joined = 0;
  for (const address of ipv4Interfaces()) {
    try {
      socket.addMembership(DISCOVERY_GROUP, address);
      joined++;
    } catch {
      // An interface without multicast: the others may do.
    }
  }
  if (joined === 0) socket.addMembership(DISCOVERY_GROUP);
  return socket;
}

/**
 * IPv4 addresses of the interfaces, when we may list them (`--allow-sys`, which the scripts do
 * not ask for); else none, and the system's default multicast route decides (the usual case).
 */
function ipv4Interfaces(): string[] {
  const out: string[] = [];
  const may = Deno.permissions.querySync({ name: "sys", kind: "networkInterfaces" });
  if (may.state !== "granted") return out;
  for (const list of Object.values(networkInterfaces())) {
    for (const info of list ?? []) if (info.family === "IPv4") out.push(info.address);
  }
  return out;
}

/** Sends `packet` to the group from each interface (a multicast goes out of one only). */
function sendToGroup(socket: dgram.Socket, packet: Uint8Array, udpPort: number): void {
  const interfaces = ipv4Interfaces();
  if (interfaces.length === 0) socket.send(packet, udpPort, DISCOVERY_GROUP, () => {});
  for (const address of interfaces) {
    try {
      socket.setMulticastInterface(address);
      socket.send(packet, udpPort, DISCOVERY_GROUP, () => {});
    } catch {
      // This interface cannot send multicast; the others may.
    }
  }
}

/** A running announcer; stop() ends it. */
export interface Announcer {
  stop(): void;
}

/**
 * Announces `port` on the LAN every second, and at once when a matching query arrives. Throws
 * if the UDP socket cannot be opened (the caller warns and goes on without discovery).
 */
export async function announce(port: number, options: DiscoveryOptions): Promise<Announcer> {
  const udpPort = DISCOVERY_PORT;
  const socket = await openSocket(udpPort);
  const packet = encodeDiscovery({
    type: DISCOVERY_ANNOUNCE,
    role: options.role,
    port,
    tag: options.tag,
  });
  let lastAnswer = 0;
  const say = () => sendToGroup(socket, packet, udpPort);
  socket.on("message", (bytes: Uint8Array) => {
    const query = decodeDiscovery(bytes);
    if (query?.type !== DISCOVERY_QUERY || query.role !== options.role) return;
    if (!sameTag(query.tag, options.tag)) return;
    const now = Date.now();
    if (now - lastAnswer < ANSWER_INTERVAL_MS) return;
    lastAnswer = now;
    say();
  });
  say();
  const timer = setInterval(say, ANNOUNCE_INTERVAL_MS);
  return {
    stop: () => {
      clearInterval(timer);
      closeQuietly(socket);
    },
  };
}

function sameTag(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/**
 * Looks for waiting peers with our tag: queries at once and every second, and dials each new
 * address it hears, yielding it as a `lan` link. Runs until close(); a peer that cannot be
 * dialled is passed over (another may answer).
 */
export async function discover(options: DiscoveryOptions): Promise<LinkSource> {
  const udpPort = DISCOVERY_PORT;
  const socket = await openSocket(udpPort);
  const queue = new Queue<Link>(closeQuietly);
  const seen = new Set<string>();
  const perAddress = new Map<string, number>();
  const query = encodeDiscovery({
    type: DISCOVERY_QUERY,
    role: options.role,
    port: 0,
    tag: options.tag,
  });
  let stop: () => void = () => {};
  const running = queue.run(() =>
    new Promise<void>((resolve) => {
      stop = resolve;
    })
  );
  socket.on("message", (bytes: Uint8Array, from: dgram.RemoteInfo) => {
    const found = decodeDiscovery(bytes);
    if (found?.type !== DISCOVERY_ANNOUNCE || found.role !== options.role) return;
    if (!sameTag(found.tag, options.tag)) return;
    const where = formatHost(from.address, found.port);
    if (seen.has(where) || seen.size >= MAX_ANNOUNCERS) return;
    if ((perAddress.get(from.address) ?? 0) >= MAX_PORTS_PER_ADDRESS) return;
    seen.add(where);
    perAddress.set(from.address, (perAddress.get(from.address) ?? 0) + 1);
    queue.run(async () => {
      try {
        const conn = await dialTcp(from.address, found.port);
        queue.push(tcpLink(conn, "lan"));
      } catch {
        // Gone already, or not reachable from here; it may announce again from elsewhere.
        seen.delete(where);
        perAddress.set(from.address, perAddress.get(from.address)! - 1);
      }
    });
  });
  const ask = () => sendToGroup(socket, query, udpPort);
  ask();
  const timer = setInterval(ask, ANNOUNCE_INTERVAL_MS);
  running.finally(() => {
    clearInterval(timer);
    closeQuietly(socket);
  });
  return {
    [Symbol.asyncIterator]: () => queue[Symbol.asyncIterator](),
    close: () => {
      stop();
      queue.close();
    },
  };
}

/**
 * The LAN as a way in. The waiting side announces the port it listens on (not from a loopback
 * address: nobody there could dial it); the coming side, when it has no HOST, looks for it.
 */
export const LAN: Way = {
  async wait(options: MeetOptions, listening: Listening): Promise<Waited | undefined> {
    if (!options.discover || isLoopback(listening.host)) return undefined;
    const tag = discoveryTag(options.code);
    try {
      const announcer = await announce(listening.port, { tag, role: ROLE[options.role] });
      return { links: nothingButStop(() => announcer.stop()), said: "announced on the LAN" };
    } catch (err) {
      options.warn(
        `cannot announce on the LAN (${(err as Error).message}); give peers the address`,
      );
      return undefined;
    }
  },
  find(options: MeetOptions, address?: unknown): Finder | undefined {
    if (!options.discover || address !== undefined) return undefined;
    const role = options.role === "sender" ? ROLE_RECEIVER : ROLE_SENDER;
    return {
      where: "on the LAN",
      path: "lan",
      slow: false,
      hint: ", on this network (or pass its address, or --relay)",
      start: () => discover({ tag: discoveryTag(options.code), role }),
    };
  },
};

const ROLE = { sender: ROLE_SENDER, receiver: ROLE_RECEIVER } as const;
