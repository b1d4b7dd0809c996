/**
 * The command lines of sender.ts and receiver.ts: flags, help texts, addresses, the code
 * phrase's source, and the one place that turns a thrown error into a line and an exit code.
 *
 * Why over 400 lines: a table per script defines each flag once (parser type, help line and
 * default as shown), and the two help texts are built from them; the typed settings each parser
 * returns are still assembled by hand below.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { DEFAULT_PORT } from "../protocol.ts";
import { DEFAULT_IDLE_TIMEOUT_MS } from "./channel.ts";
import { COMPRESS_MODES, type CompressMode } from "./compress.ts";
import { EXIT, exitCodeOf, formatError, UsageError } from "./errors.ts";
import { flushOutput, writeOut } from "./io.ts";
import { DEFAULT_MAX_FILES } from "./plan.ts";
import { parseRelay, type RelayAddress } from "./relay.ts";

/** Exit codes as printed in --help and README.md. */
export const EXIT_CODES_HELP = `EXIT CODES:
  0    everything was sent and verified
  1    the transfer failed (protocol error, I/O error)
  2    bad command line
  3    could not connect, or the peer went away or stopped answering
  4    wrong code phrase (or too many wrong guesses)
  5    integrity failure: data did not match its size or seal
  6    refused by the receiver (exists, unsafe name, too large, no space, busy)
  130  interrupted (Ctrl-C); partial files are kept as NAME.ferry-part for resume`;

/**
 * One command-line flag, defined once: its parser type, and its line in `--help`. `shown` is
 * the default as the help prints it (the code applies defaults where it reads the value).
 */
interface Flag {
  type: "string" | "boolean";
  short?: string;
  /** The value's placeholder in the help: `--port N`. */
  arg?: string;
  help: string;
  shown?: string;
}

/** Flags both scripts take, in help order where they appear. */
const COMMON_FLAGS = {
  code: { type: "string", arg: "PHRASE", help: "" },
  host: { type: "string", arg: "ADDR", help: "", shown: "0.0.0.0" },
  port: { type: "string", short: "p", arg: "N", help: "", shown: String(DEFAULT_PORT) },
  once: { type: "boolean", help: "" },
  relay: { type: "string", arg: "tcp:H:P", help: "" },
  "no-discover": { type: "boolean", help: "" },
  timeout: {
    type: "string",
    arg: "SECONDS",
    help: "give up on a peer silent, or not found, this long",
    shown: "30",
  },
  legacy: { type: "boolean", help: "" },
  hash: { type: "boolean", help: "" },
  json: { type: "boolean", help: "one JSON event per line on stdout, no bars" },
  quiet: { type: "boolean", short: "q", help: "print nothing but errors" },
  help: { type: "boolean", short: "h", help: "show this help" },
} as const satisfies Record<string, Flag>;

/** The sender's flags: the common ones with the sender's words, and its own. */
const SENDER_FLAGS = {
  code: {
    ...COMMON_FLAGS.code,
    help: "code phrase shown by the listening side (prefer FERRY_CODE)",
  },
  compress: { type: "string", arg: "MODE", help: "auto, zstd, gzip or none", shown: "auto" },
  name: {
    type: "string",
    arg: "NAME",
    help: "name for a single PATH or for stdin",
    shown: "base name",
  },
  listen: {
    type: "boolean",
    help: "wait for a receiver instead of connecting; prints address and code",
  },
  host: { ...COMMON_FLAGS.host, help: "with --listen, the address to listen on" },
  port: { ...COMMON_FLAGS.port, help: "port to connect to or listen on (0: any free)" },
  once: { ...COMMON_FLAGS.once, help: "with --listen, exit after the first receiver" },
  relay: {
    ...COMMON_FLAGS.relay,
    help: "meet at this magic-wormhole transit relay when there is no direct way",
  },
  "no-discover": {
    ...COMMON_FLAGS["no-discover"],
    help: "do not look on (or, with --listen, announce to) the LAN",
  },
  timeout: COMMON_FLAGS.timeout,
  legacy: {
    ...COMMON_FLAGS.legacy,
    help: "the Python tutorial's plaintext wire (one file, no encryption)",
  },
  hash: {
    ...COMMON_FLAGS.hash,
    help: "print each file's XXH3-128 as read here (xxhsum -H2 format)",
  },
  json: COMMON_FLAGS.json,
  quiet: COMMON_FLAGS.quiet,
  help: COMMON_FLAGS.help,
} as const satisfies Record<string, Flag>;

