/**
 * The handshake: preamble, HELLO, SPAKE2 key shares, key confirmation, then sealed frames.
 *
 * Both sides speak first (preamble, HELLO, PAKE) without waiting for each other, so the whole
 * handshake costs about one and a half round trips. Nothing about the files is said until both
 * confirmation MACs have been checked.
 *
 * @module
 */

import { hkdfSync } from "node:crypto";
import {
  decodeHello,
  decodePreamble,
  encodeHello,
  encodePreamble,
  FRAME_CONFIRM,
  FRAME_HELLO,
  FRAME_PAKE,
  PREAMBLE_SIZE,
  ROLE_RECEIVER,
  ROLE_SENDER,
} from "../protocol.ts";
import type { GuessBudget, Way } from "./budget.ts";
import type { Channel } from "./channel.ts";
import { AuthError, ProtocolError } from "./errors.ts";
import { concat, confirmMatches, finishSpake2, startSpake2 } from "./spake2.ts";

/** SPAKE2 identities: they bind the roles, so a sender cannot be reflected back as receiver. */
export const ID_SENDER: Uint8Array = new TextEncoder().encode("ferry sender");
export const ID_RECEIVER: Uint8Array = new TextEncoder().encode("ferry receiver");
const CONFIRM_LABEL = new TextEncoder().encode("ferry/1 hello");
const KEY_INFO_S2R = new TextEncoder().encode("ferry/1 sender to receiver");
const KEY_INFO_R2S = new TextEncoder().encode("ferry/1 receiver to sender");

/**
 * Longest a handshake may take, whatever `--timeout` says: one takes ~25 ms on a LAN and a few
 * round trips anywhere, and until it completes the peer has proved nothing.
 */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** Options for {@linkcode handshake}. */
export interface HandshakeOptions {
  /** Our role. The sender is SPAKE2's A, the receiver B, whoever listens. */
  role: "sender" | "receiver";
  /** Password scalar from {@linkcode passwordScalar}. */
  w: bigint;
  /** Our capability bits. */
  caps: number;
  /**
   * True for the side that came to the waiting side (whoever dialled): it confirms first. The
   * waiting side, which counts wrong guesses, checks that confirmation before revealing its own,
   * so a guess that fails leaves the guesser nothing to test offline.
   */
  confirmFirst: boolean;
  /**
   * The code's wrong-guess budget, shared by every handshake of this run on either side. A
   * guess is spent when the peer could test it and it was wrong: on the waiting side, a
   * confirmation that did not match; on the coming side, ours shown to a peer that did not then
   * prove the code.
   */
  budget?: GuessBudget;
  /** Which way the peer came, for the budget's shares. @default {"direct"} */
  way?: Way;
  /** Milliseconds the peer gets for the whole handshake, at most HANDSHAKE_TIMEOUT_MS. @default {10000} */
  timeoutMs?: number;
  /**
   * Called once if the peer has sent nothing QUIET_PEER_MS after we spoke: a ferry peer answers
   * at once, so it is probably something else on that port (the handshake still waits).
   */
  onQuiet?: () => void;
}

/** How long a peer may stay silent before {@linkcode HandshakeOptions.onQuiet} is called. */
export const QUIET_PEER_MS = 2000;

/** What the handshake learned about the peer. */
export interface Session {
  peerCaps: number;
}

/**
 * Runs the handshake on `channel`; on success the channel is sealed. Throws AuthError (exit 4)
 * on a wrong code, after telling the peer.
 */
export async function handshake(channel: Channel, options: HandshakeOptions): Promise<Session> {
  const timeoutMs = Math.min(options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS);
  channel.setIdleTimeout(timeoutMs);
  // A deadline for the whole handshake, not just each read: a peer that trickles one byte at a
  // time must not hold the connection open.
  const deadline = setTimeout(
    () => channel.expire(`handshake not completed within ${Math.round(timeoutMs / 1000)} s`),
    timeoutMs,
  );
  try {
    return await runHandshake(channel, options);
  } finally {
    clearTimeout(deadline);
  }
}

