/**
 * The channel's idle timeout: one watchdog for all socket operations, on real loopback sockets.
 */

import { assert, assertEquals, assertRejects } from "./assert.ts";
import { Channel } from "../lib/channel.ts";
import { ConnectionError } from "../lib/errors.ts";
import { FRAME_DONE } from "../protocol.ts";
import { tcpLink } from "../lib/transport.ts";

/** A connected pair of loopback sockets; both are closed after `fn`, whatever happens. */
async function withPair(fn: (a: Deno.Conn, b: Deno.Conn) => Promise<void>): Promise<void> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [a, b] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  try {
    await fn(a, b);
  } finally {
    for (const conn of [a, b]) {
      try {
        conn.close();
      } catch {
        // Closed by the channel already.
      }
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("a read started late in an earlier operation's window still gets the whole idle time", async () => {
  await withPair(async (a, b) => {
    const channel = new Channel(a, { timeoutMs: 400 });
    const peer = new Channel(b);
    // One operation at t=0, then a read at t=300 that the peer answers at t=600: 300 ms of
    // waiting, under the 400 ms limit, though 600 ms have passed since the first operation.
    await channel.send(FRAME_DONE, new Uint8Array(12));
    await channel.flush();
    await peer.recv();
    await sleep(300);
    const reading = channel.recv();
    await sleep(300);
    await peer.send(FRAME_DONE, new Uint8Array(12));
    await peer.flush();
    assertEquals((await reading).type, FRAME_DONE);
    channel.close();
    peer.close();
  });
});

Deno.test("a read from a silent peer ends with a timeout after the idle time, not before", async () => {
  await withPair(async (a) => {
    const channel = new Channel(a, { timeoutMs: 300 });
    const started = Date.now();
    const err = await assertRejects(() => channel.recv(), ConnectionError);
    const waited = Date.now() - started;
    assert(/peer stopped responding/.test(err.message), err.message);
    assert(waited >= 290 && waited < 3000, `timed out after ${waited} ms`);
  });
});

Deno.test("setIdleTimeout() applies to an operation already waiting", async () => {
  await withPair(async (a) => {
    const channel = new Channel(a, { timeoutMs: 30_000 });
    const started = Date.now();
    const reading = assertRejects(() => channel.recv(), ConnectionError);
    channel.setIdleTimeout(200);
    await reading;
    const waited = Date.now() - started;
    assert(waited < 5000, `the 30 s timer was still in charge (${waited} ms)`);
  });
});

Deno.test("tcpLink() turns Nagle's algorithm off: the channel gathers small frames itself", async () => {
  await withPair((a) => {
    const calls: (boolean | undefined)[] = [];
    const tcp = a as Deno.TcpConn;
    const setNoDelay = tcp.setNoDelay.bind(tcp);
    tcp.setNoDelay = (noDelay?: boolean) => {
      calls.push(noDelay);
      setNoDelay(noDelay);
    };
    tcpLink(a as Deno.TcpConn, "direct");
    assertEquals(calls, [true]);
    return Promise.resolve();
  });
});
