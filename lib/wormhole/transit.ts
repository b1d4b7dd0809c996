/**
 * magic-wormhole's Transit: the bulk-data connection. Each side lists "hints" (addresses it
 * listens on, relays it can meet at); the sender-side and receiver-side try every hint at once,
 * relays 2 s after direct ones, and keep the first connection whose handshake proves the key:
 *
 * ```
 * (relay only) -> please relay HEX(derive(tk, "transit_relay_token")) for side SIDE\n  <- ok\n
 * sender   -> transit sender HEX(derive(tk, "transit_sender")) ready\n\n
 * receiver -> transit receiver HEX(derive(tk, "transit_receiver")) ready\n\n
 * sender   -> go\n            (on the winner; nevermind\n on the others)
 * ```
 *
 * Then records both ways: a 4-byte big-endian length, a 24-byte big-endian counter nonce
 * (from 0, per direction), and the SecretBox of the record under the direction's key.
 *
 * @module
 */

import { ConnectionError, IntegrityError, ProtocolError } from "../errors.ts";
import { readFull, writeAll } from "../io.ts";
import { guardLink } from "../deadline.ts";
import { Race } from "../race.ts";
import { pairAtRelay, type RelayAddress } from "../relay.ts";
import {
  acceptTcp,
  closeQuietly,
  dialTcp,
  type Link,
  reachableAddresses,
  tcpLink,
} from "../transport.ts";
import { deriveKey, NONCE_BYTES, secretBox, secretBoxOpen } from "./crypto.ts";

/** How long relays wait while direct hints are still being tried (at once when none are left). */
const RELAY_DELAY_MS = 500;
/** Largest record we accept: the Python client sends 16 KiB, we send 64 KiB. */
export const MAX_RECORD = 4 * 1024 * 1024;
/** Hints we read at most, however many the peer lists. */
const MAX_HINTS = 16;
/** Direct addresses we dial at most, and relays we try at most (ours first). */
const MAX_DIRECT = 8;
const MAX_RELAYS = 3;

/** A TCP address from a hint. */
interface Address {
  hostname: string;
  port: number;
}

/** What one side sends in its `transit` message. */
export interface TransitMessage {
  "abilities-v1": { type: string }[];
  "hints-v1": Record<string, unknown>[];
}

/** Options for {@linkcode Transit.start}. */
export interface TransitOptions {
  role: "sender" | "receiver";
  /** The transit key: the wormhole key derived for `APP_ID + "/transit-key"`. */
  key: Uint8Array;
  relay?: RelayAddress;
  /** Listen for the peer's direct connection (off: only dial out). */
  listen: boolean;
  timeoutMs: number;
}

const encoder = new TextEncoder();

/** One side's Transit, from listening to the winning connection. */
export class Transit {
  #options: TransitOptions;
  #listener: Deno.TcpListener | undefined;
  #side = Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString("hex");

  private constructor(options: TransitOptions, listener?: Deno.TcpListener) {
    this.#options = options;
    this.#listener = listener;
  }

  /** Starts listening (if asked to) on every address, any free port. */
  static start(options: TransitOptions): Transit {
    const listener = options.listen ? Deno.listen({ hostname: "0.0.0.0", port: 0 }) : undefined;
    return new Transit(options, listener);
  }

