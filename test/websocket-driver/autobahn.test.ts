/**
 * Autobahn-style cases end to end: frames written by hand go through a
 * memory pipe, the HTTP server, the WebSocketHandler, the driver and the
 * engine to the demo's `/ws/echo` (what Autobahn's fuzzingclient does to a
 * server), and the other way to the client of `websocketConnect` running an
 * echo loop (what its fuzzingserver does to a client). One or a few
 * representative cases per section: 1 framing, 2 pings and pongs, 3
 * reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close, 9 limits and
 * sizes, 12/13 permessage-deflate with each negotiation parameter. The
 * engine's own vectors are in test/websocket/autobahn.test.ts.
 */
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import * as zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { routes } from "../../examples/app";
import { websocketConnect, type WebSocketClientConnection, type WebSocketConnectOptions } from "../../src/client/websocket";
import { MemoryTransport, type MemoryConnection } from "../../src/transports/memory";
import {
  BINARY,
  CLOSE,
  closeBody,
  closeOf,
  deflateDistances,
  deflateMessage,
  flushMemory,
  frame,
  inflateMessage,
  parseFrames,
  PING,
  PONG,
  rawPeer,
  serveWs,
  TAIL,
  TEXT,
  utf8,
  type Frame,
  type RawPeer,
} from "./helpers";

interface CaseResult {
  frames: Frame[];
  /** The server closed the TCP connection. */
  closed: boolean;
}

/** Opens `/ws/echo` of the demo, sends `frames` (in pipe pieces of `split` bytes), and answers the server's close. */
async function echoCase(frames: Uint8Array[], options: { split?: number; extensions?: string; answerClose?: boolean } = {}): Promise<CaseResult & { headers: Map<string, string> }> {
  const t = serveWs(routes());
  const headers: Record<string, string> = options.extensions === undefined ? {} : { "Sec-WebSocket-Extensions": options.extensions };
  const ws = await t.open("/ws/echo", headers, options.split === undefined ? {} : { split: options.split });
  for (const f of frames) ws.send(f);
  await flushMemory();
  const got = ws.frames();
  if (options.answerClose !== false && got.some((f) => f.opcode === CLOSE) && !ws.closed) {
    ws.send(frame(CLOSE, closeBody(1000)));
    await flushMemory();
  }
  return { frames: ws.frames(), closed: ws.closed, headers: ws.headers };
}

/** Close codes that may be sent (RFC 6455 §7.4, with the IANA-registered 1012-1014). */
const VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
/** Close codes that may not: reserved (1004-1006, 1015), unassigned, or out of range. */
const INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];

/** κόσμε, then a code point above U+10FFFF (fails at its second byte), then "edited": Autobahn 6.4's pieces. */
const P1 = Buffer.from("cebae1bdb9cf83cebcceb5", "hex");
const P2 = Buffer.from("f4908080", "hex");
const P3 = utf8("edited");

/**
 * Text messages (over the 1 KiB compression threshold) whose repeats lie
 * more than 256 bytes back: a random 400-character block twice, then the
 * block of the message before (so that, over one context, the next message
 * reaches into the last one). A compressor with a window over 8 bits finds
 * those matches; one that keeps to 8 bits cannot.
 */
function farMessages(count: number): string[] {
  let seed = 12345;
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const block = () =>
    Array.from({ length: 400 }, () => alphabet[((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) % alphabet.length]).join("");
  const out: string[] = [];
  let previous = block();
  for (let i = 0; i < count; i++) {
    const b = block();
    out.push(`${i}:${b}${b}${previous}`);
    previous = b;
  }
  return out;
}

/**
 * Checks compressed frames against an 8-bit window (RFC 7692 §7.1.2.1:
 * "the LZ77 sliding window ... is 2^8 bytes"): zlib inflates them with
 * windowBits 8 (it accepts 8 for raw inflate), and, since zlib does not
 * check a distance into the output of the same call, every match is also
 * decoded here and must reach back 256 bytes at most. The same messages
 * compressed with a 15-bit window must reach further (so the check can fail).
 */
function expect8BitWindow(frames: Frame[], messages: string[], resets: boolean): void {
  expect(deflateDistances(Buffer.concat([deflateMessage(messages[1]!), TAIL])).maxDistance).toBeGreaterThan(256);
  expect(frames.map((f) => f.rsv1)).toEqual(messages.map(() => true));
  if (resets) expect(frames.map((f) => inflateMessage(f.payload, 8).toString())).toEqual(messages);
  else expect(inflateStream(frames, 8)).toEqual(messages);
  let history: Buffer = Buffer.alloc(0);
  frames.forEach((f, i) => {
    const { output, maxDistance } = deflateDistances(Buffer.concat([f.payload, TAIL]), resets ? undefined : history);
    expect(output.toString()).toBe(messages[i]);
    expect(maxDistance).toBeLessThanOrEqual(256);
    history = Buffer.concat([history, output]);
  });
}

const summary = (frames: Frame[]) =>
  frames.map((f) => (f.opcode === CLOSE ? `close ${closeOf(f).code ?? "none"}` : `${f.opcode} ${f.payload.length}`));

const failedWith = (r: CaseResult, code: number) => {
  const last = r.frames[r.frames.length - 1]!;
  expect(last.opcode).toBe(CLOSE);
  expect(closeOf(last).code).toBe(code);
  expect(r.closed).toBe(true);
};

describe("the demo's /ws/echo, section 1: framing", () => {
  it.each([0, 125, 126, 127, 65535, 65536])("1.1: echoes a %i-byte text message", async (n) => {
    const payload = "*".repeat(n);
    const r = await echoCase([frame(TEXT, payload)]);
    expect(r.frames).toHaveLength(1);
    expect(r.frames[0]!.opcode).toBe(TEXT);
    expect(r.frames[0]!.payload.toString()).toBe(payload);
  });

  it("1.1.8: 65536 bytes of text in chops of 997 bytes", async () => {
    const payload = "*".repeat(65536);
    const r = await echoCase([frame(TEXT, payload)], { split: 997 });
    expect(r.frames[0]!.payload.toString()).toBe(payload);
  });

  it("1.2: echoes binary messages of 0..65536 bytes, byte by byte for the small ones", async () => {
    for (const n of [0, 125, 126, 65536]) {
      const payload = Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 0xfe) & 0xff));
      const r = await echoCase([frame(BINARY, payload)], n < 200 ? { split: 1 } : {});
      expect(r.frames.map((f) => f.opcode)).toEqual([BINARY]);
      expect(r.frames[0]!.payload.equals(payload)).toBe(true);
    }
  });
});