/** The receiver's flags: the common ones with the receiver's words, and its own. */
const RECEIVER_FLAGS = {
  host: { ...COMMON_FLAGS.host, help: "address to listen on" },
  port: { ...COMMON_FLAGS.port, help: "port to listen on (0: any free port)" },
  dir: { type: "string", short: "d", arg: "DIR", help: "folder to write into", shown: "." },
  code: {
    ...COMMON_FLAGS.code,
    help: "use this code phrase instead of a fresh one (prefer FERRY_CODE)",
  },
  once: { ...COMMON_FLAGS.once, help: "exit after the first transfer" },
  overwrite: {
    type: "boolean",
    help: "replace existing files (atomically); default is to refuse them",
  },
  connect: {
    type: "string",
    arg: "[HOST[:PORT]]",
    help: "fetch from a sender started with --listen (no HOST: find it)",
  },
  relay: {
    ...COMMON_FLAGS.relay,
    help: "also wait at (or meet at) this magic-wormhole transit relay",
  },
  "no-discover": {
    ...COMMON_FLAGS["no-discover"],
    help: "do not announce on (or, with --connect, look on) the LAN",
  },
  stdout: { type: "boolean", help: "write the single received file to standard output" },
  "max-size": {
    type: "string",
    arg: "BYTES",
    help: "refuse transfers larger than this (suffixes K, M, G)",
    shown: "none",
  },
  "max-files": {
    type: "string",
    arg: "N",
    help: "refuse offers with more entries",
    shown: String(DEFAULT_MAX_FILES),
  },
  "max-connections": { type: "string", arg: "N", help: "senders served at once", shown: "64" },
  timeout: COMMON_FLAGS.timeout,
  legacy: { ...COMMON_FLAGS.legacy, help: "the Python tutorial's plaintext wire" },
  hash: {
    ...COMMON_FLAGS.hash,
    help: "print each file's XXH3-128 as written here (xxhsum -H2 format)",
  },
  json: COMMON_FLAGS.json,
  quiet: {
    ...COMMON_FLAGS.quiet,
    help: "print nothing but errors (and the code, if one was generated)",
  },
  help: COMMON_FLAGS.help,
} as const satisfies Record<string, Flag>;

/** The OPTIONS lines of `--help`, from a flag table, in its order, in two aligned columns. */
function optionsHelp(flags: Record<string, Flag>): string {
  const column = (text: string, width: number) =>
    text.length <= width - 2 ? text.padEnd(width) : `${text}  `;
  return Object.entries(flags).map(([name, flag]) => {
    const left = `  ${flag.short ? `-${flag.short}, ` : ""}--${name}${
      flag.arg ? ` ${flag.arg}` : ""
    }`;
    const line = column(left, 22) + flag.help;
    return flag.shown === undefined ? line : `${column(line, 69)}[default: ${flag.shown}]`;
  }).join("\n");
}

const ENVIRONMENT_HELP = `ENVIRONMENT:
  FERRY_CODE    the code phrase; safer than --code, which other users can see with ps
  FERRY_RELAY   a transit relay, as for --relay (needs --allow-env=FERRY_RELAY)
  FERRY_DEBUG   set to 1 for stack traces on errors
  NO_COLOR      set to disable colour`;

