/**
 * The command lines of sender.ts and receiver.ts: flags, help texts, addresses, the code
 * phrase's source, and the one place that turns a thrown error into a line and an exit code.
 *
 * Why over 400 lines: a table per script defines each flag once (parser type, help line, default,
 * and how its text becomes a typed setting); the parser spec, the help texts and the settings
 * object both scripts pass on unchanged are built from the tables.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dirname, resolve } from "node:path";
import { DEFAULT_PORT } from "../protocol.ts";
import { DEFAULT_IDLE_TIMEOUT_MS } from "./channel.ts";
import { COMPRESS_MODES, type CompressMode } from "./compress.ts";
import { EXIT, exitCodeOf, formatError, UsageError } from "./errors.ts";
import { codeTypo } from "./code_phrase.ts";
import { flushOutput, writeOut } from "./io.ts";
import { DEFAULT_MAX_FILES } from "./plan.ts";
import { DEFAULT_MAX_CONNECTIONS } from "./serve.ts";
import { parseRelay } from "./relay.ts";
import { OwnedFile } from "./owned_file.ts";
import { clearAllBars } from "./report.ts";
import { granted, requirePermissions, unreadableEnv } from "./permissions.ts";
import { APP_ID, DEFAULT_MAILBOX, DEFAULT_TRANSIT_RELAY } from "./wormhole/client.ts";

/** Exit codes as printed in --help and README.md. */
export const EXIT_CODES_HELP = `EXIT CODES:
  0    everything was sent and verified
  1    the transfer failed (protocol error, I/O error)
  2    bad command line
  3    could not connect, or the peer went away or stopped answering
  4    wrong code phrase (or too many wrong guesses)
  5    integrity failure: data did not match its size or seal
  6    refused by the receiver (exists, unsafe name, too large, no space, busy)
  130  interrupted (Ctrl-C); partial files are kept to resume from`;

/**
 * One command-line flag, defined once: its parser type, its line in `--help`, and how its text
 * becomes a setting. `shown` is the default as the help prints it; `read` applies the default
 * (`undefined` in, when the flag is absent). The setting is named after the flag in camelCase
 * (`max-size` → `maxSize`) unless `as` names it.
 */
type Flag = StringFlag | BooleanFlag;

interface FlagHelp {
  short?: string;
  /** The value's placeholder in the help: `--port N`. */
  arg?: string;
  help: string;
  shown?: string;
  /** The setting's name, when it is not the flag's name in camelCase. */
  as?: string;
}

interface StringFlag extends FlagHelp {
  type: "string";
  read: (text: string | undefined) => unknown;
}

interface BooleanFlag extends FlagHelp {
  type: "boolean";
  /** @default {(given) => given ?? false} */
  read?: (given: boolean | undefined) => unknown;
}