describe("section 2: pings and pongs", () => {
  it("2.1-2.4: answers pings with pongs carrying the same payload (empty, text, binary, 125 bytes)", async () => {
    const payloads = [Buffer.alloc(0), utf8("Hello, world!"), Buffer.from([0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0, 0xff]), Buffer.alloc(125, 0xfe)];
    const r = await echoCase(payloads.map((p) => frame(PING, p)));
    expect(r.frames.map((f) => f.opcode)).toEqual([PONG, PONG, PONG, PONG]);
    expect(r.frames.map((f) => f.payload.toString("hex"))).toEqual(payloads.map((p) => Buffer.from(p).toString("hex")));
  });

  it("2.5: a ping of 126 bytes fails the connection with 1002", async () => {
    failedWith(await echoCase([frame(PING, Buffer.alloc(126))]), 1002);
  });

  it("2.6: a 125-byte ping sent byte by byte", async () => {
    const r = await echoCase([frame(PING, Buffer.alloc(125, 0x61))], { split: 1 });
    expect(summary(r.frames)).toEqual([`${PONG} 125`]);
  });

  it("2.7-2.9: unsolicited pongs are ignored; a ping after them is answered", async () => {
    const r = await echoCase([frame(PONG), frame(PONG, "unsolicited"), frame(PING, "ping after pong")]);
    expect(r.frames.map((f) => [f.opcode, f.payload.toString()])).toEqual([[PONG, "ping after pong"]]);
  });

  it("2.10: ten pings in a row get ten pongs", async () => {
    const r = await echoCase(Array.from({ length: 10 }, (_, i) => frame(PING, `payload-${i}`)));
    expect(r.frames.map((f) => f.payload.toString())).toEqual(Array.from({ length: 10 }, (_, i) => `payload-${i}`));
  });
});

describe("section 3: reserved bits", () => {
  it("3.1: RSV2 set on a text frame fails with 1002", async () => {
    failedWith(await echoCase([frame(TEXT, "small", { rsv2: true })]), 1002);
  });

  it("3.2: a good message is echoed, then RSV3 fails with 1002, and a ping after it is not answered", async () => {
    const r = await echoCase([frame(TEXT, "small"), frame(TEXT, "small", { rsv3: true }), frame(PING)]);
    expect(summary(r.frames)).toEqual([`${TEXT} 5`, "close 1002"]);
  });

  it("3.7: RSV1 on a ping (no extension can claim it) fails with 1002", async () => {
    failedWith(await echoCase([frame(PING, "", { rsv1: true })]), 1002);
  });
});

describe("section 4: opcodes", () => {
  it.each([3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf])("4.x: reserved opcode %i fails with 1002", async (opcode) => {
    const r = await echoCase([frame(TEXT, "before"), frame(opcode, "reserved"), frame(PING)]);
    expect(summary(r.frames)).toEqual([`${TEXT} 6`, "close 1002"]);
  });
});