export const SENDER_HELP = `ferry sender: send files and folders, encrypted and verified.

USAGE:
  sender.ts [HOST[:PORT]] PATH... [OPTIONS]
  sender.ts --listen [--port N] PATH... [OPTIONS]

  PATH is a file, a folder (sent recursively), or - for standard input (with --name).
  Without HOST (a first argument that exists here is a PATH) the receiver is found on the LAN,
  or met at --relay.

OPTIONS:
${optionsHelp(SENDER_FLAGS)}

EXAMPLES:
  receiver.ts                                   # prints: listening on ... code 7-absurd-ribbon-castle
  FERRY_CODE=7-absurd-ribbon-castle sender.ts report.pdf photos/   # finds it on the LAN
  FERRY_CODE=7-absurd-ribbon-castle sender.ts 192.168.1.20 report.pdf
  tar c dir | FERRY_CODE=... sender.ts 192.168.1.20 - --name dir.tar
  sender.ts --listen big.iso                    # then: receiver.ts --connect HOST --code ...
  sender.ts --legacy 192.168.1.20:5001 data.csv # to the tutorial's receiver.py

${EXIT_CODES_HELP}

${ENVIRONMENT_HELP}`;

export const RECEIVER_HELP =
  `ferry receiver: receive files, encrypted and verified, from many senders at once.

USAGE:
  receiver.ts [OPTIONS]
  receiver.ts --connect [HOST[:PORT]] [OPTIONS]

OPTIONS:
${optionsHelp(RECEIVER_FLAGS)}

EXAMPLES:
  receiver.ts --dir downloads                   # prints the address and a code phrase
  FERRY_CODE=7-absurd-ribbon-castle receiver.ts --connect 192.168.1.20
  receiver.ts --once --stdout > file.tar
  receiver.ts --legacy                          # for the tutorial's sender.py

${EXIT_CODES_HELP}

${ENVIRONMENT_HELP}`;

/** Options both scripts share. */
export interface CommonOptions {
  host: string;
  port: number;
  code?: string;
  legacy: boolean;
  /** `--hash`: digest every file on this side and print it. */
  hash: boolean;
  json: boolean;
  quiet: boolean;
  once: boolean;
  timeoutMs: number;
  /** Look on (or announce to) the LAN. */
  discover: boolean;
  /** Meet at this transit relay too. */
  relay?: RelayAddress;
}

/** Parsed sender command line. */
export interface SenderOptions extends CommonOptions {
  paths: string[];
  /** The receiver's address, if the command line gave one (else: discovery, relay). */
  address?: { host: string; port: number };
  /** Set when a first argument could have been a HOST but is a path here. */
  readAsPath?: string;
  listen: boolean;
  compress: CompressMode;
  name?: string;
}

/** Parsed receiver command line. */
export interface ReceiverOptions extends CommonOptions {
  dir: string;
  overwrite: boolean;
  /** `--connect`: fetch from a listening sender, at this address if one was given. */
  connect?: { address?: { host: string; port: number } };
  stdout: boolean;
  maxSize: number;
  maxFiles: number;
  maxConnections: number;
}