/** Flags both scripts take, in help order where they appear. */
const COMMON_FLAGS = {
  code: {
    type: "string",
    arg: "PHRASE",
    help: "",
    read: (text) => nonEmpty(text ?? readEnv("FERRY_CODE")),
  },
  host: { type: "string", arg: "ADDR", help: "", shown: "0.0.0.0", read: (t) => t ?? "0.0.0.0" },
  port: {
    type: "string",
    short: "p",
    arg: "N",
    help: "",
    shown: String(DEFAULT_PORT),
    read: (text) => text === undefined ? DEFAULT_PORT : parsePort(text),
  },
  once: { type: "boolean", help: "" },
  relay: {
    type: "string",
    arg: "tcp:H:P",
    help: "",
    read: (text) => {
      const relay = nonEmpty(text ?? readEnv("FERRY_RELAY"));
      return relay === undefined ? undefined : parseRelay(relay);
    },
  },
  "no-discover": { type: "boolean", help: "", as: "discover", read: (given) => !given },
  "no-listen": {
    type: "boolean",
    help: "with --wormhole, only dial out or meet at the relay",
    as: "transitListen",
    read: (given) => !given,
  },
  mailbox: {
    type: "string",
    arg: "URL",
    help: "with --wormhole, the mailbox server",
    shown: "magic-wormhole's",
    read: (text) => text ?? DEFAULT_MAILBOX,
  },
  timeout: {
    type: "string",
    arg: "SECONDS",
    help: "give up on a peer silent (or under 1 KiB/s), or not found, this long",
    shown: String(DEFAULT_IDLE_TIMEOUT_MS / 1000),
    as: "timeoutMs",
    read: (text) => {
      const seconds = text === undefined ? DEFAULT_IDLE_TIMEOUT_MS / 1000 : Number(text);
      if (!(seconds > 0)) throw new UsageError("--timeout must be a positive number of seconds");
      return seconds * 1000;
    },
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
  compress: {
    type: "string",
    arg: "MODE",
    help: "auto, zstd, gzip or none",
    shown: "auto",
    read: (text): CompressMode => {
      const mode = (text ?? "auto") as CompressMode;
      if (COMPRESS_MODES.includes(mode)) return mode;
      throw new UsageError(`--compress must be one of ${COMPRESS_MODES.join(", ")}`);
    },
  },
  name: {
    type: "string",
    arg: "NAME",
    help: "name for a single PATH or for stdin",
    shown: "base name",
    read: (text) => text,
  },
  listen: {
    type: "boolean",
    help: "wait for a receiver instead of connecting; prints address and code",
  },
  "ignore-unsendable-files": {
    type: "boolean",
    help: "skip links, FIFOs and unreadable files in folders, with a warning",
  },
  wormhole: {
    type: "boolean",
    help: "send to a magic-wormhole receiver (wormhole receive CODE)",
  },
  text: { type: "string", arg: "MESSAGE", help: "with --wormhole, send this text", read: (t) => t },
  mailbox: COMMON_FLAGS.mailbox,
  "no-listen": COMMON_FLAGS["no-listen"],
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
  dir: {
    type: "string",
    short: "d",
    arg: "DIR",
    help: "folder to write into",
    shown: ".",
    read: (text) => text ?? ".",
  },
  code: {
    ...COMMON_FLAGS.code,
    help: "use this code phrase instead of a fresh one (prefer FERRY_CODE)",
  },
  once: { ...COMMON_FLAGS.once, help: "exit after the first transfer" },
  overwrite: {
    type: "boolean",
    help: "replace existing files (atomically); default is to refuse them",
  },
  wormhole: {
    type: "string",
    arg: "[CODE]",
    help: "receive from magic-wormhole's wormhole send",
    // An empty value is --wormhole without CODE: it comes from FERRY_CODE.
    read: (text) => text,
  },
  mailbox: COMMON_FLAGS.mailbox,
  "no-listen": COMMON_FLAGS["no-listen"],
  connect: {
    type: "string",
    arg: "[HOST[:PORT]]",
    help: "fetch from a sender started with --listen (no HOST: find it)",
    // An empty value is --connect without HOST: find the sender.
    read: (text): { address?: { host: string; port: number } } | undefined =>
      text === undefined ? undefined : text === "" ? {} : {
        address: parseAddress(text, DEFAULT_PORT),
      },
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
    read: (text) => text ? parseSize(text) : Infinity,
  },
  "max-files": {
    type: "string",
    arg: "N",
    help: "refuse offers with more entries",
    shown: String(DEFAULT_MAX_FILES),
    read: (text) => parseCount(text, DEFAULT_MAX_FILES, "--max-files"),
  },
  "max-connections": {
    type: "string",
    arg: "N",
    help: "senders served at once",
    shown: String(DEFAULT_MAX_CONNECTIONS),
    read: (text) => parseCount(text, DEFAULT_MAX_CONNECTIONS, "--max-connections"),
  },
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

/** `max-size` → `maxSize`. */
type CamelCase<S extends string> = S extends `${infer Head}-${infer Tail}`
  ? `${Head}${Capitalize<CamelCase<Tail>>}`
  : S;
type SettingName<K extends string, F> = F extends { as: infer A extends string } ? A
  : CamelCase<K>;
type SettingValue<F> = F extends { read: (raw: never) => infer V } ? V : boolean;

/**
 * The typed settings a flag table produces: one property per flag, named and typed by its
 * `read`; a setting that can be absent (`code`, `relay`) is an optional property.
 */
export type Settings<T extends Record<string, Flag>> =
  & {
    [K in keyof T & string as undefined extends SettingValue<T[K]> ? never : SettingName<K, T[K]>]:
      SettingValue<T[K]>;
  }
  & {
    [K in keyof T & string as undefined extends SettingValue<T[K]> ? SettingName<K, T[K]> : never]?:
      Exclude<SettingValue<T[K]>, undefined>;
  };

/** Turns the parser's values into settings, through each flag's `read`. */
function readFlags<T extends Record<string, Flag>>(
  values: Record<string, string | boolean | undefined>,
  flags: T,
): Settings<T> {
  const settings: Record<string, unknown> = {};
  for (const [name, flag] of Object.entries(flags)) {
    const given = values[name];
    const value = flag.type === "string"
      ? flag.read(given as string | undefined)
      : flag.read
      ? flag.read(given as boolean | undefined)
      : given ?? false;
    const key = flag.as ?? name.replace(/-(.)/g, (_, c: string) => c.toUpperCase());
    if (value !== undefined) settings[key] = value;
  }
  return settings as Settings<T>;
}

function nonEmpty(text: string | undefined): string | undefined {
  return text === "" ? undefined : text;
}

/** Columns `--help` keeps within: an 80-column terminal, less the last column. */
const HELP_WIDTH = 79;
/** Where the OPTIONS' descriptions start. */
const HELP_COLUMN = 22;

/**
 * `first` followed by `text`, wrapped at HELP_WIDTH; lines after the first are indented by
 * `indent` spaces. Text in brackets (`[default: 30]`) is never split.
 */
function wrap(first: string, text: string, indent: number): string {
  const words = text.replace(/\[[^\]]*\]/g, (group) => group.replaceAll(" ", "\u00a0")).split(" ");
  const lines = [first];
  for (const word of words) {
    const line = lines[lines.length - 1]!;
    const joined = line.endsWith(" ") ? line + word : `${line} ${word}`;
    if (joined.length <= HELP_WIDTH || line.trim() === "") lines[lines.length - 1] = joined;
    else lines.push(" ".repeat(indent) + word);
  }
  return lines.join("\n").replaceAll("\u00a0", " ");
}

/**
 * The OPTIONS lines of `--help`, from a flag table, in its order: the flag, then its
 * description and default, wrapped at HELP_WIDTH and aligned at HELP_COLUMN. A flag too long
 * for its column has its description on the next line.
 */
function optionsHelp(flags: Record<string, Flag>): string {
  return Object.entries(flags).map(([name, flag]) => {
    const left = `  ${flag.short ? `-${flag.short}, ` : ""}--${name}${
      flag.arg ? ` ${flag.arg}` : ""
    }`;
    const text = flag.shown === undefined ? flag.help : `${flag.help} [default: ${flag.shown}]`;
    const column = " ".repeat(HELP_COLUMN);
    return left.length <= HELP_COLUMN - 2
      ? wrap(left.padEnd(HELP_COLUMN), text, HELP_COLUMN)
      : `${left}\n${wrap(column, text, HELP_COLUMN)}`;
  }).join("\n");
}

const WORMHOLE_HELP = `MAGIC-WORMHOLE:
  --wormhole speaks magic-wormhole's protocol, to and from the wormhole CLI and
  the apps built on it. It meets the other side at a mailbox server and sends
  directly, or through a transit relay when neither can reach the other. Unless
  --mailbox and --relay say otherwise, these are magic-wormhole's public
  servers, run for this one application: ${APP_ID}
    mailbox ${DEFAULT_MAILBOX}
    relay   ${DEFAULT_TRANSIT_RELAY}`;

const ENVIRONMENT_HELP = `ENVIRONMENT: (each is read only with deno's --allow-env=NAME)
  FERRY_CODE    the code phrase; safer than --code, which any user can see (ps)
  FERRY_RELAY   a transit relay, as for --relay
  FERRY_DEBUG   set to 1 for stack traces on errors`;

export const SENDER_HELP = `ferry sender: send files and folders, encrypted and verified.

USAGE:
  ./sender.ts [HOST[:PORT]] PATH... [OPTIONS]
  ./sender.ts --listen [--port N] PATH... [OPTIONS]
  ./sender.ts --wormhole PATH | --text MESSAGE [OPTIONS]

  PATH is a file, a folder (sent recursively), or - for standard input (with
  --name). Without HOST (when the first argument exists here, it is a PATH) the
  receiver is found on the LAN, or met at --relay. ./sender.ts runs it with the
  permissions it needs, as does: deno run --allow-net --allow-read
  --allow-env=FERRY_CODE sender.ts

OPTIONS:
${optionsHelp(SENDER_FLAGS)}

EXAMPLES:
  ./receiver.ts prints its code (... code 7-absurd-ribbon-castle), then:
    FERRY_CODE=7-absurd-ribbon-castle ./sender.ts report.pdf photos/
    FERRY_CODE=7-absurd-ribbon-castle ./sender.ts 192.168.1.20 report.pdf
    tar c dir | FERRY_CODE=7-absurd-ribbon-castle ./sender.ts - --name dir.tar
  Wait for a receiver (then: FERRY_CODE=... ./receiver.ts --connect):
    ./sender.ts --listen big.iso
  To the Python tutorial's receiver.py; to magic-wormhole's wormhole receive:
    ./sender.ts --legacy 192.168.1.20:5001 data.csv
    ./sender.ts --wormhole photos/

${WORMHOLE_HELP}

${EXIT_CODES_HELP}

${ENVIRONMENT_HELP}`;

export const RECEIVER_HELP =
  `ferry receiver: receive files, encrypted and verified, from many senders.

USAGE:
  ./receiver.ts [OPTIONS]
  ./receiver.ts --connect [HOST[:PORT]] [OPTIONS]
  ./receiver.ts --wormhole [CODE] [OPTIONS]

  ./receiver.ts runs it with the permissions it needs, as does: deno run
  --allow-net --allow-read --allow-write
  --allow-sys=statfs,networkInterfaces --allow-env=FERRY_CODE receiver.ts

OPTIONS:
${optionsHelp(RECEIVER_FLAGS)}

EXAMPLES:
  ./receiver.ts --dir downloads          # prints its addresses and a code
  ./receiver.ts --once --stdout > file.tar
  FERRY_CODE=7-absurd-ribbon-castle ./receiver.ts --connect 192.168.1.20
  ./receiver.ts --legacy                 # for the Python tutorial's sender.py
  FERRY_CODE=4-purple-sausages ./receiver.ts --wormhole   # from wormhole send

${WORMHOLE_HELP}

${EXIT_CODES_HELP}

${ENVIRONMENT_HELP}`;

/** The sender's settings: its flags, and what its positional arguments say. */
export type SenderOptions = Settings<typeof SENDER_FLAGS> & {
  paths: string[];
  /** The receiver's address, if the command line gave one (else: discovery, relay). */
  address?: { host: string; port: number };
  /** Set when a first argument could have been a HOST but is a path here. */
  readAsPath?: string;
};

/** The receiver's settings: its flags, and whether --dir had to be made. */
export type ReceiverOptions = Settings<typeof RECEIVER_FLAGS> & { madeDir: boolean };

/** node:util's parser error, said plainly; an option of the other script is named as such. */
function parseProblem(message: string, flags: Record<string, Flag>): string {
  const unknown = /^Unknown option '(-{1,2})([^']+)'/.exec(message);
  if (!unknown) return `${message.split("\n")[0]!.replace(/\.$/, "")}; see --help`;
  const [, dashes, name] = unknown as unknown as [string, string, string];
  const other = flags === (SENDER_FLAGS as Record<string, Flag>) ? RECEIVER_FLAGS : SENDER_FLAGS;
  if (dashes === "--" && name in other) {
    const script = other === RECEIVER_FLAGS ? "receiver.ts" : "sender.ts";
    return `--${name} is an option of ${script}, not of this script; see --help`;
  }
  return `unknown option ${dashes}${name}; see --help`;
}