describe("section 5: fragmentation", () => {
  it("5.1/5.2: a fragmented ping or pong fails with 1002", async () => {
    failedWith(await echoCase([frame(PING, "frag", { fin: false }), frame(0, "ment")]), 1002);
    failedWith(await echoCase([frame(PONG, "frag", { fin: false }), frame(0, "ment")]), 1002);
  });

  it("5.3/5.4: a text message in two fragments is echoed whole", async () => {
    const r = await echoCase([frame(TEXT, "fragment1", { fin: false }), frame(0, "fragment2")]);
    expect(r.frames.map((f) => f.payload.toString())).toEqual(["fragment1fragment2"]);
  });

  it("5.6-5.8: a ping between fragments is answered first, the message after, chopped into single bytes", async () => {
    const r = await echoCase([frame(TEXT, "fragment1", { fin: false }), frame(PING, "pongme!"), frame(0, "fragment2")], { split: 1 });
    expect(r.frames.map((f) => [f.opcode, f.payload.toString()])).toEqual([
      [PONG, "pongme!"],
      [TEXT, "fragment1fragment2"],
    ]);
  });

  it("5.9-5.14: a continuation with nothing to continue fails with 1002", async () => {
    failedWith(await echoCase([frame(0, "fragment1", { fin: false }), frame(TEXT, "fragment2"), frame(0, "fragment3")]), 1002);
    failedWith(await echoCase([frame(0, "fragment1")]), 1002);
  });

  it("5.15-5.18: a new message before the last fragment fails with 1002", async () => {
    const r = await echoCase([frame(TEXT, "fragment1", { fin: false }), frame(0, "fragment2"), frame(0, "fragment3", { fin: false }), frame(TEXT, "fragment4")]);
    expect(summary(r.frames)).toEqual([`${TEXT} 18`, "close 1002"]);
  });

  it("5.19/5.20: fragments with pings between them, in bytes and whole", async () => {
    const frames = [
      frame(TEXT, "fragment1", { fin: false }),
      frame(0, "fragment2", { fin: false }),
      frame(PING, "pongme 1!"),
      frame(0, "fragment3", { fin: false }),
      frame(PING, "pongme 2!"),
      frame(0, "fragment4", { fin: false }),
      frame(0, "fragment5"),
    ];
    for (const split of [undefined, 3]) {
      const r = await echoCase(frames, split === undefined ? {} : { split });
      expect(r.frames.map((f) => f.payload.toString())).toEqual(["pongme 1!", "pongme 2!", "fragment1fragment2fragment3fragment4fragment5"]);
    }
  });
});

describe("section 6: UTF-8", () => {
  const hello = "κόσμε @ 𝄞 \u{10ffff} \u{ffff}";

  it("6.2/6.5: valid text split inside code points is echoed", async () => {
    const bytes = utf8(hello);
    const frames = [frame(TEXT, bytes.subarray(0, 1), { fin: false }), frame(0, bytes.subarray(1, 13), { fin: false }), frame(0, bytes.subarray(13))];
    const r = await echoCase(frames, { split: 1 });
    expect(r.frames.map((f) => f.payload.toString())).toEqual([hello]);
  });

  it.each([
    ["a lone continuation byte", [0x80]],
    ["an overlong encoding", [0xc0, 0xaf]],
    ["a surrogate", [0xed, 0xa0, 0x80]],
    ["a code point above U+10FFFF", [0xf4, 0x90, 0x80, 0x80]],
    ["a truncated sequence", [0xce, 0xba, 0xe1]],
  ])("6.3+: %s fails with 1007", async (_what, bad) => {
    failedWith(await echoCase([frame(TEXT, Buffer.concat([utf8("ok "), Buffer.from(bad)]))]), 1007);
  });

  it("6.4.1: fails fast, in the first fragment, before the message ends", async () => {
    const r = await echoCase([frame(TEXT, Buffer.from([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xf4, 0x90, 0x80, 0x80]), { fin: false })]);
    failedWith(r, 1007);
  });

  it("6.x: invalid UTF-8 in a close reason fails with 1007", async () => {
    failedWith(await echoCase([frame(CLOSE, Buffer.concat([closeBody(1000), Buffer.from([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64, 0x69, 0x74, 0x65, 0x64])]))], { answerClose: false }), 1007);
  });
});

describe("section 7: close", () => {
  it("7.1.1: a message then a close: echo, then the close echoed, then TCP closed by the server", async () => {
    const r = await echoCase([frame(TEXT, "Hello World!"), frame(CLOSE, closeBody(1000))], { answerClose: false });
    expect(summary(r.frames)).toEqual([`${TEXT} 12`, "close 1000"]);
    expect(r.closed).toBe(true);
  });

  it("7.1.2-7.1.4: after the close, a second close, a ping or a message are ignored", async () => {
    const r = await echoCase([frame(CLOSE, closeBody(1000)), frame(CLOSE, closeBody(1000)), frame(PING), frame(TEXT, "after")], { answerClose: false });
    expect(summary(r.frames)).toEqual(["close 1000"]);
  });

  it("7.1.5: a close between fragments is echoed; the last fragment is ignored", async () => {
    const r = await echoCase([frame(TEXT, "fragment1", { fin: false }), frame(CLOSE, closeBody(1000)), frame(0, "fragment2")], { answerClose: false });
    expect(summary(r.frames)).toEqual(["close 1000"]);
  });

  it("7.3.1: a close without a body is answered without a body", async () => {
    const r = await echoCase([frame(CLOSE)], { answerClose: false });
    expect(r.frames.map((f) => [f.opcode, f.payload.length])).toEqual([[CLOSE, 0]]);
  });

  it("7.3.2: a 1-byte close body fails with 1002", async () => {
    failedWith(await echoCase([frame(CLOSE, Buffer.from([0x03]))], { answerClose: false }), 1002);
  });

  it("7.3.3-7.3.5: close with a code, with a reason, with a 123-byte reason", async () => {
    for (const reason of ["", "Hello World!", "*".repeat(123)]) {
      const r = await echoCase([frame(CLOSE, closeBody(1000, reason))], { answerClose: false });
      expect(closeOf(r.frames[0]!).code).toBe(1000);
      expect(r.closed).toBe(true);
    }
  });

  it("7.3.6: a close body of 126 bytes (reason too long) fails with 1002", async () => {
    failedWith(await echoCase([frame(CLOSE, closeBody(1000, "*".repeat(124)))], { answerClose: false }), 1002);
  });

  it.each(VALID_CODES)("7.7: the valid code %i is echoed", async (code) => {
    const r = await echoCase([frame(CLOSE, closeBody(code))], { answerClose: false });
    expect(summary(r.frames)).toEqual([`close ${code}`]);
  });

  it.each(INVALID_CODES)("7.9/7.13: the invalid code %i fails with 1002", async (code) => {
    failedWith(await echoCase([frame(CLOSE, closeBody(code))], { answerClose: false }), 1002);
  });
});

