/**
 * Speaking magic-wormhole: ferry against the real `wormhole` CLI (Debian's magic-wormhole),
 * through a real mailbox server (`twist3 wormhole-mailbox`) and transit relay
 * (`twist3 transitrelay`), both on loopback. Codes reach ferry through FERRY_CODE and the
 * wormhole CLI through its stdin prompt, never through process arguments (except where the
 * wormhole CLI itself is the sender and allocates one). Tests that cannot run say SKIP.
 */

import { join } from "node:path";
import { zipSync } from "fflate";
import { assert, assertEquals, assertMatch, assertRejects } from "./assert.ts";
import {
  exists,
  type Finished,
  listTree,
  randomBytes,
  RECEIVER,
  run,
  sameFile,
  SENDER,
  startUntil,
  tempDir,
  withDirs,
  withTimeout,
  writeRandomFile,
} from "./helpers.ts";
import { APP_ID, Wormhole } from "../lib/wormhole/client.ts";
import { loadSecretBox } from "../lib/wormhole/crypto.ts";
import { startSymmetric } from "../lib/wormhole/spake2.ts";
import { RecordPipe, Transit } from "../lib/wormhole/transit.ts";
import { tcpLink } from "../lib/transport.ts";
import { IntegrityError } from "../lib/errors.ts";

// ---------------------------------------------------------------------------------------------
// What can run here.