function parse<T extends Record<string, Flag>>(args: string[], flags: T) {
  // The parser takes only type and short of each flag; the rest is for the help and settings.
  const options = Object.fromEntries(
    Object.entries(flags).map((
      [name, { type, short }],
    ) => [name, short ? { type, short } : { type }]),
  ) as { [K in keyof T]: { type: T[K]["type"]; short?: string } };
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(parseProblem((err as Error).message, flags));
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  // --legacy speaks the tutorial's plaintext wire: no code, no relay, nothing to announce.
  if (values.legacy) {
    if (values.code !== undefined) {
      throw new UsageError("--legacy is plaintext and takes no --code");
    }
    if (values.relay !== undefined) {
      throw new UsageError("--legacy speaks the tutorial's wire, directly; it takes no --relay");
    }
    if (values.hash) throw new UsageError("--hash does not work with --legacy");
  }
  if (values.help) return { settings: null, positionals: [] };
  const settings = readFlags(values, flags);
  // A mistyped word would cost one of the code's few guesses and then read as "wrong code":
  // said now, before anything goes on the network. (magic-wormhole's codes are not checked.)
  const code = (settings as { code?: string }).code;
  const typo = code === undefined || values.wormhole !== undefined ? undefined : codeTypo(code);
  if (typo) {
    throw new UsageError(
      `the code's word "${typo.word}" is not in ferry's word list; did you mean ` +
        `"${typo.nearest}"? Check the code: a wrong one costs one of its few guesses`,
    );
  }
  if (values.legacy) {
    // Settings from the environment do not apply; there is no code to make a tag from.
    Object.assign(settings, { discover: false });
    delete (settings as { code?: string }).code;
    delete (settings as { relay?: unknown }).relay;
  }
  return { settings, positionals: parsed.positionals };
}