describe("section 9: limits and sizes", () => {
  it("9.1.6/9.2.6: a 16 MiB text and binary message, in one frame", async () => {
    const text = "x".repeat(16 * 1024 * 1024);
    const r = await echoCase([frame(TEXT, text)]);
    expect(r.frames).toHaveLength(1);
    expect(r.frames[0]!.payload.length).toBe(text.length);
    expect(r.frames[0]!.payload.every((b) => b === 0x78)).toBe(true);
    const binary = Buffer.alloc(16 * 1024 * 1024, 0xfe);
    const rb = await echoCase([frame(BINARY, binary)], { split: 65536 });
    expect(rb.frames[0]!.payload.equals(binary)).toBe(true);
  });

  it("9.3/9.4: a 4 MiB message in 256-byte fragments", async () => {
    const fragment = Buffer.alloc(256, 0x2a);
    const count = (4 * 1024 * 1024) / 256;
    const frames = Array.from({ length: count }, (_, i) => frame(i === 0 ? BINARY : 0, fragment, { fin: i === count - 1 }));
    const r = await echoCase([Buffer.concat(frames)]);
    expect(r.frames).toHaveLength(1);
    expect(r.frames[0]!.payload.length).toBe(4 * 1024 * 1024);
  });

  it("9.7/9.8: 1000 small messages round trip in order", async () => {
    const frames = Array.from({ length: 1000 }, (_, i) => frame(i % 2 === 0 ? TEXT : BINARY, `message ${i}`));
    const r = await echoCase([Buffer.concat(frames)]);
    expect(r.frames.map((f) => f.payload.toString())).toEqual(Array.from({ length: 1000 }, (_, i) => `message ${i}`));
  });

  it("9.x: a message above the demo's 64 MiB limit fails with 1009 as soon as its header arrives", async () => {
    const header = Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0x04, 0, 0, 1, 0x37, 0xfa, 0x21, 0x3d]);
    failedWith(await echoCase([header], { answerClose: false }), 1009);
  });

  it("9.x: a frame header announcing exactly 64 MiB is accepted: no close after the header and a first 64 KiB", async () => {
    // The engine checks both limits at the header (the 64 MiB + 1 one above fails there), so
    // silence after the header and the start of the payload is the acceptance.
    const t = serveWs(routes());
    const ws = await t.open("/ws/echo");
    ws.send(Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0x04, 0, 0, 0, 0x37, 0xfa, 0x21, 0x3d]));
    ws.send(Buffer.alloc(65536, 0x61));
    await flushMemory();
    expect(ws.frames()).toEqual([]);
    expect([ws.ended, ws.closed]).toEqual([false, false]);
    ws.conn.destroy();
  });

  it("9.x: a compressed message of exactly 64 MiB once inflated is echoed; one byte more fails with 1009 while inflating", async () => {
    const size = 64 * 1024 * 1024;
    const exact = await echoCase([frame(BINARY, deflateMessage(Buffer.alloc(size)), { rsv1: true })], { extensions: "permessage-deflate" });
    expect(exact.frames.map((f) => [f.opcode, f.rsv1])).toEqual([[BINARY, true]]);
    const echoed = inflateMessage(exact.frames[0]!.payload);
    expect(echoed.length).toBe(size);
    expect(echoed.equals(Buffer.alloc(size))).toBe(true);
    failedWith(await echoCase([frame(BINARY, deflateMessage(Buffer.alloc(size + 1)), { rsv1: true })], { extensions: "permessage-deflate", answerClose: false }), 1009);
  });
});

