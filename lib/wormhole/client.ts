/**
 * magic-wormhole's client protocol: two clients meet in a mailbox named by the code's number,
 * run SPAKE2 over the code (phase "pake"), prove the key with an encrypted "version" message,
 * then exchange encrypted application messages in numbered phases "0", "1", … each delivered
 * in order.
 *
 * @module
 */

import { generateWords } from "../code_phrase.ts";
import { AuthError, ProtocolError, UsageError } from "../errors.ts";
import { deriveKey, loadSecretBox, open, phaseKey, seal, wrongCode } from "./crypto.ts";
import { Mailbox } from "./mailbox.ts";
import { startSymmetric } from "./spake2.ts";

/** magic-wormhole's file-transfer app id: `wormhole send` and `wormhole receive` use it. */
export const APP_ID = "lothar.com/wormhole/text-or-file-xfer";
/** The public mailbox server for that app id. */
export const DEFAULT_MAILBOX = "ws://relay.magic-wormhole.io:4000/v1";
/** The public transit relay. */
export const DEFAULT_TRANSIT_RELAY = "tcp:transit.magic-wormhole.io:4001";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** How to open a wormhole. */
export interface OpenOptions {
  mailboxUrl: string;
  /** The code; without one a nameplate is allocated and a code made (see `onCode`). */
  code?: string;
  /** Told the code as soon as it is known, so the user can pass it on. */
  onCode?: (code: string) => void;
  /** How long to wait for the other side at each step. */
  timeoutMs: number;
}

/** Checks a code's shape: `NUMBER-WORDS…`. */
export function checkCode(code: string): string {
  const normal = code.trim().normalize("NFC");
  if (!/^\d+-\S+$/.test(normal)) {
    throw new UsageError("a wormhole code looks like 7-guitarist-revenge (number, dash, words)");
  }
  return normal;
}

/** An open wormhole: the shared key, and encrypted messages in numbered phases. */
export class Wormhole {
  readonly key: Uint8Array;
  #mailbox: Mailbox;
  #side: string;
  #timeoutMs: number;
  #sent = 0;
  #received = 0;
  /** Peer messages that arrived before their turn, by phase number. */
  #early = new Map<number, Uint8Array>();

  private constructor(mailbox: Mailbox, side: string, key: Uint8Array, timeoutMs: number) {
    this.#mailbox = mailbox;
    this.#side = side;
    this.key = key;
    this.#timeoutMs = timeoutMs;
  }

  /** Meets the other side: mailbox, SPAKE2, version messages. A wrong code throws AuthError. */
  static async open(options: OpenOptions): Promise<Wormhole> {
    const side = Buffer.from(crypto.getRandomValues(new Uint8Array(5))).toString("hex");
    const { timeoutMs } = options;
    await loadSecretBox();
    const mailbox = await Mailbox.connect(options.mailboxUrl, APP_ID, side, 10_000);
    try {
      let code = options.code === undefined ? undefined : checkCode(options.code);
      if (code === undefined) {
        code = `${await mailbox.allocate(10_000)}-${generateWords(2).join("-")}`;
      }
      const nameplate = code.slice(0, code.indexOf("-"));
      await mailbox.claimAndOpen(nameplate, 10_000);
      options.onCode?.(code);

      const pake = startSymmetric(encoder.encode(code), encoder.encode(APP_ID));
      const pakeBody = { pake_v1: Buffer.from(pake.message).toString("hex") };
      mailbox.add("pake", encoder.encode(JSON.stringify(pakeBody)));
      const theirPake = await nextPhase(mailbox, "pake", timeoutMs);
      const key = pake.finish(hexField(parseJson(theirPake.body), "pake_v1"));
      const wormhole = new Wormhole(mailbox, side, key, timeoutMs);
      const versions = { app_versions: {} };
      mailbox.add(
        "version",
        seal(phaseKey(key, side, "version"), encoder.encode(JSON.stringify(versions))),
      );
      const theirs = await nextPhase(mailbox, "version", timeoutMs);
      // The first message that opens proves they used the same code.
      open(phaseKey(key, theirs.side, "version"), theirs.body, wrongCode);
      mailbox.release(nameplate);
      return wormhole;
    } catch (err) {
      await mailbox.close(err instanceof AuthError ? "scary" : "errory");
      throw err;
    }
  }

  /** Derives a key for another purpose (the transit key). */
  deriveKey(purpose: string): Uint8Array {
    return deriveKey(this.key, purpose);
  }

  /** Sends an application message (a JSON object) in the next phase. */
  send(message: Record<string, unknown>): void {
    const phase = String(this.#sent++);
    const key = phaseKey(this.key, this.#side, phase);
    this.#mailbox.add(phase, seal(key, encoder.encode(JSON.stringify(message))));
  }

  /** The other side's next application message, in phase order. */
  async receive(what: string): Promise<Record<string, unknown>> {
    for (;;) {
      const early = this.#early.get(this.#received);
      if (early !== undefined) {
        this.#early.delete(this.#received++);
        return parseJson(early);
      }
      const message = await this.#mailbox.next(this.#timeoutMs, what);
      if (!/^\d{1,6}$/.test(message.phase)) continue;
      const number = Number(message.phase);
      if (number < this.#received || this.#early.has(number) || this.#early.size > 64) continue;
      const plain = open(phaseKey(this.key, message.side, message.phase), message.body, wrongCode);
      this.#early.set(number, plain);
    }
  }

  /** Closes the mailbox with a mood: "happy" after a transfer, "errory" after a failure. */
  close(mood: "happy" | "errory" | "scary" | "lonely"): Promise<void> {
    return this.#mailbox.close(mood);
  }
}

async function nextPhase(mailbox: Mailbox, phase: string, timeoutMs: number) {
  for (;;) {
    const message = await mailbox.next(timeoutMs, `waiting for the other side's ${phase}`);
    if (message.phase === phase) return message;
  }
}

function parseJson(body: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(body));
  } catch {
    throw new ProtocolError("the other side sent a message that is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError("the other side sent a message that is not a JSON object");
  }
  return value as Record<string, unknown>;
}

function hexField(message: Record<string, unknown>, field: string): Uint8Array {
  const value = message[field];
  if (typeof value !== "string" || !/^([0-9a-f]{2}){1,64}$/.test(value)) {
    throw new ProtocolError(`the other side's ${field} is missing or not hex`);
  }
  return new Uint8Array(Buffer.from(value, "hex"));
}