/** Parses the sender's arguments; `help` is returned as null. */
export function parseSenderArgs(args: string[]): SenderOptions | null {
  const { settings, positionals } = parse(args, SENDER_FLAGS);
  if (settings === null) return null;
  // Every path must be readable (a grant for just those paths will do); a first argument that
  // is not may be HOST.
  const unreadable = positionals.filter((path, i) =>
    path !== "-" && !(i === 0 && positionals.length > 1 && !settings.listen) &&
    !granted({ name: "read", path })
  );
  requirePermissions([
    { permission: { name: "net" }, for: "the network" },
    ...(unreadable.length > 0
      ? [{ permission: { name: "read" } as const, for: `reading ${unreadable.join(", ")}` }]
      : []),
  ]);
  const { listen, legacy, port, wormhole } = settings;
  if (listen && legacy) {
    throw new UsageError("--legacy connects to the tutorial's receiver; it cannot --listen");
  }
  if (wormhole && (listen || legacy)) {
    throw new UsageError("--wormhole speaks magic-wormhole's protocol; drop --listen/--legacy");
  }
  if (settings.text !== undefined && !wormhole) throw new UsageError("--text goes with --wormhole");
  if (wormhole) {
    if (settings.text === undefined && positionals.length < 1) {
      throw new UsageError("usage: sender.ts --wormhole PATH (or --text MESSAGE)");
    }
    return { ...settings, paths: positionals };
  }
  if (positionals.length < 1) {
    throw new UsageError(
      `usage: sender.ts ${listen ? "--listen" : "[HOST[:PORT]]"} PATH... (see --help)`,
    );
  }
  // HOST is optional: a first argument that exists here is a path, anything else an address.
  const where: Pick<SenderOptions, "address" | "readAsPath"> = {};
  let paths = positionals;
  if (!listen && positionals.length >= 2) {
    if (existsHere(positionals[0]!)) where.readAsPath = positionals[0]!;
    else if (looksLikeAFile(positionals[0]!)) {
      // `sender.ts reprot.pdf notes.txt`: a typo, not a computer called reprot.pdf.
      throw new UsageError(
        `no such file or folder: ${positionals[0]} (to send to a computer of that name, ` +
          "give HOST:PORT)",
      );
    } else {
      where.address = parseAddress(positionals[0]!, port);
      paths = positionals.slice(1);
    }
  }
  if (legacy && !where.address) {
    throw new UsageError("--legacy needs the receiver's HOST: sender.ts --legacy HOST FILE");
  }
  const stdinCount = paths.filter((p) => p === "-").length;
  if (stdinCount > 1) throw new UsageError("stdin (-) can be sent only once");
  // The code phrase: given to us, unless we listen (then we make one up) or speak the tutorial's.
  if (settings.code === undefined && !listen && !legacy) throw noCodeError("receiver");
  // Standard input can be read once: one receiver.
  return { ...settings, ...where, paths, once: settings.once || stdinCount > 0 };
}