/** Inflates every compressed frame of a stream with context takeover, as one deflate stream. */
function inflateStream(frames: Frame[], windowBits = 15): string[] {
  const inflate = (data: Buffer) => zlib.inflateRawSync(data, { windowBits, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  const out: string[] = [];
  let before = 0;
  const parts: Buffer[] = [];
  for (const f of frames) {
    parts.push(f.payload, Buffer.from([0, 0, 0xff, 0xff]));
    const all = inflate(Buffer.concat(parts));
    out.push(all.subarray(before).toString());
    before = all.length;
  }
  return out;
}

describe("sections 12/13: permessage-deflate, each negotiation parameter", () => {
  const messages = Array.from({ length: 10 }, (_, i) => `${i} ${"Hello, compressed world! ".repeat(60 + i)}`);

  it.each([
    ["13.1: the default offer", "permessage-deflate", "permessage-deflate", false],
    ["13.2: client_no_context_takeover", "permessage-deflate; client_no_context_takeover", "permessage-deflate; client_no_context_takeover", false],
    ["13.3: client_max_window_bits=8", "permessage-deflate; client_max_window_bits=8", "permessage-deflate; client_max_window_bits=8", false],
    ["13.4: client_max_window_bits=15", "permessage-deflate; client_max_window_bits=15", "permessage-deflate; client_max_window_bits=15", false],
    ["13.x: client_max_window_bits without a value", "permessage-deflate; client_max_window_bits", "permessage-deflate", false],
    ["13.x: server_no_context_takeover", "permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover", true],
    ["13.x: server_max_window_bits=9", "permessage-deflate; server_max_window_bits=9", "permessage-deflate; server_max_window_bits=9", false],
    ["13.x: server_max_window_bits=15", "permessage-deflate; server_max_window_bits=15", "permessage-deflate; server_max_window_bits=15", false],
    [
      "13.7: all four",
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9",
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9",
      true,
    ],
  ] as const)("%s", async (_name, offer, answer, serverResets) => {
    const clientBits = /client_max_window_bits=(\d+)/.exec(answer);
    const bits = clientBits === null ? 15 : Math.max(9, Number(clientBits[1]));
    const frames = messages.map((m) => frame(TEXT, deflateMessage(m, bits), { rsv1: true }));
    const r = await echoCase(frames, { extensions: offer });
    expect(r.headers.get("sec-websocket-extensions")).toBe(answer);
    expect(r.frames.every((f) => f.rsv1 && f.opcode === TEXT)).toBe(true);
    if (serverResets) expect(r.frames.map((f) => inflateMessage(f.payload).toString())).toEqual(messages);
    else expect(inflateStream(r.frames)).toEqual(messages);
    // With context takeover the later (longer but similar) messages come out no larger.
    if (!serverResets) expect(r.frames[9]!.payload.length).toBeLessThanOrEqual(r.frames[0]!.payload.length);
  });

  it.each([
    [
      "13.3 (False, 8)",
      "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=8",
      "permessage-deflate; client_no_context_takeover; server_max_window_bits=8",
      false,
    ],
    [
      "13.5 (True, 8)",
      "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=8; server_no_context_takeover",
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8",
      true,
    ],
  ] as const)("%s: server_max_window_bits=8; the echoes inflate with windowBits 8 and no match reaches back over 256 bytes", async (_name, offer, answer, resets) => {
    const messages = farMessages(8);
    // client_no_context_takeover: each message from a fresh compressor.
    const r = await echoCase(messages.map((m) => frame(TEXT, deflateMessage(m), { rsv1: true })), { extensions: offer });
    expect(r.headers.get("sec-websocket-extensions")).toBe(answer);
    expect8BitWindow(r.frames.filter((f) => f.opcode === TEXT), messages, resets);
  });

  it("12.x: a fragmented compressed message, and an uncompressed one between compressed ones", async () => {
    const text = "fragmented and compressed ".repeat(200);
    const z = deflateMessage(text);
    const third = Math.floor(z.length / 3);
    const r = await echoCase(
      [
        frame(TEXT, z.subarray(0, third), { rsv1: true, fin: false }),
        frame(0, z.subarray(third, 2 * third), { fin: false }),
        frame(0, z.subarray(2 * third)),
        frame(TEXT, "plain"),
      ],
      { extensions: "permessage-deflate; server_no_context_takeover", split: 7 },
    );
    expect(r.frames.map((f) => (f.rsv1 ? inflateMessage(f.payload).toString() : f.payload.toString()))).toEqual([text, "plain"]);
  });

  it("12.x: RSV1 on a continuation frame fails with 1002; corrupt deflate data fails with 1007", async () => {
    const z = deflateMessage("abc".repeat(100));
    failedWith(await echoCase([frame(TEXT, z.subarray(0, 5), { rsv1: true, fin: false }), frame(0, z.subarray(5), { rsv1: true })], { extensions: "permessage-deflate" }), 1002);
    failedWith(await echoCase([frame(BINARY, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), { rsv1: true })], { extensions: "permessage-deflate" }), 1007);
  });
});

// ---------------------------------------------------------------- the client

interface ClientCase {
  /** Frames the client sent (its echoes, pongs, close), unmasked. */
  frames: Frame[];
  /** The frames it had sent, and whether it was closing, once `frames` were delivered (before `then`). */
  before: Frame[];
  closingBefore: boolean;
  client: WebSocketClientConnection;
  server: RawPeer<MemoryConnection>;
}

/**
 * A hand-written server accepts the client (answering `extensions`), sends
 * `frames`, lets the client answer, sends `then` (a close, say), and closes
 * TCP once the client answered a close; the client echoes every message it
 * reads (asynchronously, as an application does: what comes in the same
 * packet as a close is not echoed).
 */
async function clientCase(
  frames: Uint8Array[],
  options: { extensions?: string; offer?: boolean; then?: Uint8Array[]; connect?: WebSocketConnectOptions; hangUp?: boolean } = {},
): Promise<ClientCase> {
  const transport = new MemoryTransport();
  let server!: RawPeer<MemoryConnection>;
  await transport.listen({ port: 80 }, (conn) => {
    server = rawPeer(conn as MemoryConnection, true);
    const original = server.chunks.push.bind(server.chunks);
    let answered = false;
    server.chunks.push = (...items: Uint8Array[]) => {
      const n = original(...items);
      const text = server.bytes().toString("latin1");
      if (!answered && text.includes("\r\n\r\n")) {
        answered = true;
        const key = /sec-websocket-key: *(\S+)/i.exec(text)![1]!;
        const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
        const ext = options.extensions === undefined ? "" : `Sec-WebSocket-Extensions: ${options.extensions}\r\n`;
        server.send(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${ext}\r\n`);
      }
      return n;
    };
  });
  const client = await websocketConnect("ws://localhost/", {
    transport,
    compression: options.offer ?? options.extensions !== undefined ? { threshold: 0 } : false,
    ...options.connect,
  });
  void (async () => {
    for await (const m of client) await client.writeMessage(m).catch(() => {});
  })();
  const sentFrames = () => {
    const bytes = server.bytes();
    return parseFrames(bytes.subarray(bytes.indexOf("\r\n\r\n") + 4));
  };
  for (const f of frames) server.send(f);
  await flushMemory();
  const before = sentFrames();
  const closingBefore = client.isClosing;
  for (const f of options.then ?? []) server.send(f);
  await flushMemory();
  const got = sentFrames();
  if (got.some((f) => f.opcode === CLOSE) && !server.ended) {
    server.conn.end();
    await flushMemory();
  } else if (options.hangUp && !server.closed) {
    server.conn.destroy();
  }
  await client.closed.then(() => undefined, () => undefined);
  return { frames: sentFrames(), before, closingBefore, client, server };
}

const s = { mask: null } as const;

describe("the client, sections 1-13", () => {
  it("1: echoes text and binary of 0, 125, 126 and 65536 bytes, every frame masked", async () => {
    const payloads = [0, 125, 126, 65536].map((n) => Buffer.alloc(n, 0x2a));
    const r = await clientCase([...payloads.map((p) => frame(TEXT, p, s)), ...payloads.map((p) => frame(BINARY, p, s))], { then: [frame(CLOSE, closeBody(1000), s)] });
    expect(r.frames.every((f) => f.masked)).toBe(true);
    expect(summary(r.frames)).toEqual([...payloads.map((p) => `${TEXT} ${p.length}`), ...payloads.map((p) => `${BINARY} ${p.length}`), "close 1000"]);
    expect(r.client.closeCode).toBe(1000);
  });

  it("2: answers a ping with a masked pong with the same payload", async () => {
    const r = await clientCase([frame(PING, "Hello, world!", s), frame(PING, Buffer.alloc(125, 1), s), frame(CLOSE, closeBody(1000), s)]);
    expect(r.frames.map((f) => [f.opcode, f.payload.length, f.masked])).toEqual([
      [PONG, 13, true],
      [PONG, 125, true],
      [CLOSE, 2, true],
    ]);
    expect(r.frames[0]!.payload.toString()).toBe("Hello, world!");
  });

  it("3: fails with 1002 on reserved bits", async () => {
    const r = await clientCase([frame(TEXT, "small", { ...s, rsv2: true })]);
    expect(summary(r.frames)).toEqual(["close 1002"]);
    expect(r.client.closeCode).toBe(1002);
  });

  it("4: fails with 1002 on a reserved opcode", async () => {
    const r = await clientCase([frame(TEXT, "ok", s)], { then: [frame(0xb, "", s), frame(PING, "", s)] });
    expect(summary(r.frames)).toEqual([`${TEXT} 2`, "close 1002"]);
  });

  it("5: assembles fragments, answering a ping in between first", async () => {
    const r = await clientCase([frame(TEXT, "frag", { ...s, fin: false }), frame(PING, "between", s), frame(0, "ment", s)], { then: [frame(CLOSE, closeBody(1000), s)] });
    expect(r.frames.map((f) => [f.opcode, f.payload.toString("latin1")])).toEqual([
      [PONG, "between"],
      [TEXT, "fragment"],
      [CLOSE, "\x03\xe8"],
    ]);
  });

  it("5: fails with 1002 on a masked frame from the server", async () => {
    const r = await clientCase([frame(TEXT, "masked by the server")]);
    expect(summary(r.frames)).toEqual(["close 1002"]);
  });

  it("6: fails with 1007 on invalid UTF-8", async () => {
    const r = await clientCase([frame(TEXT, Buffer.from([0x61, 0xed, 0xa0, 0x80]), s)]);
    expect(summary(r.frames)).toEqual(["close 1007"]);
    expect(r.client.closeCode).toBe(1007);
  });

  it("7: echoes a valid close code and its own close is answered; fails with 1002 on code 999", async () => {
    const ok = await clientCase([frame(CLOSE, closeBody(4999, "bye"), s)]);
    expect(summary(ok.frames)).toEqual(["close 4999"]);
    expect([ok.client.closeCode, ok.client.closeReason]).toEqual([4999, "bye"]);
    const bad = await clientCase([frame(CLOSE, closeBody(999), s)]);
    expect(summary(bad.frames)).toEqual(["close 1002"]);
  });

  it("9: echoes a 4 MiB binary message; fails with 1009 above its 10 MiB default limit", async () => {
    const big = Buffer.alloc(4 * 1024 * 1024, 7);
    const r = await clientCase([frame(BINARY, big, s)], { then: [frame(CLOSE, closeBody(1000), s)] });
    expect(r.frames[0]!.payload.equals(big)).toBe(true);
    const over = await clientCase([Buffer.from([0x82, 0x7f, 0, 0, 0, 0, 0, 0xa0, 0, 1])]);
    expect(summary(over.frames)).toEqual(["close 1009"]);
  });

  it.each([
    ["permessage-deflate", false],
    ["permessage-deflate; server_no_context_takeover", false],
    ["permessage-deflate; client_no_context_takeover", true],
    ["permessage-deflate; client_max_window_bits=9", false],
    ["permessage-deflate; server_max_window_bits=12", false],
  ] as const)("12/13: with %s, inflates the server's messages and compresses its echoes", async (extensions, clientResets) => {
    const texts = Array.from({ length: 5 }, (_, i) => `${i} ${"compressible ".repeat(100)}`);
    const r = await clientCase(texts.map((t) => frame(TEXT, deflateMessage(t), { ...s, rsv1: true })), { extensions, then: [frame(CLOSE, closeBody(1000), s)] });
    const echoes = r.frames.filter((f) => f.opcode === TEXT);
    expect(echoes.every((f) => f.rsv1 && f.masked)).toBe(true);
    if (clientResets) expect(echoes.map((f) => inflateMessage(f.payload).toString())).toEqual(texts);
    else expect(inflateStream(echoes)).toEqual(texts);
  });

  it("6.4.1/6.4.2: fails with 1007 on the fragment that breaks UTF-8, before the message ends", async () => {
    const r = await clientCase([frame(TEXT, P1, { ...s, fin: false })], { then: [frame(0, P2, { ...s, fin: false })] });
    expect(r.before).toEqual([]);
    expect(r.closingBefore).toBe(false);
    expect(summary(r.frames)).toEqual(["close 1007"]);
    expect(r.client.closeCode).toBe(1007);
  });

  it("6.4.3/6.4.4: fails with 1007 inside one frame, once the breaking byte arrives, before the frame ends", async () => {
    const whole = frame(TEXT, Buffer.concat([P1, P2, P3]), s);
    const at = 2 + P1.length;
    const r = await clientCase([whole.subarray(0, at)], { then: [whole.subarray(at, at + 2)] });
    expect(r.before).toEqual([]);
    expect(r.closingBefore).toBe(false);
    expect(summary(r.frames)).toEqual(["close 1007"]);
  });

  it("7.3.1: a close without a body is answered without a body; closeCode 1005", async () => {
    const r = await clientCase([frame(CLOSE, "", s)]);
    expect(r.frames.map((f) => [f.opcode, f.payload.length, f.masked])).toEqual([[CLOSE, 0, true]]);
    expect([r.client.closeCode, r.client.closeReason]).toEqual([1005, ""]);
  });

  it("7.3.2: a 1-byte close body fails with 1002", async () => {
    const r = await clientCase([frame(CLOSE, Buffer.from([0x03]), s)]);
    expect(summary(r.frames)).toEqual(["close 1002"]);
    expect(r.client.closeCode).toBe(1002);
  });

  it.each(["", "Hello World!", "*".repeat(123)])("7.3.3-7.3.5: close 1000 with the reason %j is echoed with its code", async (reason) => {
    const r = await clientCase([frame(CLOSE, closeBody(1000, reason), s)]);
    expect(summary(r.frames)).toEqual(["close 1000"]);
    expect([r.client.closeCode, r.client.closeReason]).toEqual([1000, reason]);
  });

  it("7.3.6: a close body of 126 bytes fails with 1002", async () => {
    const r = await clientCase([frame(CLOSE, closeBody(1000, "*".repeat(124)), s)]);
    expect(summary(r.frames)).toEqual(["close 1002"]);
  });

  it("7.5.1: a close reason that is not UTF-8 fails with 1007", async () => {
    const r = await clientCase([frame(CLOSE, Buffer.concat([closeBody(1000), P1, Buffer.from("eda080", "hex"), utf8("edited")]), s)]);
    expect(summary(r.frames)).toEqual(["close 1007"]);
    expect(r.client.closeCode).toBe(1007);
  });

  it.each(VALID_CODES)("7.7: the valid code %i is echoed", async (code) => {
    const r = await clientCase([frame(CLOSE, closeBody(code), s)]);
    expect(summary(r.frames)).toEqual([`close ${code}`]);
    expect(r.client.closeCode).toBe(code);
  });

  it.each(INVALID_CODES)("7.9/7.13: the invalid code %i fails with 1002", async (code) => {
    const r = await clientCase([frame(CLOSE, closeBody(code), s)]);
    expect(summary(r.frames)).toEqual(["close 1002"]);
    expect(r.client.closeCode).toBe(1002);
  });

  it("9/10: the maxMessageSize option: exactly the limit is echoed; one byte more fails with 1009, in one frame or across fragments", async () => {
    const limit = 256 * 1024;
    const connect = { maxMessageSize: limit };
    const ok = await clientCase([frame(BINARY, Buffer.alloc(limit, 1), s)], { connect, then: [frame(CLOSE, closeBody(1000), s)] });
    expect(summary(ok.frames)).toEqual([`${BINARY} ${limit}`, "close 1000"]);
    const over = await clientCase([frame(BINARY, Buffer.alloc(limit + 1, 1), s)], { connect });
    expect(summary(over.frames)).toEqual(["close 1009"]);
    expect(over.client.closeCode).toBe(1009);
    const half = limit / 2;
    const fragments = await clientCase([frame(BINARY, Buffer.alloc(half), { ...s, fin: false }), frame(0, Buffer.alloc(half + 1), s)], { connect });
    expect(summary(fragments.frames)).toEqual(["close 1009"]);
    // The default (10 MiB, as Tornado) would have taken all of these.
    const fallback = await clientCase([frame(BINARY, Buffer.alloc(limit + 1, 1), s)], { then: [frame(CLOSE, closeBody(1000), s)] });
    expect(summary(fallback.frames)).toEqual([`${BINARY} ${limit + 1}`, "close 1000"]);
  });

  it("9/10: maxMessageSize 64 MiB lifts the 16 MiB frame default too: a 20 MiB frame is echoed, a header of exactly 64 MiB is accepted, 64 MiB + 1 fails with 1009", async () => {
    const connect = { maxMessageSize: 64 * 1024 * 1024 };
    const big = Buffer.alloc(20 * 1024 * 1024, 0x2a);
    const r = await clientCase([frame(TEXT, big, s)], { connect, then: [frame(CLOSE, closeBody(1000), s)] });
    expect(summary(r.frames)).toEqual([`${TEXT} ${big.length}`, "close 1000"]);
    expect(r.frames[0]!.payload.equals(big)).toBe(true);
    const exact = await clientCase([Buffer.from([0x82, 0x7f, 0, 0, 0, 0, 0x04, 0, 0, 0]), Buffer.alloc(65536)], { connect, hangUp: true });
    expect(exact.before).toEqual([]);
    expect(exact.closingBefore).toBe(false);
    expect(exact.client.closeCode).toBe(1006); // the server hung up mid-frame
    const over = await clientCase([Buffer.from([0x82, 0x7f, 0, 0, 0, 0, 0x04, 0, 0, 1])], { connect });
    expect(summary(over.frames)).toEqual(["close 1009"]);
  });

  it("10.1.1: a 64 KiB text message in 1300-byte fragments is echoed whole", async () => {
    const text = Buffer.alloc(65536, 0x2a);
    const frames: Uint8Array[] = [];
    for (let i = 0; i < text.length; i += 1300) frames.push(frame(i === 0 ? TEXT : 0, text.subarray(i, i + 1300), { ...s, fin: i + 1300 >= text.length }));
    const r = await clientCase(frames, { then: [frame(CLOSE, closeBody(1000), s)] });
    expect(summary(r.frames)).toEqual([`${TEXT} 65536`, "close 1000"]);
  });

  it.each([1, 7, 256, 4096])("12.x: compressed messages in fragments of %i bytes (RSV1 on the first only) are inflated, and echoed compressed", async (size) => {
    const texts = Array.from({ length: 3 }, (_, i) => `${i} ${"fragmented and compressed ".repeat(200)}`);
    const frames: Uint8Array[] = [];
    for (const t of texts) {
      const z = deflateMessage(t);
      for (let i = 0; i < z.length; i += size) frames.push(frame(i === 0 ? TEXT : 0, z.subarray(i, i + size), { ...s, rsv1: i === 0, fin: i + size >= z.length }));
      frames.push(frame(BINARY, "plain between", s));
    }
    const r = await clientCase(frames, { extensions: "permessage-deflate; client_no_context_takeover", then: [frame(CLOSE, closeBody(1000), s)] });
    const echoes = r.frames.filter((f) => f.opcode !== CLOSE);
    expect(echoes.map((f) => (f.rsv1 ? inflateMessage(f.payload).toString() : f.payload.toString()))).toEqual(texts.flatMap((t) => [t, "plain between"]));
    expect(echoes.map((f) => f.rsv1)).toEqual(texts.flatMap(() => [true, true]));
  });

  it.each([
    ["permessage-deflate; client_max_window_bits=8", false],
    ["permessage-deflate; client_no_context_takeover; client_max_window_bits=8", true],
  ] as const)("13: with %s the echoes inflate with windowBits 8 and no match reaches back over 256 bytes", async (extensions, resets) => {
    const messages = farMessages(6);
    const r = await clientCase(messages.map((m) => frame(TEXT, deflateMessage(m), { ...s, rsv1: true })), { extensions, then: [frame(CLOSE, closeBody(1000), s)] });
    expect8BitWindow(r.frames.filter((f) => f.opcode === TEXT), messages, resets);
  });

  it("13: fails the handshake when the server answers permessage-deflate that was not offered", async () => {
    await expect(clientCase([], { extensions: "permessage-deflate", offer: false })).rejects.toThrow(/not offered/);
  });
});
