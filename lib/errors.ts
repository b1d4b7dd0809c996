/**
 * Errors and exit codes: the one place that decides what a failure is called, which exit code
 * it gets, and how it is printed (one line, starting with `ferry:`).
 *
 * @module
 */

/** Exit codes, documented in README.md and in `--help`. */
export const EXIT = {
  OK: 0,
  FAILED: 1,
  USAGE: 2,
  CONNECTION: 3,
  AUTH: 4,
  INTEGRITY: 5,
  REFUSED: 6,
  INTERRUPTED: 130,
} as const;

/** Error codes carried on the wire in ERROR frames and per-file results (see PROTOCOL.md). */
export const WIRE = {
  PROTOCOL: 1,
  VERSION: 2,
  WRONG_CODE: 3,
  TOO_MANY_ATTEMPTS: 4,
  TIMEOUT: 5,
  BUSY: 6,
  INTEGRITY: 7,
  EXISTS: 8,
  BAD_NAME: 9,
  TOO_LARGE: 10,
  NO_SPACE: 11,
  WRITE_FAILED: 12,
  SYMLINK: 13,
  DUPLICATE: 14,
  CANCELLED: 15,
  READ_FAILED: 16,
  ONE_FILE_ONLY: 17,
} as const;

/** A wire error code, one of the values of {@linkcode WIRE}. */
export type WireCode = typeof WIRE[keyof typeof WIRE];

/** The message each wire code stands for, worded for the person at either end. */
export const WIRE_MESSAGES: Record<WireCode, string> = {
  [WIRE.PROTOCOL]: "protocol error",
  [WIRE.VERSION]: "unsupported protocol version",
  [WIRE.WRONG_CODE]: "wrong code",
  [WIRE.TOO_MANY_ATTEMPTS]: "too many wrong codes; the listener stopped accepting guesses",
  [WIRE.TIMEOUT]: "timed out",
  [WIRE.BUSY]: "receiver is busy (too many connections); try again later",
  [WIRE.INTEGRITY]: "integrity check failed",
  [WIRE.EXISTS]: "already exists on the receiver, which can pass --overwrite",
  [WIRE.BAD_NAME]: "unsafe file name",
  [WIRE.TOO_LARGE]: "too large for the receiver's limits (--max-size, --max-files)",
  [WIRE.NO_SPACE]: "receiver has no space left",
  [WIRE.WRITE_FAILED]: "receiver could not write the file",
  [WIRE.SYMLINK]: "path goes through a symlink on the receiver",
  [WIRE.DUPLICATE]: "duplicate entry, or another sender is sending that name now",
  [WIRE.CANCELLED]: "cancelled by the peer",
  [WIRE.READ_FAILED]: "sender could not read the file",
  [WIRE.ONE_FILE_ONLY]: "the receiver writes to standard output and takes exactly one file",
};

/** Base class: a failure with an exit code and, where the peer should hear of it, a wire code. */
export class FerryError extends Error {
  /** Process exit code for this failure. */
  readonly exitCode: number;
  /** Code sent to the peer in an ERROR frame. */
  readonly wireCode: WireCode;
  /** True if the peer reported this error to us (so we do not echo it back). */
  fromPeer = false;
  constructor(message: string, exitCode: number, wireCode: WireCode, options?: ErrorOptions) {
    super(message, options);
    this.name = "FerryError";
    this.exitCode = exitCode;
    this.wireCode = wireCode;
  }
}

/** Bad command line (exit 2). */
export class UsageError extends FerryError {
  constructor(message: string) {
    super(message, EXIT.USAGE, WIRE.PROTOCOL);
    this.name = "UsageError";
  }
}

/** Could not connect, the peer went away, or it stopped answering (exit 3). */
export class ConnectionError extends FerryError {
  constructor(message: string, wireCode: WireCode = WIRE.CANCELLED, options?: ErrorOptions) {
    super(message, EXIT.CONNECTION, wireCode, options);
    this.name = "ConnectionError";
  }
}

/** Wrong code phrase, or too many wrong guesses (exit 4). */
export class AuthError extends FerryError {
  constructor(message = "wrong code", wireCode: WireCode = WIRE.WRONG_CODE) {
    super(message, EXIT.AUTH, wireCode);
    this.name = "AuthError";
  }
}