/**
 * A name no computer has but files do: no port, and a slash or one of the usual endings of a
 * file (`docs/report`, `report.pdf`). A host name with such an ending can still be given as
 * HOST:PORT.
 */
function looksLikeAFile(text: string): boolean {
  return !text.includes(":") && (text.includes("/") || FILE_ENDINGS.test(text));
}
const FILE_ENDINGS =
  /\.(pdf|txt|md|csv|json|xml|html?|docx?|xlsx?|pptx?|odt|ods|zip|tar|gz|tgz|xz|bz2|7z|rar|iso|img|jpe?g|png|gif|webp|heic|svg|mp3|wav|flac|ogg|mp4|mkv|mov|avi|log|bin|dat|sql|py|ts|js|go|rs|c|h)$/i;

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
    (arg === "--connect" || arg === "--wormhole") &&
      (args[i + 1] === undefined || args[i + 1]!.startsWith("-"))
      ? `${arg}=`
      : arg
  );
  const parsed = parse(args, RECEIVER_FLAGS);
  if (parsed.settings === null) return null;
  if (parsed.positionals.length > 0) {
    throw new UsageError(`unexpected argument: ${parsed.positionals[0]} (see --help)`);
  }
  // Absolute from here on: placing files moves the working directory into --dir.
  const settings = { ...parsed.settings, dir: resolve(parsed.settings.dir) };
  const { stdout, json, dir } = settings;
  if (stdout && json) {
    throw new UsageError("--stdout and --json both write to standard output; choose one");
  }
  requirePermissions([
    { permission: { name: "net" }, for: "the network" },
    ...(stdout ? [] : [
      { permission: { name: "read", path: dir } as const, for: `looking into ${dir}` },
      { permission: { name: "write", path: dir } as const, for: `writing into ${dir}` },
    ]),
  ]);
  // A --dir that does not exist yet is made, its last folder only: a typo further up is said,
  // not made into a tree. Anything else there is not a folder.
  let madeDir = false;
  if (!stdout && !existsHere(dir)) {
    try {
      Deno.mkdirSync(dir);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      throw new UsageError(
        `--dir ${dir}: ${dirname(dir)} does not exist (a typo? ferry makes only the last folder)`,
      );
    }
    madeDir = true;
  }
  if (!stdout && !isFolder(dir)) throw new UsageError(`--dir ${dir} is not a folder`);
  if (settings.wormhole !== undefined) {
    if (settings.connect || settings.legacy) {
      throw new UsageError("--wormhole speaks magic-wormhole's protocol; drop --connect/--legacy");
    }
    // A code after --wormhole is the code; FERRY_CODE or --code otherwise.
    if (settings.wormhole !== "") {
      return { ...settings, madeDir, code: settings.wormhole, once: true };
    }
    return { ...settings, madeDir, once: true };
  }
  if (settings.connect && settings.legacy) {
    throw new UsageError(
      "--legacy receives from the tutorial's sender.py, which connects to us; drop --connect",
    );
  }
  // Fetching from a listening sender needs its code; a listening receiver makes one up.
  if (settings.connect && settings.code === undefined) {
    throw noCodeError("sender");
  }
  // Standard output can take one file only.
  return { ...settings, madeDir, once: settings.once || stdout };
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
  // "::1:5012" is an IPv6 address, but most likely meant as ::1, port 5012: ask which.
  const last = /:(\d{4,5})$/.exec(text);
  if (last && Number(last[1]) <= 65535) {
    const host = text.slice(0, last.index);
    throw new UsageError(
      `${text} is ambiguous: write [${host}]:${last[1]} for port ${last[1]}, or [${text}] for ` +
        "that address",
    );
  }
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

