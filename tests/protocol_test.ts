import { assert, assertEquals, assertThrows } from "./assert.ts";
import {
  checkRecordLength,
  decodeError,
  decodeFileEnd,
  decodeFileStart,
  decodeHello,
  decodeOffer,
  decodeOfferEnd,
  decodePreamble,
  decodeReplies,
  decodeRestart,
  decodeResults,
  decodeSkip,
  decodeSmallFiles,
  encodeError,
  encodeFileEnd,
  encodeFileStart,
  encodeHello,
  encodeOffer,
  encodeOfferEnd,
  encodePreamble,
  encodeReplies,
  encodeRestart,
  encodeResults,
  encodeSkip,
  encodeSmallFiles,
  type Entry,
  KIND_DIR,
  KIND_FILE,
  KIND_STREAM,
  MAX_CONTROL_PAYLOAD,
  MAX_MESSAGE_BYTES,
  MAX_PLAIN_BODY,
  MAX_RECORD_BODY,
  REPLY_HAVE,
  REPLY_REFUSE,
  REPLY_RESUME,
  REPLY_SEND,
  RESULT_IDENTICAL,
  RESULT_OK,
  ROLE_SENDER,
  SMALL_FILE_HEADER_SIZE,
} from "../protocol.ts";
import { ProtocolError, WIRE } from "../lib/errors.ts";

Deno.test("encodePreamble()/decodePreamble() round-trip and reject garbage and other versions", () => {
  assertEquals(decodePreamble(encodePreamble()), 3);
  assertThrows(
    () => decodePreamble(new TextEncoder().encode("GET / HT")),
    ProtocolError,
    "not speaking",
  );
  // Version 1 (which sent a digest with every file) is refused cleanly.
  assertThrows(() => decodePreamble(encodePreamble(1)), ProtocolError, "version 1");
  // Version 2 (where the receiver sent its digests) too.
  assertThrows(() => decodePreamble(encodePreamble(2)), ProtocolError, "version 2");
  assertThrows(() => decodePreamble(encodePreamble(4)), ProtocolError, "version 4");
});

Deno.test("checkRecordLength() rejects a length above MAX_RECORD_BODY before allocating", () => {
  checkRecordLength(MAX_RECORD_BODY, true);
  assertThrows(() => checkRecordLength(MAX_RECORD_BODY + 1, true), ProtocolError);
  assertThrows(() => checkRecordLength(0xffffffff, false), ProtocolError);
  assertThrows(() => checkRecordLength(0, false), ProtocolError);
  assertThrows(() => checkRecordLength(16, true), ProtocolError);
});

Deno.test("encodeHello()/decodeHello() round-trip; unknown roles and trailing bytes are refused", () => {
  assertEquals(decodeHello(encodeHello({ role: ROLE_SENDER, caps: 3 })), {
    role: ROLE_SENDER,
    caps: 3,
  });
  assertThrows(() => decodeHello(encodeHello({ role: 9, caps: 0 })), ProtocolError);
  assertThrows(() => decodeHello(new Uint8Array(6)), ProtocolError);
  assertThrows(() => decodeHello(new Uint8Array(2)), ProtocolError, "expected at least");
});

Deno.test("encodeOffer() splits large offers into batches that decodeOffer() reassembles", () => {
  const entries: Entry[] = [];
  for (let i = 0; i < 5000; i++) {
    entries.push({
      kind: KIND_FILE,
      mode: 0o644,
      mtime: 1700000000000 + i,
      size: i * 1000,
      name: `folder/${"x".repeat(100)}-${i}.txt`,
    });
  }
  entries.push({ kind: KIND_DIR, mode: 0o755, mtime: 0, size: 0, name: "folder" });
  entries.push({ kind: KIND_STREAM, mode: 0o644, mtime: 0, size: 0, name: "stdin" });
  const batches = encodeOffer(entries);
  assertEquals(batches.length > 1, true);
  for (const b of batches) assertEquals(b.length <= MAX_CONTROL_PAYLOAD, true);
  assertEquals(batches.flatMap((b) => decodeOffer(b)), entries);
});