/** Bytes that do not match what was declared or sealed (exit 5). */
export class IntegrityError extends FerryError {
  constructor(message: string) {
    super(message, EXIT.INTEGRITY, WIRE.INTEGRITY);
    this.name = "IntegrityError";
  }
}

/** The receiver said no: exists, too large, no space, unsafe name (exit 6). */
export class RefusedError extends FerryError {
  constructor(message: string, wireCode: WireCode) {
    super(message, EXIT.REFUSED, wireCode);
    this.name = "RefusedError";
  }
}

/** The peer broke the protocol: garbage, bad lengths, frames out of place (exit 1). */
export class ProtocolError extends FerryError {
  constructor(message: string, wireCode: WireCode = WIRE.PROTOCOL) {
    super(message, EXIT.FAILED, wireCode);
    this.name = "ProtocolError";
  }
}

/** Wire codes that mean the receiver said no (exit 6), as opposed to something failing. */
const REFUSALS: ReadonlySet<number> = new Set([
  WIRE.EXISTS,
  WIRE.BAD_NAME,
  WIRE.TOO_LARGE,
  WIRE.NO_SPACE,
  WIRE.SYMLINK,
  WIRE.DUPLICATE,
  WIRE.BUSY,
  WIRE.ONE_FILE_ONLY,
]);

/** True if `code` is one of the receiver's refusals (exists, unsafe name, too large, ...). */
export function isRefusal(code: number): boolean {
  return REFUSALS.has(code);
}

/** The exit code each wire code leads to (PROTOCOL.md section 8, checked by a test). */
export const EXIT_FOR_WIRE: Record<WireCode, number> = {
  [WIRE.PROTOCOL]: EXIT.FAILED,
  [WIRE.VERSION]: EXIT.FAILED,
  [WIRE.WRONG_CODE]: EXIT.AUTH,
  [WIRE.TOO_MANY_ATTEMPTS]: EXIT.AUTH,
  [WIRE.TIMEOUT]: EXIT.CONNECTION,
  [WIRE.BUSY]: EXIT.REFUSED,
  [WIRE.INTEGRITY]: EXIT.INTEGRITY,
  [WIRE.EXISTS]: EXIT.REFUSED,
  [WIRE.BAD_NAME]: EXIT.REFUSED,
  [WIRE.TOO_LARGE]: EXIT.REFUSED,
  [WIRE.NO_SPACE]: EXIT.REFUSED,
  [WIRE.WRITE_FAILED]: EXIT.FAILED,
  [WIRE.SYMLINK]: EXIT.REFUSED,
  [WIRE.DUPLICATE]: EXIT.REFUSED,
  [WIRE.CANCELLED]: EXIT.CONNECTION,
  [WIRE.READ_FAILED]: EXIT.FAILED,
  [WIRE.ONE_FILE_ONLY]: EXIT.REFUSED,
};

/** The exit code one file's failed RESULT status stands for (section 8's table; else 1). */
export function exitCodeForResult(status: number): number {
  return (EXIT_FOR_WIRE as Record<number, number>)[status] ?? EXIT.FAILED;
}

/**
 * The more serious of two exit codes: integrity beats refusal, refusal beats a peer that went
 * away, and that beats any other failure.
 */
export function worse(a: number, b: number): number {
  const rank = (code: number) =>
    code === EXIT.OK
      ? 0
      : code === EXIT.FAILED
      ? 1
      : code === EXIT.CONNECTION
      ? 2
      : code === EXIT.REFUSED
      ? 3
      : 4;
  return rank(b) > rank(a) ? b : a;
}

/** Turns a wire code and message received from the peer into the matching local error. */
export function errorFromWire(code: number, detail: string): FerryError {
  const err = localErrorFor(code, detail);
  err.fromPeer = true;
  return err;
}