/** The error for a missing code phrase: says why FERRY_CODE looked unset, and what to do. */
export function noCodeError(peer: "sender" | "receiver"): UsageError {
  const why = unreadableEnv("FERRY_CODE") ?? `set FERRY_CODE to the ${peer}'s code`;
  return new UsageError(`no code phrase: ${why}, or pass --code`);
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
    // No bar stays behind, frozen at some percent above the message. (Without bars, the
    // terminal's "^C" is on the line: the message starts on the next.)
    const cleared = clearAllBars();
    // Files being written stay as NAME.ferry-part; say so only if there are some, and promise a
    // resume only where there can be one (magic-wormhole's transfers start again from 0).
    const kept = OwnedFile.resumable > 0
      ? "; partial files are kept as NAME.ferry-part to resume"
      : OwnedFile.open > 0
      ? "; the next transfer starts again from the beginning"
      : "";
    Deno.stderr.writeSync(
      new TextEncoder().encode(`${cleared ? "" : "\n"}ferry: interrupted${kept}\n`),
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
    // A message that names a flag says what to change already.
    if (err instanceof UsageError && !line.includes(" --")) {
      Deno.stderr.writeSync(
        new TextEncoder().encode(
          `ferry: ${help.split(":")[0]!.replace("ferry ", "")}.ts --help shows usage\n`,
        ),
      );
    }
    code = exitCode;
  }
  flushOutput();
  Deno.exit(code);
}