async function runHandshake(channel: Channel, options: HandshakeOptions): Promise<Session> {
  const isSender = options.role === "sender";
  const myHello = encodeHello({ role: isSender ? ROLE_SENDER : ROLE_RECEIVER, caps: options.caps });
  const spake = await startSpake2(isSender ? "A" : "B", options.w);

  // Say everything we can before hearing from the peer: preamble, hello, key share.
  await channel.writeRaw(encodePreamble());
  await channel.send(FRAME_HELLO, myHello);
  await channel.send(FRAME_PAKE, spake.share);
  // Out now, not when we next wait: finishing SPAKE2 below takes a while, and so does the
  // peer's half, which cannot start before our share arrives. Not awaited: a peer that refuses
  // us (busy) hangs up after its ERROR frame, and that frame, read below, is the better news.
  channel.flush().catch(() => {});

  // The peer must speak our protocol version and take the other role.
  const quiet = options.onQuiet && setTimeout(options.onQuiet, QUIET_PEER_MS);
  try {
    channel.peerVersion = decodePreamble(
      await channel.readExact(PREAMBLE_SIZE, "the protocol preamble"),
    );
  } finally {
    clearTimeout(quiet);
  }
  const peerHelloBytes = (await channel.expect(FRAME_HELLO)).slice();
  const peerHello = decodeHello(peerHelloBytes);
  if (peerHello.role === (isSender ? ROLE_SENDER : ROLE_RECEIVER)) {
    throw new ProtocolError(`Cannot pair: both sides are ${options.role}s`);
  }

  // A guess is taken now and given back below: spent if the peer could test it and it was
  // wrong, unspent if the peer went away before it could.
  const way = options.way ?? "direct";
  await options.budget?.reserve(way);
  const shown = { confirmation: false };
  let wrong = false;
  try {
    const hellos = { myHello, peerHelloBytes, peerHello };
    return await confirmKeys(channel, options, spake, hellos, shown);
  } catch (err) {
    wrong = err instanceof AuthError || shown.confirmation;
    throw err;
  } finally {
    options.budget?.release(way, wrong);
  }
}

async function confirmKeys(
  channel: Channel,
  options: HandshakeOptions,
  spake: Awaited<ReturnType<typeof startSpake2>>,
  hellos: { myHello: Uint8Array; peerHelloBytes: Uint8Array; peerHello: { caps: number } },
  shown: { confirmation: boolean },
): Promise<Session> {
  const isSender = options.role === "sender";
  const { myHello, peerHelloBytes, peerHello } = hellos;
  const peerShare = (await channel.expect(FRAME_PAKE)).slice();

  // Both hellos go into the confirmation keys, so a tampered version or capability fails here.
  const [senderHello, receiverHello] = isSender
    ? [myHello, peerHelloBytes]
    : [peerHelloBytes, myHello];
  const keys = await finishSpake2(spake, peerShare, {
    idA: ID_SENDER,
    idB: ID_RECEIVER,
    aad: concat(CONFIRM_LABEL, senderHello, receiverHello),
  });

  // The coming side confirms first; the waiting side checks before it shows its own. From the
  // moment ours is out, the peer can test its guess with it: until it proves the code, that
  // guess counts as spent.
  if (options.confirmFirst) {
    shown.confirmation = true;
    await channel.send(FRAME_CONFIRM, keys.myConfirm);
  }
  const peerConfirm = await channel.expect(FRAME_CONFIRM);
  if (!confirmMatches(keys.peerConfirm, peerConfirm)) throw new AuthError();
  if (!options.confirmFirst) await channel.send(FRAME_CONFIRM, keys.myConfirm);

  // One key per direction, so a frame can never be reflected back to its sender.
  const s2r = new Uint8Array(hkdfSync("sha256", keys.ke, new Uint8Array(0), KEY_INFO_S2R, 32));
  const r2s = new Uint8Array(hkdfSync("sha256", keys.ke, new Uint8Array(0), KEY_INFO_R2S, 32));
  if (isSender) channel.seal(s2r, r2s);
  else channel.seal(r2s, s2r);
  return { peerCaps: peerHello.caps };
}