function localErrorFor(code: number, detail: string): FerryError {
  const known = (WIRE_MESSAGES as Record<number, string>)[code];
  const text = known ?? `peer reported error ${code}`;
  // The peer's words, after ours unless they already say the same ("no space left for x").
  const message = !detail || detail === known
    ? text
    : detail.startsWith(text)
    ? detail
    : `${text}: ${detail}`;
  if (isRefusal(code)) return new RefusedError(message, code as WireCode);
  switch (code) {
    case WIRE.WRONG_CODE:
    case WIRE.TOO_MANY_ATTEMPTS:
      return new AuthError(text, code);
    case WIRE.INTEGRITY:
      return new IntegrityError(message);
    case WIRE.TIMEOUT:
    case WIRE.CANCELLED:
      return new ConnectionError(`peer: ${message}`, code);
    default:
      return new ProtocolError(`peer: ${message}`);
  }
}

/** The exit code for any thrown value: ours carry one, anything else is a failed transfer. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof FerryError) return err.exitCode;
  if (err instanceof Deno.errors.ConnectionRefused) return EXIT.CONNECTION;
  if (err instanceof Deno.errors.ConnectionReset) return EXIT.CONNECTION;
  if (err instanceof Deno.errors.BrokenPipe) return EXIT.CONNECTION;
  return EXIT.FAILED;
}

/**
 * Makes text safe for a terminal: control characters (ANSI escapes, newlines, bidi overrides)
 * are shown as `\xNN` / `\u{NNNN}` instead of being interpreted.
 *
 * @example Escape a hostile file name
 * ```ts
 * import { deepStrictEqual as assertEquals } from "node:assert/strict";
 * assertEquals(escapeForTerminal("a\x1b[2Jb"), "a\\x1b[2Jb");
 * ```
 */
export function escapeForTerminal(text: string): string {
  let out = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
      out += `\\x${cp.toString(16).padStart(2, "0")}`;
    } else if (isInvisibleFormatChar(cp)) {
      out += `\\u{${cp.toString(16)}}`;
    } else {
      out += ch;
    }
  }
  return out;
}

/**
 * Characters that show as nothing, or move text around: format characters (bidi overrides and
 * isolates, zero-width joiners, the soft hyphen, tag characters), line and paragraph separators,
 * and every default-ignorable code point (fillers such as U+3164). They make one name display as
 * another. Variation selectors too (U+FE00-FE0F, U+E0100-E01EF): after a plain letter they show
 * as nothing, so `a\u{FE0F}.txt` looks like `a.txt`; an emoji name with one is refused with them.
 */
const INVISIBLE = /[\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/u;

/** True if `text` holds a character that shows as nothing or reorders text (see INVISIBLE). */
export function hasInvisibleChar(text: string): boolean {
  return INVISIBLE.test(text);
}

/** True if the code point `cp` shows as nothing or reorders text. */
export function isInvisibleFormatChar(cp: number): boolean {
  return INVISIBLE.test(String.fromCodePoint(cp));
}

/**
 * One line for the user: `ferry: what happened`. Never a stack trace (unless FERRY_DEBUG=1),
 * never a secret: every string in `secrets` is blanked out.
 */
export function formatError(err: unknown, secrets: readonly string[] = []): string {
  let text: string;
  if (err instanceof FerryError) text = err.message;
  else if (err instanceof Deno.errors.ConnectionRefused) {
    text = "could not connect: connection refused (is the other side running?)";
  } else if (err instanceof Deno.errors.NotFound) text = `not found: ${stripErrno(err.message)}`;
  else if (err instanceof Deno.errors.PermissionDenied) {
    text = `permission denied: ${stripErrno(err.message)}`;
  } else if (
    err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError
  ) {
    // Not something the peer or the machine did: a bug in ferry. Say so.
    text =
      `internal error: ${err.message} (please report it; FERRY_DEBUG=1 with --allow-env=FERRY_DEBUG shows where)`;
  } else if (err instanceof Error) text = stripErrno(err.message);
  else text = String(err);
  for (const secret of secrets) {
    if (secret) text = text.replaceAll(secret, "[code]");
  }
  return `ferry: ${escapeForTerminal(text.split("\n")[0] ?? "")}`;
}

function stripErrno(message: string): string {
  return message.replace(/ \(os error \d+\)/, "");
}
