/**
 * A magic-wormhole mailbox server connection (its server-protocol): JSON messages over a
 * WebSocket. We `bind` an app id and side, `allocate` or `claim` a nameplate to learn the
 * mailbox, `open` it, `add` messages to it and hear every `message` added by either side.
 *
 * Everything the server says is checked for shape; it cannot make us write anything, only pass
 * opaque bodies that the layer above decrypts.
 *
 * @module
 */

import { ConnectionError, ProtocolError } from "../errors.ts";

/** A message from the mailbox: who added it, its phase, its body. */
export interface MailboxMessage {
  side: string;
  phase: string;
  body: Uint8Array;
}

/** Longest message we accept from the server (bodies are small JSON documents). */
const MAX_SERVER_MESSAGE = 1024 * 1024;

/** One WebSocket to a mailbox server, bound to an app id and our side. */
export class Mailbox {
  #socket: WebSocket;
  #side: string;
  #url: string;
  /** Replies we wait for, by type ("allocated", "claimed", "released", "closed"). */
  #waiting = new Map<string, { resolve: (m: Record<string, unknown>) => void }>();
  #messages: MailboxMessage[] = [];
  #onMessage: (() => void) | undefined;
  #failure: Error | undefined;

  private constructor(socket: WebSocket, url: string, side: string) {
    this.#socket = socket;
    this.#url = url;
    this.#side = side;
  }

  /** Connects, waits for the server's welcome, and binds `appid` and `side`. */
  static async connect(url: string, appid: string, side: string, timeoutMs: number) {
    let socket: WebSocket;
    try {
      socket = new WebSocket(url);
    } catch (err) {
      throw new ConnectionError(
        `--mailbox ${url} is not a WebSocket URL (ws://HOST:PORT/v1)`,
        undefined,
        {
          cause: err,
        },
      );
    }
    const mailbox = new Mailbox(socket, url, side);
    const welcome = mailbox.#reply("welcome", timeoutMs);
    socket.onmessage = (event) => mailbox.#receive(event.data);
    socket.onerror = () =>
      mailbox.#fail(new ConnectionError(`cannot reach the mailbox server ${url}`));
    socket.onclose = () =>
      mailbox.#fail(new ConnectionError(`the mailbox server ${url} closed the connection`));
    const hello = await welcome;
    const words = hello.welcome as Record<string, unknown> | undefined;
    if (typeof words?.error === "string") {
      mailbox.close();
      throw new ConnectionError(`the mailbox server refused us: ${words.error.slice(0, 200)}`);
    }
    mailbox.#send({ type: "bind", appid, side });
    return mailbox;
  }

  /** Asks for a fresh nameplate (the number at the front of a code). */
  async allocate(timeoutMs: number): Promise<string> {
    const reply = this.#reply("allocated", timeoutMs);
    this.#send({ type: "allocate" });
    return stringField(await reply, "nameplate");
  }

  /** Claims `nameplate` and opens its mailbox. */
  async claimAndOpen(nameplate: string, timeoutMs: number): Promise<void> {
    const reply = this.#reply("claimed", timeoutMs);
    this.#send({ type: "claim", nameplate });
    const mailbox = stringField(await reply, "mailbox");
    this.#send({ type: "open", mailbox });
  }

  /** Gives the nameplate back, so that its number can be used again. */
  release(nameplate: string): void {
    this.#send({ type: "release", nameplate });
  }

  /** Adds a message to the open mailbox. */
  add(phase: string, body: Uint8Array): void {
    this.#send({ type: "add", phase, body: Buffer.from(body).toString("hex") });
  }

  /** The next message the other side added (our own echoes are passed over). */
  async next(timeoutMs: number, what: string): Promise<MailboxMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.#messages.length === 0) {
      if (this.#failure) throw this.#failure;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new ConnectionError(
          `no answer from the other side within ${Math.round(timeoutMs / 1000)} s (${what})`,
        );
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#onMessage = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#onMessage = undefined;
    }
    return this.#messages.shift()!;
  }

  /** Closes the mailbox with a mood ("happy", "lonely", "scary", "errory"), then the socket. */
  async close(mood?: string): Promise<void> {
    if (mood !== undefined && this.#socket.readyState === WebSocket.OPEN) {
      const closed = this.#reply("closed", 2000).catch(() => {});
      this.#send({ type: "close", mood });
      await closed;
    }
    this.#failure ??= new ConnectionError("mailbox closed");
    this.#socket.onclose = null;
    this.#socket.onerror = null;
    if (this.#socket.readyState !== WebSocket.CLOSED) this.#socket.close();
    for (const waiter of this.#waiting.values()) waiter.resolve({});
    this.#waiting.clear();
  }

  #send(message: Record<string, unknown>): void {
    if (this.#socket.readyState !== WebSocket.OPEN) {
      throw this.#failure ??
        new ConnectionError(`the mailbox server ${this.#url} is not connected`);
    }
    const id = crypto.getRandomValues(new Uint8Array(2));
    this.#socket.send(JSON.stringify({ ...message, id: Buffer.from(id).toString("hex") }));
  }

  /** A promise for the next server message of `type`; a failure or timeout rejects it. */
  #reply(type: string, timeoutMs: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(type);
        reject(new ConnectionError(`the mailbox server ${this.#url} did not answer (${type})`));
      }, timeoutMs);
      this.#waiting.set(type, {
        resolve: (message) => {
          clearTimeout(timer);
          if (this.#failure && Object.keys(message).length === 0) reject(this.#failure);
          else resolve(message);
        },
      });
    });
  }

  #receive(data: unknown): void {
    let message: Record<string, unknown>;
    try {
      if (typeof data !== "string" || data.length > MAX_SERVER_MESSAGE) throw new Error();
      message = JSON.parse(data);
      if (typeof message !== "object" || message === null) throw new Error();
    } catch {
      return this.#fail(
        new ProtocolError("the mailbox server sent something that is not a message"),
      );
    }
    const type = message.type;
    if (type === "error") {
      return this.#fail(
        new ConnectionError(`the mailbox server said: ${String(message.error).slice(0, 200)}`),
      );
    }
    if (type === "message") {
      const side = message.side, phase = message.phase, body = message.body;
      if (typeof side !== "string" || typeof phase !== "string" || typeof body !== "string") return;
      if (side === this.#side || !/^([0-9a-f]{2})*$/.test(body)) return;
      this.#messages.push({ side, phase, body: new Uint8Array(Buffer.from(body, "hex")) });
      this.#onMessage?.();
      return;
    }
    if (typeof type === "string") {
      const waiter = this.#waiting.get(type);
      this.#waiting.delete(type);
      waiter?.resolve(message);
    }
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const waiter of this.#waiting.values()) waiter.resolve({});
    this.#waiting.clear();
    this.#onMessage?.();
  }
}

function stringField(message: Record<string, unknown>, field: string): string {
  const value = message[field];
  if (typeof value !== "string" || value.length === 0 || value.length > 200) {
    throw new ProtocolError(`the mailbox server's answer has no ${field}`);
  }
  return value;
}