function parse<T extends Record<string, Flag>>(args: string[], flags: T) {
  // The parser takes only type and short of each flag; the rest is for the help.
  const options = Object.fromEntries(
    Object.entries(flags).map((
      [name, { type, short }],
    ) => [name, short ? { type, short } : { type }]),
  ) as { [K in keyof T]: { type: T[K]["type"]; short?: string } };
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split("\n")[0]} (see --help)`);
  }
}

/** Parses the sender's arguments; `help` is returned as null. */
export function parseSenderArgs(args: string[]): SenderOptions | null {
  const { values, positionals } = parse(args, SENDER_FLAGS);
  if (values.help) return null;
  const listen = values.listen ?? false;
  if (listen && values.legacy) {
    throw new UsageError("--legacy connects to the tutorial's receiver; it cannot --listen");
  }
  const port = parsePort(values.port ?? String(DEFAULT_PORT));
  let paths = positionals;
  let address: { host: string; port: number } | undefined;
  let readAsPath: string | undefined;
  if (positionals.length < 1) {
    throw new UsageError(
      `usage: sender.ts ${listen ? "--listen" : "[HOST[:PORT]]"} PATH... (see --help)`,
    );
  }
  // HOST is optional: a first argument that exists here is a path, anything else an address.
  if (!listen && positionals.length >= 2) {
    if (existsHere(positionals[0]!)) readAsPath = positionals[0]!;
    else {
      address = parseAddress(positionals[0]!, values.port ? port : DEFAULT_PORT);
      paths = positionals.slice(1);
    }
  }
  if (values.legacy && !address) {
    throw new UsageError("--legacy needs the receiver's HOST: sender.ts --legacy HOST FILE");
  }
  const compress = (values.compress ?? "auto") as CompressMode;
  if (!COMPRESS_MODES.includes(compress)) {
    throw new UsageError(`--compress must be one of ${COMPRESS_MODES.join(", ")}`);
  }
  const stdinCount = paths.filter((p) => p === "-").length;
  if (stdinCount > 1) throw new UsageError("stdin (-) can be sent only once");
  return {
    ...common(values),
    host: values.host ?? "0.0.0.0",
    port,
    paths,
    ...(address ? { address } : {}),
    ...(readAsPath !== undefined ? { readAsPath } : {}),
    listen,
    compress,
    once: (values.once ?? false) || stdinCount > 0,
    ...(values.name !== undefined ? { name: values.name } : {}),
  };
}

/** True if `path` is a folder here (following links: --dir may be one). */
function isFolder(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** True if something (even a dangling link) is at `path` here; never prompts. */
function existsHere(path: string): boolean {
  if (path === "-") return true;
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Parses the receiver's arguments; `help` is returned as null. */
export function parseReceiverArgs(args: string[]): ReceiverOptions | null {
  // `--connect` may come without a value (find the sender): give parseArgs an empty one.
  args = args.map((arg, i) =>
    arg === "--connect" && (args[i + 1] === undefined || args[i + 1]!.startsWith("-"))
      ? "--connect="
      : arg
  );
  const { values, positionals } = parse(args, RECEIVER_FLAGS);
  if (values.help) return null;
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument: ${positionals[0]} (see --help)`);
  }
  const stdout = values.stdout ?? false;
  if (stdout && values.json) {
    throw new UsageError("--stdout and --json both write to standard output; choose one");
  }
  const dir = values.dir ?? ".";
  if (!stdout && !isFolder(dir)) throw new UsageError(`--dir ${dir} is not a folder`);
  return {
    ...common(values),
    host: values.host ?? "0.0.0.0",
    port: parsePort(values.port ?? String(DEFAULT_PORT)),
    dir,
    overwrite: values.overwrite ?? false,
    stdout,
    // Standard output can take one file only.
    once: (values.once ?? false) || stdout,
    maxSize: values["max-size"] ? parseSize(values["max-size"]) : Infinity,
    maxFiles: parseCount(values["max-files"], DEFAULT_MAX_FILES, "--max-files"),
    maxConnections: parseCount(values["max-connections"], 64, "--max-connections"),
    ...(values.connect === undefined ? {} : {
      connect: values.connect === "" ? {} : { address: parseAddress(values.connect, DEFAULT_PORT) },
    }),
  };
}