Deno.test("decodeOffer() rejects truncated entries and unknown kinds; a bad name is only that entry's", () => {
  const [good] = encodeOffer([{ kind: KIND_FILE, mode: 0o644, mtime: 0, size: 1, name: "a" }]);
  assertThrows(() => decodeOffer(good!.subarray(0, good!.length - 1)), ProtocolError);
  const badKind = good!.slice();
  badKind[0] = 9;
  assertThrows(() => decodeOffer(badKind), ProtocolError, "kind 9");
  // Not UTF-8: decoded as the empty name, which the receiver refuses (code 9) for that entry.
  const badUtf8 = good!.slice();
  badUtf8[badUtf8.length - 1] = 0xff;
  assertEquals(decodeOffer(badUtf8)[0]!.name, "");
});

Deno.test("decodeOffer() refuses a 64-bit size beyond what can be counted exactly", () => {
  const [good] = encodeOffer([{ kind: KIND_FILE, mode: 0, mtime: 0, size: 1, name: "a" }]);
  const huge = good!.slice();
  huge.fill(0xff, 13, 21);
  assertThrows(() => decodeOffer(huge), ProtocolError, "too large");
});

Deno.test("64-bit fields carry every integer up to 2^53 - 1 exactly, big-endian", () => {
  const digest = new Uint8Array(16).fill(1);
  for (const offset of [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 12345, 2 ** 53 - 1]) {
    const bytes = encodeFileStart({ index: 0, offset, digest });
    assertEquals(decodeFileStart(bytes).offset, offset);
    const view = new DataView(bytes.buffer, bytes.byteOffset + 4, 8);
    assertEquals(view.getBigUint64(0), BigInt(offset));
  }
  const tooBig = encodeFileStart({ index: 0, offset: 0 });
  tooBig[4 + 1] = 0x20; // 2^53: the first value a number cannot hold exactly
  assertThrows(() => decodeFileStart(tooBig), ProtocolError, "too large");
  assertThrows(() => encodeFileStart({ index: 0, offset: -1 }), RangeError);
  assertThrows(() => encodeFileStart({ index: 0, offset: 2 ** 53, digest }), RangeError);
});

Deno.test("encodeReplies()/decodeReplies() round-trip every action; no reply carries a digest", () => {
  const replies = [
    { action: REPLY_SEND, offset: 0, reason: 0 },
    { action: REPLY_RESUME, offset: 12345, reason: 0 },
    { action: REPLY_HAVE, offset: 0, reason: 0 },
    { action: REPLY_REFUSE, offset: 0, reason: 8 },
  ];
  const [batch] = encodeReplies(replies);
  // SEND 1 byte, RESUME 1 + 8, HAVE 1, REFUSE 1 + 1: the receiver says what it has, never
  // what its bytes hash to (version 2 put a digest in RESUME and HAVE: an offline oracle).
  assertEquals(batch!.length, 1 + 9 + 1 + 2);
  assertEquals(decodeReplies(batch!), replies);
  assertThrows(() => decodeReplies(new Uint8Array([7])), ProtocolError, "action 7");
  // A refusal's reason is a wire error code other than 1; a resume starts past byte 0.
  assertThrows(() => decodeReplies(new Uint8Array([3, 1])), ProtocolError, "refusal reason");
  assertThrows(() => decodeReplies(new Uint8Array([3, 0x80])), ProtocolError, "refusal reason");
  assertThrows(() => decodeReplies(new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, 0])), ProtocolError);
});

Deno.test("FILE carries the sender's digest of a resumed prefix; SKIP its whole-file digest; RESTART an index", () => {
  const digest = new Uint8Array(16).fill(9);
  const resumed = encodeFileStart({ index: 7, offset: 100, digest });
  assertEquals(resumed.length, 4 + 8 + 16);
  assertEquals(decodeFileStart(resumed), { index: 7, offset: 100, digest });
  const fresh = encodeFileStart({ index: 7, offset: 0 });
  assertEquals(fresh.length, 4 + 8);
  assertEquals(decodeFileStart(fresh).offset, 0);
  // A resume without its digest, or a digest after offset 0, is malformed.
  assertThrows(() => encodeFileStart({ index: 7, offset: 100 }), RangeError);
  assertThrows(() => decodeFileStart(resumed.subarray(0, 12)), ProtocolError, "FILE");
  assertThrows(() => decodeFileStart(new Uint8Array(28)), ProtocolError, "trailing");
  assertEquals(decodeSkip(encodeSkip({ index: 3, digest })), { index: 3, digest });
  assertThrows(() => decodeSkip(new Uint8Array(4)), ProtocolError, "SKIP");
  assertEquals(decodeRestart(encodeRestart(5)), 5);
  assertThrows(() => decodeRestart(new Uint8Array(5)), ProtocolError, "RESTART");
});