function works(program: string, args: string[]): boolean {
  try {
    return new Deno.Command(program, { args, stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

const HAVE_SERVERS = works("twist3", ["wormhole-mailbox", "--help"]) &&
  works("twist3", ["transitrelay", "--help"]);
const HAVE_WORMHOLE = HAVE_SERVERS && works("wormhole", ["--version"]);
const HAVE_PY_SPAKE2 = works("/usr/bin/python3", ["-c", "import spake2"]);
if (!HAVE_WORMHOLE) {
  console.log(
    "SKIP magic-wormhole tests: need `wormhole` and `twist3 wormhole-mailbox`/`transitrelay` " +
      "(apt install magic-wormhole python3-magic-wormhole-mailbox-server " +
      "magic-wormhole-transit-relay)",
  );
}
if (!HAVE_PY_SPAKE2) console.log("SKIP SPAKE2 vectors: python3-spake2 not installed");

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A mailbox server and a transit relay on loopback. */
interface Servers {
  mailbox: string;
  relay: string;
  /** Flags for ferry's scripts. */
  ferry: string[];
  /** Global flags for the wormhole CLI. */
  wormhole: string[];
}

/** Starts a server in `cwd` (the mailbox server keeps its database, relay.sqlite, there). */
async function startServer(
  args: string[],
  port: number,
  cwd: string,
): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("twist3", { args, cwd, stdout: "null", stderr: "null" }).spawn();
  const ready = async () => {
    for (let i = 0; i < 400; i++) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };
  await withTimeout(ready(), 25_000, `twist3 ${args[0]}`, () => child.kill("SIGKILL"));
  return child;
}

/** Runs `fn` with fresh servers, stopped afterwards whatever happens. */
async function withServers(fn: (servers: Servers) => Promise<void>): Promise<void> {
  const mailboxPort = freePort(), relayPort = freePort();
  const home = await tempDir();
  const children = await Promise.all([
    startServer(
      ["wormhole-mailbox", `--port=tcp:${mailboxPort}:interface=127.0.0.1`],
      mailboxPort,
      home,
    ),
    startServer(["transitrelay", `--port=tcp:${relayPort}:interface=127.0.0.1`], relayPort, home),
  ]);
  const mailbox = `ws://127.0.0.1:${mailboxPort}/v1`;
  const relay = `tcp:127.0.0.1:${relayPort}`;
  try {
    await fn({
      mailbox,
      relay,
      ferry: ["--mailbox", mailbox, "--relay", relay, "--no-discover"],
      wormhole: ["--relay-url", mailbox, "--transit-helper", relay],
    });
  } finally {
    for (const child of children) {
      child.kill("SIGKILL");
      await child.status;
    }
    await Deno.remove(home, { recursive: true });
  }
}

/** A running `wormhole` CLI. */
interface Cli {
  /** The process, to stop it mid-transfer. */
  child: Deno.ChildProcess;
  /** Waits (bounded) for stderr to match; returns the match. */
  waitFor(pattern: RegExp): Promise<RegExpExecArray>;
  finish(): Promise<Finished>;
}

/** Starts the wormhole CLI in `cwd`; `stdin` (the code, for receive) is written at once. */
function wormhole(args: string[], cwd: string, stdin?: string): Cli {
  const child = new Deno.Command("wormhole", {
    args,
    cwd,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    writer.write(new TextEncoder().encode(stdin)).then(() => writer.close()).catch(() => {});
  }
  let stderr = "";
  const decoder = new TextDecoder();
  const waiters: (() => void)[] = [];
  const stderrDone = (async () => {
    for await (const chunk of child.stderr) {
      stderr += decoder.decode(chunk, { stream: true });
      waiters.splice(0).forEach((wake) => wake());
    }
    waiters.splice(0).forEach((wake) => wake());
  })();
  const stdoutDone = new Response(child.stdout).text();
  let exited = false;
  child.status.then(() => exited = true);
  return {
    child,
    waitFor: (pattern) =>
      withTimeout(
        (async () => {
          for (let i = 0; i < 10_000; i++) {
            const match = pattern.exec(stderr);
            if (match) return match;
            if (exited) throw new Error(`wormhole exited without ${pattern}: ${stderr}`);
            await new Promise<void>((resolve) => {
              waiters.push(resolve);
              setTimeout(resolve, 200);
            });
          }
          throw new Error(`no ${pattern} in: ${stderr}`);
        })(),
        30_000,
        `wormhole's ${pattern}`,
        () => child.kill("SIGKILL"),
      ),
    finish: async () => {
      const [stdout, , status] = await withTimeout(
        Promise.all([stdoutDone, stderrDone, child.status]),
        60_000,
        "wormhole to exit",
        () => child.kill("SIGKILL"),
      );
      return { code: status.code, stdout, stderr };
    },
  };
}

const WORMHOLE_CODE = /Wormhole code is: (\S+)/;

/** `wormhole send ARGS` from `cwd`; returns it and the code it allocated. */
async function wormholeSend(servers: Servers, args: string[], cwd: string) {
  const cli = wormhole([...servers.wormhole, "send", ...args], cwd);
  const code = (await cli.waitFor(WORMHOLE_CODE))[1]!;
  return { cli, code };
}

/** receiver.ts --wormhole with the code in FERRY_CODE. */
function ferryReceive(servers: Servers, code: string, args: string[]) {
  return run(RECEIVER, ["--wormhole", ...servers.ferry, ...args], { env: { FERRY_CODE: code } });
}

/** sender.ts --wormhole, which allocates a code; returns it once printed. */
async function ferrySend(servers: Servers, args: string[]) {
  const sender = await startUntil(
    SENDER,
    ["--wormhole", ...servers.ferry, ...args],
    /wormhole receive (\S+)/,
  );
  return { sender, code: sender.match[1]! };
}

/** `wormhole receive` in `cwd`, typing `code` at its prompt. */
function wormholeReceive(servers: Servers, code: string, cwd: string, args: string[] = []) {
  return wormhole([...servers.wormhole, "receive", "--accept-file", ...args], cwd, `${code}\n`)
    .finish();
}

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: !HAVE_WORMHOLE, fn, sanitizeResources: false, sanitizeOps: false });

// ---------------------------------------------------------------------------------------------
// SPAKE2 against python-spake2 itself.

Deno.test({
  name: "SPAKE2 symmetric matches python-spake2 byte for byte (messages and key)",
  ignore: !HAVE_PY_SPAKE2,
  fn: async () => {
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const script = `
import sys, json
from spake2 import SPAKE2_Symmetric
pw, ids, ea, eb = sys.argv[1].encode(), sys.argv[2].encode(), bytes.fromhex(sys.argv[3]), bytes.fromhex(sys.argv[4])
a = SPAKE2_Symmetric(pw, idSymmetric=ids, entropy_f=lambda n: ea[:n])
b = SPAKE2_Symmetric(pw, idSymmetric=ids, entropy_f=lambda n: eb[:n])
ma, mb = a.start(), b.start()
print(json.dumps({"a": ma.hex(), "b": mb.hex(), "key": a.finish(mb).hex()}))`;
    const encoder = new TextEncoder();
    const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
    for (const [code, seedA, seedB] of [["4-purple-sausages", "11", "22"], ["7-é-x", "a5", "3c"]]) {
      const entropyA = seedA!.repeat(64), entropyB = seedB!.repeat(64);
      const out = await new Deno.Command("/usr/bin/python3", {
        args: ["-c", script, code!, APP_ID, entropyA, entropyB],
      }).output();
      const python = JSON.parse(new TextDecoder().decode(out.stdout));
      const a = startSymmetric(
        encoder.encode(code),
        encoder.encode(APP_ID),
        BigInt(`0x${entropyA}`) % L,
      );
      const b = startSymmetric(
        encoder.encode(code),
        encoder.encode(APP_ID),
        BigInt(`0x${entropyB}`) % L,
      );
      assertEquals(hex(a.message), python.a);
      assertEquals(hex(b.message), python.b);
      assertEquals(hex(a.finish(b.message)), python.key);
      assertEquals(hex(b.finish(a.message)), python.key);
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Files, folders and text, both ways.

test("ferry sends a file and an empty file to `wormhole receive`", () =>
  withServers((servers) =>
    withDirs(async (src, dst) => {
      await writeRandomFile(join(src, "data.bin"), 3 * 1024 * 1024 + 7);
      await Deno.writeFile(join(src, "empty.txt"), new Uint8Array(0));
      for (const name of ["data.bin", "empty.txt"]) {
        const { sender, code } = await ferrySend(servers, [join(src, name)]);
        const received = await wormholeReceive(servers, code, dst);
        const sent = await sender.finish();
        assertEquals(received.code, 0, received.stderr);
        assertEquals(sent.code, 0, sent.stderr);
        assert(await sameFile(join(src, name), join(dst, name)), `${name} differs`);
      }
    })
  ));

test("`wormhole send` sends a file and an empty file to ferry", () =>
  withServers((servers) =>
    withDirs(async (src, dst) => {
      await writeRandomFile(join(src, "data.bin"), 2 * 1024 * 1024 + 3);
      await Deno.writeFile(join(src, "empty.txt"), new Uint8Array(0));
      for (const name of ["data.bin", "empty.txt"]) {
        const { cli, code } = await wormholeSend(servers, [name], src);
        const received = await ferryReceive(servers, code, ["--dir", dst]);
        const sent = await cli.finish();
        assertEquals(received.code, 0, received.stderr);
        assertEquals(sent.code, 0, sent.stderr);
        assertMatch(sent.stderr, /Transfer complete/);
        assert(await sameFile(join(src, name), join(dst, name)), `${name} differs`);
      }
      // Nothing but the files: no part file left behind.
      assertEquals([...(await listTree(dst)).keys()].sort(), ["data.bin", "empty.txt"]);
    })
  ));

async function makeTree(root: string): Promise<void> {
  await Deno.mkdir(join(root, "tree/sub/deeper"), { recursive: true });
  await Deno.writeTextFile(join(root, "tree/a.txt"), "hello\n");
  await writeRandomFile(join(root, "tree/sub/b.bin"), 300_000, 5);
  await Deno.writeFile(join(root, "tree/sub/deeper/empty"), new Uint8Array(0));
}

test("folders both ways: ferry's zip unpacks in `wormhole receive`, wormhole's in ferry", () =>
  withServers((servers) =>
    withDirs(async (src, dst) => {
      await makeTree(src);
      const expected = ["tree/a.txt", "tree/sub/b.bin", "tree/sub/deeper/empty"];
      const there = await tempDir();
      try {
        const { sender, code } = await ferrySend(servers, [join(src, "tree")]);
        const received = await wormholeReceive(servers, code, there);
        assertEquals((await sender.finish()).code, 0);
        assertEquals(received.code, 0, received.stderr);
        for (const name of expected) {
          assert(await sameFile(join(src, name), join(there, name)), name);
        }
      } finally {
        await Deno.remove(there, { recursive: true });
      }
      const { cli, code } = await wormholeSend(servers, ["tree"], src);
      const received = await ferryReceive(servers, code, ["--dir", dst]);
      assertEquals(received.code, 0, received.stderr);
      assertEquals((await cli.finish()).code, 0);
      for (const name of expected) assert(await sameFile(join(src, name), join(dst, name)), name);
    })
  ));

test("text messages both ways are shown on stdout", () =>
  withServers(async (servers) => {
    const cwd = await tempDir();
    try {
      const { cli, code } = await wormholeSend(servers, ["--text", "hello from wormhole ✓"], cwd);
      const received = await ferryReceive(servers, code, []);
      assertEquals(received.code, 0, received.stderr);
      assertEquals(received.stdout, "hello from wormhole ✓\n");
      assertEquals((await cli.finish()).code, 0);

      const { sender, code: code2 } = await ferrySend(servers, ["--text", "hi from ferry"]);
      const got = await wormholeReceive(servers, code2, cwd);
      assertEquals((await sender.finish()).code, 0);
      // After the prompt for the code (typed on stdin), the message.
      assertMatch(got.stdout, /(^|: )hi from ferry\n$/);
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  }));

test("a wrong code is exit 4 and nothing is written; the code never appears in output", () =>
  withServers((servers) =>
    withDirs(async (src, dst) => {
      await Deno.writeTextFile(join(src, "secret.txt"), "secret");
      const { cli, code } = await wormholeSend(servers, ["secret.txt"], src);
      const wrong = `${code.split("-")[0]}-wrong-guess`;
      const received = await ferryReceive(servers, wrong, ["--dir", dst]);
      assertEquals(received.code, 4, received.stderr);
      assertMatch(received.stderr, /wrong code/);
      assert(!received.stderr.includes(wrong) && !received.stderr.includes(code));
      assertNotEquals0((await cli.finish()).code);
      assertEquals([...(await listTree(dst)).keys()], []);
    })
  ));

function assertNotEquals0(code: number): void {
  assert(code !== 0, "the wormhole side should fail too");
}

test("both sides --no-listen: the transfer goes through the transit relay, both ways", () =>
  withServers((servers) =>
    withDirs(async (src, dst) => {
      await writeRandomFile(join(src, "big.bin"), 5 * 1024 * 1024, 9);
      const { sender, code } = await ferrySend(servers, ["--no-listen", join(src, "big.bin")]);
      const received = await wormholeReceive(servers, code, dst, ["--no-listen"]);
      assertEquals((await sender.finish()).code, 0);
      assertEquals(received.code, 0, received.stderr);
      assertMatch(received.stderr, /Receiving \(->relay:/);
      assert(await sameFile(join(src, "big.bin"), join(dst, "big.bin")));
      await Deno.remove(join(dst, "big.bin"));

      const { cli, code: code2 } = await wormholeSend(servers, ["--no-listen", "big.bin"], src);
      const got = await ferryReceive(servers, code2, ["--no-listen", "--dir", dst]);
      assertEquals(got.code, 0, got.stderr);
      assertMatch((await cli.finish()).stderr, /Sending \(->relay:/);
      assert(await sameFile(join(src, "big.bin"), join(dst, "big.bin")));
    })
  ));

test("an existing file is refused (exit 6) unless --overwrite; the sender is told", () =>
  withServers((servers) =>
    withDirs(async (src, dst) => {
      await Deno.writeTextFile(join(src, "notes.txt"), "new");
      await Deno.writeTextFile(join(dst, "notes.txt"), "mine");
      const { cli, code } = await wormholeSend(servers, ["notes.txt"], src);
      const received = await ferryReceive(servers, code, ["--dir", dst]);
      assertEquals(received.code, 6, received.stderr);
      assertEquals(await Deno.readTextFile(join(dst, "notes.txt")), "mine");
      assertMatch((await cli.finish()).stderr, /refusing to overwrite/);

      const again = await wormholeSend(servers, ["notes.txt"], src);
      const overwritten = await ferryReceive(servers, again.code, ["--dir", dst, "--overwrite"]);
      assertEquals(overwritten.code, 0, overwritten.stderr);
      assertEquals(await Deno.readTextFile(join(dst, "notes.txt")), "new");
      await again.cli.finish();
    })
  ));

// ---------------------------------------------------------------------------------------------
// A hostile sender: ferry's own wormhole code, in this process, offering a crafted zip.

async function hostileSend(servers: Servers, code: string, offer: object, zip: Uint8Array) {
  const wormhole = await Wormhole.open({ mailboxUrl: servers.mailbox, code, timeoutMs: 20_000 });
  const transit = Transit.start({
    role: "sender",
    key: wormhole.deriveKey(`${APP_ID}/transit-key`),
    listen: true,
    timeoutMs: 20_000,
  });
  wormhole.send({ transit: await transit.message() });
  wormhole.send({ offer });
  let theirs: unknown;
  for (let i = 0; i < 4; i++) {
    const message = await wormhole.receive("answer");
    if (message.transit) theirs = message.transit;
    if (message.answer || message.error) break;
  }
  const pipe = await transit.connect(theirs);
  await wormhole.close("happy");
  try {
    for (let at = 0; at < zip.length; at += 65536) await pipe.send(zip.subarray(at, at + 65536));
    await pipe.receive().catch(() => null);
  } finally {
    pipe.close();
  }
}

test("a hostile zip: '..', absolute and link entries write nothing outside, a bomb is cut off", () =>
  withServers((servers) =>
    withDirs(async (outside, dst) => {
      const unix = (mode: number) => ({ os: 3, attrs: (mode << 16) >>> 0 });
      const zip = zipSync({
        "good.txt": new TextEncoder().encode("good"),
        [`../${outside.split("/").pop()}/escaped.txt`]: new TextEncoder().encode("bad"),
        "/tmp/absolute.txt": new TextEncoder().encode("bad"),
        "sub/../../up.txt": new TextEncoder().encode("bad"),
        "link": [new TextEncoder().encode(outside), unix(0o120777)],
      });
      const code = "31-hostile-zip";
      const offer = (z: Uint8Array, numbytes: number) => ({
        directory: {
          mode: "zipfile/deflated",
          dirname: "loot",
          zipsize: z.length,
          numbytes,
          numfiles: 5,
        },
      });
      const [received] = await Promise.all([
        ferryReceive(servers, code, ["--dir", dst]),
        hostileSend(servers, code, offer(zip, 100), zip).catch(() => {}),
      ]);
      assertEquals(received.code, 6, received.stderr);
      assertMatch(received.stderr, /refused/);
      assertEquals(await Deno.readTextFile(join(dst, "loot/good.txt")), "good");
      assertEquals([...(await listTree(outside)).keys()], []);
      assert(!(await exists("/tmp/absolute.txt")));
      assert(!(await exists(join(dst, "up.txt"))));
      // The link entry is at most a regular file holding the link's text, never a link.
      const link = await Deno.lstat(join(dst, "loot/link")).catch(() => null);
      assert(link === null || link.isFile, "a zip entry became a symlink");

      // 64 MiB of zeros in a zip of ~64 KiB, announced as 1 MiB: cut off, nothing left whole.
      const bomb = zipSync({ "zeros.bin": new Uint8Array(64 * 1024 * 1024) }, { level: 9 });
      const [cut] = await Promise.all([
        ferryReceive(servers, "32-zip-bomb", ["--dir", dst]),
        hostileSend(servers, "32-zip-bomb", {
          ...offer(bomb, 1024 * 1024),
          directory: { ...offer(bomb, 1024 * 1024).directory, dirname: "bomb" },
        }, bomb).catch(() => {}),
      ]);
      assertEquals(cut.code, 6, cut.stderr);
      assertMatch(cut.stderr, /unpacks to more than/);
      assertEquals([...(await listTree(join(dst, "bomb"))).keys()], []);
    })
  ));

// ---------------------------------------------------------------------------------------------
// Transit records, without servers.

async function tcpPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const pair = await Promise.all([
    listener.accept(),
    Deno.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port }),
  ]);
  listener.close();
  return pair;
}

Deno.test("transit records survive short writes, and a replayed or altered record is refused", async () => {
  await loadSecretBox();
  const [server, client] = await tcpPair();
  const a = new Uint8Array(32).fill(1), b = new Uint8Array(32).fill(2);
  // The sending link writes at most 1000 bytes a call, as a busy socket may.
  const short = {
    ...tcpLink(client, "direct"),
    write: (bytes: Uint8Array) => client.write(bytes.subarray(0, 1000)),
  };
  const sending = new RecordPipe(short, a, b);
  const receiving = new RecordPipe(tcpLink(server, "direct"), b, a);
  const records = [randomBytes(300_000, 3), new Uint8Array(0), randomBytes(70_000, 4)];
  const sent = (async () => {
    for (const record of records) await sending.send(record);
  })();
  for (const record of records) {
    assertEquals(await withTimeout(receiving.receive(), 10_000, "a whole record"), record);
  }
  await sent;
  // A record sealed for counter 0 again (a replay) is refused.
  await new RecordPipe(short, a, b).send(new Uint8Array([1, 2, 3]));
  await assertRejects(() => receiving.receive(), IntegrityError, "out of order");
  sending.close();
  receiving.close();

  // One flipped bit in the sealed bytes of a record in order is refused too.
  const [server2, client2] = await tcpPair();
  const flipping = {
    ...tcpLink(client2, "direct"),
    write: (bytes: Uint8Array) => {
      const altered = bytes.slice();
      altered[altered.length - 1]! ^= 1;
      return client2.write(altered);
    },
  };
  const receiving2 = new RecordPipe(tcpLink(server2, "direct"), b, a);
  await new RecordPipe(flipping, a, b).send(new Uint8Array([4, 5, 6]));
  await assertRejects(() => receiving2.receive(), IntegrityError, "authentication");
  client2.close();
  receiving2.close();
});

/** Waits (bounded) until `path` holds more than `bytes`. */
async function untilGrown(path: string, bytes: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const info = await Deno.stat(path).catch(() => null);
    if (info && info.size > bytes) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${path} did not grow past ${bytes} bytes`);
}

test("a `wormhole send` that stalls mid-file is cut within --timeout: receiver.ts --wormhole exits 3", async () => {
  await withServers(async (servers) => {
    await withDirs(async (src, dst) => {
      await writeRandomFile(join(src, "big.bin"), 256 * 1024 * 1024, 61);
      const { cli, code } = await wormholeSend(servers, ["big.bin"], src);
      const receiving = ferryReceive(servers, code, ["--dir", dst, "--timeout", "3"]);
      await untilGrown(join(dst, "big.bin.ferry-part"), 1024 * 1024);
      // The peer freezes: no byte, no close. Before, ferry waited forever.
      cli.child.kill("SIGSTOP");
      const stopped = Date.now();
      try {
        const received = await withTimeout(receiving, 20_000, "receiver.ts --wormhole");
        const took = Date.now() - stopped;
        assertEquals(received.code, 3, received.stderr);
        assertMatch(received.stderr, /peer (stopped responding|too slow)/);
        assert(took < 9000, `cut after ${took} ms`);
      } finally {
        cli.child.kill("SIGKILL");
        await cli.child.status;
      }
    });
  });
});

test("a `wormhole receive` that stalls mid-file is cut within --timeout: sender.ts --wormhole exits 3", async () => {
  await withServers(async (servers) => {
    await withDirs(async (src, dst) => {
      await writeRandomFile(join(src, "big.bin"), 256 * 1024 * 1024, 62);
      const { sender, code } = await ferrySend(servers, [join(src, "big.bin"), "--timeout", "3"]);
      const cli = wormhole(
        [...servers.wormhole, "receive", "--accept-file"],
        dst,
        `${code}\n`,
      );
      await cli.waitFor(/Receiving/);
      await new Promise((resolve) => setTimeout(resolve, 500));
      cli.child.kill("SIGSTOP");
      const stopped = Date.now();
      try {
        const sent = await sender.finish(20_000);
        const took = Date.now() - stopped;
        assertEquals(sent.code, 3, sent.stderr);
        assertMatch(sent.stderr, /peer (stopped responding|too slow)/);
        assert(took < 9000, `cut after ${took} ms`);
      } finally {
        cli.child.kill("SIGKILL");
        await cli.child.status;
      }
    });
  });
});

Deno.test("transit hints are bounded: 8 relay hints of 16 addresses and 8 direct ones make at most 3 relays and 8 direct dials", async () => {
  const { parseHints } = await import("../lib/wormhole/transit.ts");
  const many = (n: number, at: (i: number) => string) =>
    [...Array(n).keys()].map((i) => ({ type: "direct-tcp-v1", hostname: at(i), port: 4000 + i }));
  const message = {
    "hints-v1": [
      ...[...Array(8).keys()].map((j) => ({
        type: "relay-v1",
        hints: many(16, (i) => `10.9.${j}.${i}`),
      })),
      ...many(8, (i) => `10.8.0.${i}`),
    ],
  };
  const { direct, relays } = parseHints(message);
  assert(relays.length <= 3, `${relays.length} relays`);
  assert(direct.length <= 8, `${direct.length} direct`);
  // Addresses nobody could mean are never dialled; loopback and names are.
  const odd = parseHints({
    "hints-v1": ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1", "::1", "peer.lan"]
      .map((hostname) => ({ type: "direct-tcp-v1", hostname, port: 4001 })),
  });
  assertEquals(odd.direct.map((a) => a.hostname), ["::1", "peer.lan"]);
});

test("receiver.ts --wormhole interrupted promises no resume, and the next try replaces its partial file", async () => {
  await withServers(async (servers) => {
    await withDirs(async (src, dst) => {
      await writeRandomFile(join(src, "big.bin"), 256 * 1024 * 1024, 63);
      const first = await wormholeSend(servers, ["big.bin"], src);
      // Started by hand: without a terminal it says nothing until the end, so there is no line
      // to wait for; the partial file says when it is under way.
      const receiver = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", RECEIVER, "--wormhole", ...servers.ferry, "--dir", dst],
        env: { FERRY_CODE: first.code, NO_COLOR: "1" },
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      try {
        await untilGrown(join(dst, "big.bin.ferry-part"), 1024 * 1024);
        receiver.kill("SIGINT");
        const stopped = await withTimeout(receiver.output(), 20_000, "the interrupted receiver");
        const stderr = new TextDecoder().decode(stopped.stderr);
        assertEquals(stopped.code, 130, stderr);
        // magic-wormhole has no offset to resume from: ferry does not promise one.
        assert(!/to resume/.test(stderr), stderr);
        assertMatch(stderr, /the next transfer starts again from the beginning/);
      } finally {
        try {
          first.cli.child.kill("SIGKILL");
        } catch {
          // It gave up already, its receiver gone.
        }
        await first.cli.child.status;
      }
      // The same file again: before, ferry refused it (big.bin.ferry-part is in the way).
      const second = await wormholeSend(servers, ["big.bin"], src);
      const received = await ferryReceive(servers, second.code, ["--dir", dst]);
      assertEquals(received.code, 0, received.stderr);
      assert(await sameFile(join(src, "big.bin"), join(dst, "big.bin")));
      assertEquals(await exists(join(dst, "big.bin.ferry-part")), false);
      await second.cli.finish();
    });
  });
});