function common(values: {
  code?: string | undefined;
  relay?: string | undefined;
  "no-discover"?: boolean | undefined;
  legacy?: boolean | undefined;
  hash?: boolean | undefined;
  json?: boolean | undefined;
  quiet?: boolean | undefined;
  timeout?: string | undefined;
}): Omit<CommonOptions, "host" | "port" | "once"> {
  const code = values.code ?? readEnv("FERRY_CODE");
  const relay = values.relay ?? readEnv("FERRY_RELAY");
  if (values.legacy && values.relay !== undefined) {
    throw new UsageError("--legacy speaks the tutorial's wire, directly; it takes no --relay");
  }
  const timeout = values.timeout === undefined
    ? DEFAULT_IDLE_TIMEOUT_MS / 1000
    : Number(values.timeout);
  if (!(timeout > 0)) throw new UsageError("--timeout must be a positive number of seconds");
  if (values.legacy && values.code !== undefined) {
    throw new UsageError("--legacy is plaintext and takes no --code");
  }
  if (values.legacy && values.hash) throw new UsageError("--hash does not work with --legacy");
  return {
    legacy: values.legacy ?? false,
    hash: values.hash ?? false,
    json: values.json ?? false,
    quiet: values.quiet ?? false,
    timeoutMs: timeout * 1000,
    // The tutorial's wire has no code to make a tag from: nothing to announce or look for.
    discover: !values["no-discover"] && !values.legacy,
    ...(relay !== undefined && relay !== "" && !values.legacy ? { relay: parseRelay(relay) } : {}),
    ...(code !== undefined && code !== "" ? { code } : {}),
  };
}

/** Parses `HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6 address. */
export function parseAddress(text: string, defaultPort: number): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    return {
      host: bracketed[1]!,
      port: bracketed[2] ? parsePort(bracketed[2]) : defaultPort,
    };
  }
  const colons = text.split(":").length - 1;
  if (colons === 1) {
    const [host, port] = text.split(":") as [string, string];
    if (host === "") throw new UsageError(`missing host in ${text}`);
    return { host, port: parsePort(port) };
  }
  if (text === "") throw new UsageError("missing host");
  return { host: text, port: defaultPort };
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw new UsageError(`invalid port: ${text}`);
  return port;
}

function parseCount(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1) throw new UsageError(`${flag} must be a positive whole number`);
  return n;
}

/** Parses `1000`, `10K`, `5M`, `2G` (powers of 1024). */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(text.trim());
  if (!match) throw new UsageError(`invalid size: ${text} (examples: 500M, 2G)`);
  const power = " KMGT".indexOf((match[2] || " ").toUpperCase());
  return Math.floor(Number(match[1]) * 1024 ** power);
}

/** Reads an environment variable if we are allowed to, without ever prompting. */
export function readEnv(name: string): string | undefined {
  const status = Deno.permissions.querySync({ name: "env", variable: name });
  return status.state === "granted" ? Deno.env.get(name) : undefined;
}

/**
 * Runs a script's main(): prints its error as one `ferry:` line (never the code phrase, a stack
 * only with FERRY_DEBUG=1) and exits with the documented code. Ctrl-C exits 130.
 */
export async function runMain(
  main: () => Promise<number>,
  secrets: () => readonly string[],
  help: string,
): Promise<never> {
  Deno.addSignalListener("SIGINT", () => {
    flushOutput();
    Deno.stderr.writeSync(
      new TextEncoder().encode("\nferry: interrupted; partial files are kept as NAME.ferry-part\n"),
    );
    Deno.exit(EXIT.INTERRUPTED);
  });
  let code: number;
  try {
    code = await main();
  } catch (err) {
    if (readEnv("FERRY_DEBUG") === "1") console.error(err);
    const line = formatError(err, secrets());
    const exitCode = exitCodeOf(err);
    if (Deno.args.includes("--json")) {
      writeOut(
        JSON.stringify({
          event: "error",
          message: line.replace(/^ferry: /, ""),
          exit_code: exitCode,
        }) +
          "\n",
      );
    }
    flushOutput();
    Deno.stderr.writeSync(new TextEncoder().encode(`${line}\n`));
    if (err instanceof UsageError && !line.includes("--help")) {
      Deno.stderr.writeSync(
        new TextEncoder().encode(`ferry: ${help.split(":")[0]} --help shows usage\n`),
      );
    }
    code = exitCode;
  }
  flushOutput();
  Deno.exit(code);
}