Deno.test("RESULT statuses: 0 ok, 0x80 identical, 2-127 the wire error code; 1 and the rest are refused", () => {
  assertEquals(RESULT_OK, 0);
  assertEquals(RESULT_IDENTICAL, 0x80);
  // No status shares a number with an error code: identical is above every one of them.
  assert(!Object.values(WIRE).includes(RESULT_IDENTICAL as never));
  assert(!Object.values(WIRE).includes(RESULT_OK as never));
  const good = [{ index: 1, status: RESULT_IDENTICAL }, { index: 2, status: WIRE.EXISTS }];
  assertEquals(decodeResults(encodeResults(good)[0]!), good);
  for (const status of [1, 0x81, 0xff]) {
    const bad = encodeResults([{ index: 1, status }])[0]!;
    assertThrows(() => decodeResults(bad), ProtocolError, "status");
  }
});

Deno.test("small frames round-trip: OFFER_END, FILE, FILE_END, RESULT, SMALL_FILES, ERROR", () => {
  assertEquals(decodeOfferEnd(encodeOfferEnd({ count: 3, totalBytes: 2 ** 40 })), {
    count: 3,
    totalBytes: 2 ** 40,
  });
  const digest = new Uint8Array(16);
  assertEquals(decodeFileStart(encodeFileStart({ index: 7, offset: 1 << 30, digest })), {
    index: 7,
    offset: 1 << 30,
    digest,
  });
  assertEquals(decodeFileEnd(encodeFileEnd({ size: 5 })), { size: 5 });
  assertThrows(() => decodeFileEnd(new Uint8Array(24)), ProtocolError, "FILE_END");
  const results = [{ index: 2, status: 7 }, { index: 9, status: 0 }];
  assertEquals(decodeResults(encodeResults(results)[0]!), results);
  const items = [
    { index: 4, data: new Uint8Array([9, 9]) },
    { index: 5, data: new Uint8Array(0) },
  ];
  assertEquals(encodeSmallFiles(items).length, 2 * SMALL_FILE_HEADER_SIZE + 2);
  assertEquals(decodeSmallFiles(encodeSmallFiles(items)), items);
  const cut = encodeSmallFiles(items).subarray(0, 13);
  assertThrows(() => decodeSmallFiles(cut), ProtocolError, "SMALL_FILES");
  assertEquals(decodeError(encodeError({ code: 3, message: "wrong code" })), {
    code: 3,
    message: "wrong code",
  });
});

Deno.test("encodeError() cuts long messages to MAX_MESSAGE_BYTES", () => {
  const decoded = decodeError(encodeError({ code: 1, message: "x".repeat(10_000) }));
  assertEquals(decoded.message.length, MAX_MESSAGE_BYTES);
});

Deno.test("decodePreamble() answers another version with wire code 2, garbage with 1", () => {
  const other = encodePreamble(2);
  const err = assertThrows(() => decodePreamble(other), ProtocolError);
  assertEquals((err as ProtocolError).wireCode, WIRE.VERSION);
  const junk = assertThrows(() => decodePreamble(new Uint8Array(8)), ProtocolError);
  assertEquals((junk as ProtocolError).wireCode, WIRE.PROTOCOL);
});

Deno.test("checkRecordLength(): a plaintext record is at most MAX_PLAIN_BODY, a sealed one 16 more", () => {
  checkRecordLength(MAX_PLAIN_BODY, false);
  assertThrows(() => checkRecordLength(MAX_PLAIN_BODY + 1, false), ProtocolError);
  checkRecordLength(MAX_PLAIN_BODY + 16, true);
  assertThrows(() => checkRecordLength(MAX_PLAIN_BODY + 17, true), ProtocolError);
});