  /** Our abilities and hints, for the `transit` message. */
  async message(): Promise<TransitMessage> {
    const hints: Record<string, unknown>[] = [];
    if (this.#listener) {
      const port = (this.#listener.addr as Deno.NetAddr).port;
      for (const hostname of await localAddresses()) {
        hints.push({ type: "direct-tcp-v1", priority: 0.0, hostname, port });
      }
    }
    if (this.#options.relay) {
      const { host, port } = this.#options.relay;
      hints.push({
        type: "relay-v1",
        hints: [{ type: "direct-tcp-v1", priority: 0.0, hostname: host, port }],
      });
    }
    return {
      "abilities-v1": [{ type: "direct-tcp-v1" }, { type: "relay-v1" }],
      "hints-v1": hints,
    };
  }

  /**
   * Connects using the peer's transit message: dials its direct hints and accepts on our
   * listener at once, tries the relays half a second later (at once when nothing else is left
   * to try), and returns the first connection whose handshake proves the key ({@linkcode
   * Race}). Every other attempt is closed. The pipe's reads and writes are under the timeout
   * and minimum rate, as ferry's own are.
   */
  async connect(theirs: unknown): Promise<RecordPipe> {
    const { direct, relays } = parseHints(theirs);
    if (this.#options.relay) {
      relays.unshift({ hostname: this.#options.relay.host, port: this.#options.relay.port });
    }
    const lines = this.#handshakes();
    let dialling = direct.length;
    const race: Race<Link> = new Race((link) => this.#prove(link, lines, race), {
      onIdle: () => dialling === 0 && startRelays(),
    });
    let relaysStarted = false;
    const startRelays = () => {
      if (relaysStarted || race.settled) return;
      relaysStarted = true;
      for (const relay of unique(relays).slice(0, MAX_RELAYS)) this.#viaRelay(relay, race);
    };
    for (const hint of direct) {
      dialTcp(hint.hostname, hint.port)
        .then((conn) => race.enter(tcpLink(conn, "direct")), () => {})
        .finally(() => {
          // Every direct hint is dialled (or failed) and nothing is being proved: the relay
          // need not wait.
          if (--dialling === 0 && race.pending === 0) startRelays();
        });
    }
    if (this.#listener) this.#acceptInto(this.#listener, race);
    const relayTimer = setTimeout(startRelays, direct.length > 0 ? RELAY_DELAY_MS : 0);
    const deadline = setTimeout(() => race.cancel(), this.#options.timeoutMs);
    try {
      const link = await race.winner();
      if (link === undefined) {
        throw new ConnectionError(
          "could not connect to the other side, directly or through a relay (try --relay)",
        );
      }
      if (this.#options.role === "sender") await writeAll(link, encoder.encode("go\n"));
      return this.#pipe(guardLink(link, this.#options.timeoutMs));
    } finally {
      clearTimeout(relayTimer);
      clearTimeout(deadline);
      this.close();
    }
  }

  /** The record pipe over the winning link, with this side's keys. */
  #pipe(link: Link): RecordPipe {
    const [mine, peer] = this.#options.role === "sender"
      ? ["transit_record_sender_key", "transit_record_receiver_key"]
      : ["transit_record_receiver_key", "transit_record_sender_key"];
    return new RecordPipe(
      link,
      deriveKey(this.#options.key, mine),
      deriveKey(this.#options.key, peer),
    );
  }

  /** Every connection to our listener joins the race. */
  #acceptInto(listener: Deno.TcpListener, race: Race<Link>): void {
    (async () => {
      for await (const link of acceptTcp(listener)) race.enter(link);
    })().catch(() => {});
  }

  /** One pairing at `relay` joins the race. */
  #viaRelay(relay: Address, race: Race<Link>): void {
    const address = { host: relay.hostname, port: relay.port };
    const token = Buffer.from(deriveKey(this.#options.key, "transit_relay_token")).toString("hex");
    dialTcp(relay.hostname, relay.port)
      .then((conn) => pairAtRelay(conn, address, { token, side: this.#side }))
      .then((link) => race.enter(link), () => {});
  }

  /**
   * Transit's handshake on one link: each side sends its line and checks the other's. The
   * sender picks the winner (and says "go" on it); a receiver's link is proved once the sender
   * said "go" on it.
   */
  async #prove(
    link: Link,
    lines: { send: Uint8Array; expect: Uint8Array },
    race: Race<Link>,
  ): Promise<{ value: Link; discard(): void }> {
    await writeAll(link, lines.send);
    const got = new Uint8Array(lines.expect.length);
    if (await readFull(link, got) !== got.length || !Buffer.from(got).equals(lines.expect)) {
      throw new ProtocolError("transit handshake mismatch");
    }
    if (this.#options.role === "sender" && race.settled) {
      await writeAll(link, encoder.encode("nevermind\n"));
      throw new ConnectionError("another connection won");
    }
    if (this.#options.role === "receiver") {
      const go = new Uint8Array(3);
      if (await readFull(link, go) !== 3 || new TextDecoder().decode(go) !== "go\n") {
        throw new ConnectionError("the sender chose another connection");
      }
    }
    return { value: link, discard: () => closeQuietly(link) };
  }

  /** Stops listening. */
  close(): void {
    if (this.#listener) closeQuietly(this.#listener);
    this.#listener = undefined;
  }

  #handshakes(): { send: Uint8Array; expect: Uint8Array } {
    const line = (who: string) =>
      encoder.encode(
        `transit ${who} ${
          Buffer.from(deriveKey(this.#options.key, `transit_${who}`)).toString("hex")
        } ready\n\n`,
      );
    const sender = line("sender"), receiver = line("receiver");
    return this.#options.role === "sender"
      ? { send: sender, expect: receiver }
      : { send: receiver, expect: sender };
  }
}

/** The peer's direct and relay addresses, bounded in number and checked for shape. */
export function parseHints(message: unknown): { direct: Address[]; relays: Address[] } {
  const direct: Address[] = [];
  const relays: Address[] = [];
  const hints = (message as Record<string, unknown> | undefined)?.["hints-v1"];
  if (!Array.isArray(hints)) return { direct, relays };
  for (const hint of hints.slice(0, MAX_HINTS)) {
    if (typeof hint !== "object" || hint === null) continue;
    const { type } = hint as { type?: unknown };
    if (type === "direct-tcp-v1") {
      const address = parseAddress(hint);
      if (address) direct.push(address);
    } else if (type === "relay-v1") {
      const inner = (hint as { hints?: unknown }).hints;
      if (!Array.isArray(inner)) continue;
      for (const one of inner.slice(0, MAX_HINTS)) {
        const address = parseAddress(one);
        if (address) relays.push(address);
      }
    }
  }
  // However many the peer lists: a few addresses, each once (ours are added to the relays).
  return {
    direct: unique(direct).slice(0, MAX_DIRECT),
    relays: unique(relays).slice(0, MAX_RELAYS),
  };
}

/**
 * One hint's address, if a peer could mean it: a host name or a unicast address, never the
 * unspecified address, a multicast or broadcast one.
 */
function parseAddress(hint: unknown): Address | undefined {
  const { hostname, port } = (hint ?? {}) as { hostname?: unknown; port?: unknown };
  if (typeof hostname !== "string" || !/^[A-Za-z0-9.:_-]{1,253}$/.test(hostname)) return undefined;
  if (/^(0\.|22[4-9]\.|2[3-5]\d\.)|^::$|^ff[0-9a-f]{2}:/i.test(hostname)) return undefined;
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    return undefined;
  }
  return { hostname, port };
}

function unique(addresses: Address[]): Address[] {
  const seen = new Set<string>();
  return addresses.filter((a) => {
    const key = `${a.hostname}:${a.port}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
}

/** Our addresses for direct hints: those a peer could use, and loopback for one machine. */
async function localAddresses(): Promise<string[]> {
  return [...(await reachableAddresses()).slice(0, 4), "127.0.0.1"];
}

/** Bytes the record pipe asks the connection for at once: many records a read. */
const READ_BYTES = 1024 * 1024;

/** The record pipe over the winning connection: sealed records with counter nonces. */
export class RecordPipe {
  #link: Link;
  #sendKey: Uint8Array;
  #receiveKey: Uint8Array;
  #sendCounter = 0n;
  #receiveCounter = 0n;
  /** Bytes read but not yet taken: `#in[#start, #end)`. */
  #in = new Uint8Array(READ_BYTES);
  #start = 0;
  #end = 0;

  constructor(link: Link, sendKey: Uint8Array, receiveKey: Uint8Array) {
    this.#link = link;
    this.#sendKey = sendKey;
    this.#receiveKey = receiveKey;
  }

  /** How the pipe was made: "direct" or "relay". */
  get path(): string {
    return this.#link.path;
  }

  /** Seals and sends one record. */
  async send(record: Uint8Array): Promise<void> {
    const nonce = counterNonce(this.#sendCounter++);
    const box = secretBox(this.#sendKey, nonce, record);
    const frame = new Uint8Array(4 + NONCE_BYTES + box.length);
    new DataView(frame.buffer).setUint32(0, NONCE_BYTES + box.length);
    frame.set(nonce, 4);
    frame.set(box, 4 + NONCE_BYTES);
    await writeAll(this.#link, frame);
  }

  /** The next record, opened and checked; null if the peer closed between records. */
  async receive(): Promise<Uint8Array | null> {
    if (!await this.#fill(4)) return null;
    const length = new DataView(this.#in.buffer, this.#start).getUint32(0);
    if (length < NONCE_BYTES + 16 || length > MAX_RECORD + NONCE_BYTES + 16) {
      throw new ProtocolError(`a transit record of ${length} bytes is out of bounds`);
    }
    if (!await this.#fill(4 + length)) {
      throw new ConnectionError("the other side went away in the middle of a record");
    }
    const body = this.#in.subarray(this.#start + 4, this.#start + 4 + length);
    this.#start += 4 + length;
    const nonce = body.subarray(0, NONCE_BYTES);
    if (!Buffer.from(nonce).equals(counterNonce(this.#receiveCounter++))) {
      throw new IntegrityError("a transit record arrived out of order (replayed or dropped)");
    }
    try {
      return secretBoxOpen(this.#receiveKey, nonce, body.subarray(NONCE_BYTES));
    } catch {
      throw new IntegrityError("a transit record failed its authentication (corrupted or forged)");
    }
  }

  /**
   * Reads until `n` bytes are buffered. False if the peer closed first: cleanly between records
   * (nothing buffered) or not; the caller tells which from what it asked for.
   */
  async #fill(n: number): Promise<boolean> {
    if (this.#end - this.#start >= n) return true;
    if (this.#in.length < n) {
      // A record larger than the buffer (at most MAX_RECORD and its overhead): grow once.
      const bigger = new Uint8Array(n + READ_BYTES);
      bigger.set(this.#in.subarray(this.#start, this.#end));
      this.#in = bigger;
    } else this.#in.copyWithin(0, this.#start, this.#end);
    this.#end -= this.#start;
    this.#start = 0;
    while (this.#end < n) {
      const got = await this.#link.read(this.#in.subarray(this.#end));
      if (got === null) {
        if (this.#end > 0 && n === 4) {
          throw new ConnectionError("the other side went away in the middle of a record");
        }
        return false;
      }
      this.#end += got;
    }
    return true;
  }

  close(): void {
    closeQuietly(this.#link);
  }
}

function counterNonce(counter: bigint): Uint8Array {
  const nonce = new Uint8Array(NONCE_BYTES);
  new DataView(nonce.buffer).setBigUint64(NONCE_BYTES - 8, counter);
  return nonce;
}
