import { Buffer } from "node:buffer";
import { describe, expect, it } from "vitest";
import { LocalProtocolError, RemoteProtocolError } from "../../src/core/errors";
import {
  isValidCloseCode,
  NEED_DATA,
  WebSocketConnection,
  ZlibDeflateCodec,
  type DeflateCodec,
  type WebSocketConnectionOptions,
} from "../../src/protocols/websocket";
import { cf, concat, decodeAll, drain, hex, sf, toHex, utf8 } from "./helpers";

/** A mask key source that counts its calls and hands out 01 02 03 04 05 ... */
function countingSource() {
  const calls = { count: 0 };
  let next = 1;
  const source = (bytes: Uint8Array) => {
    calls.count++;
    for (let i = 0; i < bytes.length; i++) bytes[i] = next++ & 0xff;
  };
  return { calls, source };
}

function expectLocal(fn: () => void, code: string, message?: RegExp): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(LocalProtocolError);
    expect((error as LocalProtocolError).code).toBe(code);
    if (message) expect((error as Error).message).toMatch(message);
    return;
  }
  throw new Error("expected a LocalProtocolError");
}

const params = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };

describe("WebSocketConnection options", () => {
  it.each<[string, unknown, ErrorConstructor]>([
    ["no options", undefined, TypeError],
    ["a bad role", { role: "peer" }, TypeError],
    ["a maxFrameSize that is not a number", { role: "server", maxFrameSize: "1" }, TypeError],
    ["a NaN maxMessageSize", { role: "server", maxMessageSize: NaN }, TypeError],
    ["a maxFrameSize below 125", { role: "server", maxFrameSize: 124 }, RangeError],
    ["a fractional maxMessageSize", { role: "server", maxMessageSize: 1000.5 }, RangeError],
    ["a non-boolean autoPong", { role: "server", autoPong: 1 }, TypeError],
    ["perMessageDeflate without a codec", { role: "server", perMessageDeflate: {} }, TypeError],
    ["a negative threshold", { role: "server", perMessageDeflate: { codec: new ZlibDeflateCodec(params, "server"), threshold: -1 } }, RangeError],
    ["a maskKeySource that is not a function", { role: "client", maskKeySource: 4 }, TypeError],
  ])("rejects %s", (_name, options, type) => {
    expect(() => new WebSocketConnection(options as WebSocketConnectionOptions)).toThrow(type);
  });

  it("starts OPEN with nothing to say", () => {
    const conn = new WebSocketConnection({ role: "client" });
    expect(conn.role).toBe("client");
    expect(conn.state).toBe("OPEN");
    expect(conn.closed).toBe(false);
    expect(conn.shouldCloseTransport).toBe(false);
    expect(conn.error).toBeNull();
    expect(conn.outputLength).toBe(0);
    expect(conn.takeOutput()).toBeNull();
    expect(conn.nextEvent()).toBe(NEED_DATA);
    expect(Object.isFrozen(NEED_DATA)).toBe(true);
  });

  it("keeps each connection's own limits, threshold and mask source when they are made in any order", () => {
    const events = (conn: WebSocketConnection, bytes: Uint8Array) => {
      conn.receiveData(bytes);
      return drain(conn).map((e) => e.type);
    };
    const a = countingSource();
    const b = countingSource();
    const codec = () => new ZlibDeflateCodec(params, "client");
    const small = () => new WebSocketConnection({ role: "server", maxMessageSize: 200, maxFrameSize: 150 });
    const large = () => new WebSocketConnection({ role: "server" });
    const conns = [
      small(),
      large(),
      small(),
      new WebSocketConnection({ role: "server", maxMessageSize: 200 }),
      large(),
      new WebSocketConnection({ role: "server", maxMessageSize: 170 }),
    ];
    const frame = cf(0x82, new Uint8Array(180));
    // 180 bytes: over the small ones' frame limit and the last one's message limit (1009), under the others'.
    expect(conns.map((c) => events(c, frame).includes("error"))).toEqual([true, false, true, false, false, true]);
    // Each made right after one that differs from it in that one value only.
    const client = (source: (bytes: Uint8Array) => void, threshold: number) =>
      new WebSocketConnection({ role: "client", maskKeySource: source, perMessageDeflate: { codec: codec(), threshold } });
    const byThreshold = [client(a.source, 10), client(a.source, 1000)];
    const compressed = byThreshold.map((c) => {
      c.sendBinary(new Uint8Array(100));
      // RSV1 marks a compressed frame: only under the threshold of 10.
      return (c.takeOutput()![0]! & 0x40) !== 0;
    });
    expect(compressed).toEqual([true, false]);
    const bySource = [client(a.source, 1000), client(b.source, 1000)];
    const before = [a.calls.count, b.calls.count];
    bySource[1]!.sendBinary(new Uint8Array(1));
    expect([a.calls.count - before[0]!, b.calls.count - before[1]!]).toEqual([0, 1]);
  });
});

describe("sending", () => {
  it("a server writes RFC 6455 §5.7's unmasked 'Hello'", () => {
    const conn = new WebSocketConnection({ role: "server" });
    conn.sendText("Hello");
    expect(conn.outputLength).toBe(7);
    expect(toHex(conn.takeOutput()!)).toBe("810548656c6c6f");
    expect(conn.takeOutput()).toBeNull();
  });

  it("a client masks with keys from the injected source, 32 keys per call", () => {
    const { calls, source } = countingSource();
    const conn = new WebSocketConnection({ role: "client", maskKeySource: source });
    conn.sendText("Hello");
    expect(toHex(conn.takeOutput()!)).toBe("8185" + "01020304" + toHex(Uint8Array.from(utf8("Hello"), (b, i) => b ^ (i % 4) + 1)));
    for (let i = 0; i < 40; i++) conn.sendBinary(new Uint8Array(3));
    expect(calls.count).toBe(2);
    const frames = decodeAll(conn.takeOutput());
    expect(frames).toHaveLength(40);
    expect(frames.every((f) => f.masked && f.payload === "000000")).toBe(true);
  });

  it("a client with the default source uses fresh keys", () => {
    const conn = new WebSocketConnection({ role: "client" });
    conn.sendBinary(new Uint8Array(8));
    conn.sendBinary(new Uint8Array(8));
    const out = conn.takeOutput()!;
    expect(toHex(out.subarray(2, 6))).not.toBe(toHex(out.subarray(16, 20)));
    expect(decodeAll(out).map((f) => f.payload)).toEqual(["0000000000000000", "0000000000000000"]);
  });

  it("writes lengths around the 7/16/64-bit boundaries, for UTF-8 text too", () => {
    const conn = new WebSocketConnection({ role: "server" });
    const texts = ["€".repeat(41), "€".repeat(42), "a".repeat(41), "a".repeat(42), "😀".repeat(31), "x".repeat(65535), "y".repeat(65536), "\ud800 lone"];
    for (const t of texts) conn.sendText(t);
    const frames = decodeAll(conn.takeOutput());
    expect(frames.map((f) => Buffer.from(f.payload, "hex").toString("utf8"))).toEqual(texts.map((t) => Buffer.from(t).toString()));
  });

  it("hands out buffers that later sends never overwrite, across connections sharing the slab", () => {
    const a = new WebSocketConnection({ role: "server" });
    const b = new WebSocketConnection({ role: "server" });
    a.sendText("a1");
    const firstA = a.takeOutput()!;
    const copy = Uint8Array.from(firstA);
    a.sendText("a2");
    b.sendText("b1");
    a.sendText("a3"); // must move past b's bytes
    b.sendBinary(new Uint8Array(70_000)); // a private buffer
    b.sendText("b2");
    expect(decodeAll(a.takeOutput()).map((f) => f.payload)).toEqual([toHex(utf8("a2")), toHex(utf8("a3"))]);
    expect(decodeAll(b.takeOutput()).map((f) => f.payload.length)).toEqual([4, 140_000, 4]);
    expect(toHex(firstA)).toBe(toHex(copy));
  });

  it("sends fragments with send(..., { fin: false }) and checks their type", () => {
    const conn = new WebSocketConnection({ role: "server" });
    conn.send("Hel", { fin: false });
    expectLocal(() => conn.sendText("x"), "WS_ERR_INVALID_STATE", /fragmented text message is in progress/);
    expectLocal(() => conn.send(new Uint8Array(1), { fin: false }), "WS_ERR_FRAGMENT_TYPE_MISMATCH");
    conn.sendPing("between");
    conn.send("lo");
    conn.send(utf8("bin"), { fin: true });
    conn.send("as binary", { binary: true });
    expect(decodeAll(conn.takeOutput()).map((f) => [f.fin, f.opcode, Buffer.from(f.payload, "hex").toString()])).toEqual([
      [false, 1, "Hel"],
      [true, 9, "between"],
      [true, 0, "lo"],
      [true, 2, "bin"],
      [true, 2, "as binary"],
    ]);
  });

  it("limits ping and pong payloads to 125 bytes", () => {
    const conn = new WebSocketConnection({ role: "server" });
    conn.sendPing(new Uint8Array(125));
    conn.sendPong("x".repeat(125));
    expectLocal(() => conn.sendPing(new Uint8Array(126)), "WS_ERR_CONTROL_PAYLOAD_TOO_LARGE");
    expectLocal(() => conn.sendPong("é".repeat(63)), "WS_ERR_CONTROL_PAYLOAD_TOO_LARGE");
    expect(decodeAll(conn.takeOutput()).map((f) => f.opcode)).toEqual([9, 10]);
  });

  it("checks close codes and reasons", () => {
    const conn = new WebSocketConnection({ role: "server" });
    for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000, 1000.5]) {
      expectLocal(() => conn.sendClose(code), "WS_ERR_INVALID_CLOSE_CODE");
    }
    expectLocal(() => conn.sendClose(undefined, "why"), "WS_ERR_INVALID_CLOSE_CODE");
    expectLocal(() => conn.sendClose(1000, "x".repeat(124)), "WS_ERR_CONTROL_PAYLOAD_TOO_LARGE");
    expect(conn.state).toBe("OPEN");
    conn.sendClose(4000, "x".repeat(123));
    expect(decodeAll(conn.takeOutput())).toEqual([expect.objectContaining({ opcode: 8, code: 4000 })]);
  });

  it("compresses from the threshold on, or when asked; never fragments", () => {
    const conn = new WebSocketConnection({
      role: "server",
      perMessageDeflate: { codec: new ZlibDeflateCodec(params, "server"), threshold: 20 },
    });
    conn.sendText("short");
    conn.sendText("long enough to be compressed, long enough");
    conn.sendText("short", { compress: true });
    conn.sendBinary(new Uint8Array(100), { compress: false });
    conn.send("frag", { fin: false, compress: true });
    conn.send("ment", { compress: true });
    expect(decodeAll(conn.takeOutput()).map((f) => f.rsv1)).toEqual([false, true, true, false, false, false]);
  });
});

describe("the closing handshake", () => {
  it("OPEN → LOCAL_CLOSING → CLOSED when we close first; sends after it name the state", () => {
    const conn = new WebSocketConnection({ role: "server" });
    conn.sendClose(1000, "bye");
    expect(conn.state).toBe("LOCAL_CLOSING");
    expectLocal(() => conn.sendText("late"), "WS_ERR_INVALID_STATE", /LOCAL_CLOSING/);
    expectLocal(() => conn.sendPing(), "WS_ERR_INVALID_STATE", /LOCAL_CLOSING/);
    expectLocal(() => conn.sendClose(), "WS_ERR_INVALID_STATE", /LOCAL_CLOSING/);
    // Messages still arrive until the peer's close; pings get no pong after our close.
    conn.receiveData(concat(cf(0x81, "still here"), cf(0x89, "p"), cf(0x88, hex("03e8"))));
    expect(drain(conn)).toEqual([
      { type: "text", data: "still here" },
      { type: "ping", data: "70" },
      { type: "close", code: 1000, reason: "" },
    ]);
    expect(conn.state).toBe("CLOSED");
    expect(decodeAll(conn.takeOutput()).map((f) => f.opcode)).toEqual([8]);
    expect(conn.shouldCloseTransport).toBe(true);
    expectLocal(() => conn.sendText("x"), "WS_ERR_INVALID_STATE", /CLOSED/);
  });

  it("OPEN → CLOSED when the peer closes first: the echo is queued when the close event is taken", () => {
    const conn = new WebSocketConnection({ role: "server" });
    conn.receiveData(concat(cf(0x81, "last words"), cf(0x88, hex("0bb8"))));
    const first = conn.nextEvent();
    expect(first).toEqual({ type: "text", data: "last words" });
    conn.sendText("answer"); // before the close is parsed: allowed
    expect(conn.nextEvent()).toEqual({ type: "close", code: 3000, reason: "" });
    expect(conn.state).toBe("CLOSED");
    expect(decodeAll(conn.takeOutput()).map((f) => [f.opcode, f.code])).toEqual([[1, undefined], [8, 3000]]);
  });

  it("REMOTE_CLOSING while a fragmented send is open: the echo follows the last fragment", () => {
    const conn = new WebSocketConnection({ role: "server" });
    conn.send("part 1", { fin: false });
    conn.receiveData(cf(0x88, hex("03e9")));
    expect(drain(conn)).toEqual([{ type: "close", code: 1001, reason: "" }]);
    expect(conn.state).toBe("REMOTE_CLOSING");
    expectLocal(() => conn.sendText("new"), "WS_ERR_INVALID_STATE");
    conn.sendPing("still allowed");
    conn.send("part 2");
    expect(conn.state).toBe("CLOSED");
    expect(decodeAll(conn.takeOutput()).map((f) => [f.opcode, f.code])).toEqual([
      [1, undefined],
      [9, undefined],
      [0, undefined],
      [8, 1001],
    ]);
  });

  it("REMOTE_CLOSING ended by sendClose(): echoes the peer's code, or sends ours", () => {
    for (const [ours, expected] of [[undefined, 1001], [4001, 4001]] as const) {
      const conn = new WebSocketConnection({ role: "server" });
      conn.send("part 1", { fin: false });
      conn.receiveData(cf(0x88, hex("03e9")));
      drain(conn);
      conn.sendClose(ours);
      expect(conn.state).toBe("CLOSED");
      expect(decodeAll(conn.takeOutput()).at(-1)).toMatchObject({ opcode: 8, code: expected });
    }
  });

  it("an empty close (1005) in REMOTE_CLOSING is echoed empty", () => {
    const conn = new WebSocketConnection({ role: "server" });
    conn.send("x", { fin: false });
    conn.receiveData(cf(0x88));
    drain(conn);
    conn.sendClose();
    expect(decodeAll(conn.takeOutput()).at(-1)).toEqual(expect.objectContaining({ opcode: 8, payload: "" }));
  });
});

describe("close codes on the wire", () => {
  // RFC 6455 §7.4.1 and the IANA registry: 1012-1014 (Service Restart, Try
  // Again Later, Bad Gateway) are registered and accepted (ws accepts them too);
  // 1004-1006 and 1015 are reserved, 1016-2999 unassigned, <1000 and >4999 not used.
  const VALID = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999];
  const INVALID = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];
  const body = (code: number) => Uint8Array.of(code >> 8, code & 0xff);
  const from = { server: (code: number) => cf(0x88, body(code)), client: (code: number) => sf(0x88, body(code)) };

  it("isValidCloseCode agrees with the lists", () => {
    for (const code of VALID) expect(isValidCloseCode(code)).toBe(true);
    for (const code of INVALID) expect(isValidCloseCode(code)).toBe(false);
    for (let code = 0; code < 70000; code++) {
      const expected = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
      if (isValidCloseCode(code) !== expected) throw new Error(`isValidCloseCode(${code}) should be ${expected}`);
    }
  });

  for (const role of ["server", "client"] as const) {
    it.each(VALID)(`a ${role} accepts the received code %i and echoes it`, (code) => {
      const conn = new WebSocketConnection({ role });
      conn.receiveData(from[role](code));
      expect(drain(conn)).toEqual([{ type: "close", code, reason: "" }]);
      expect(decodeAll(conn.takeOutput())).toEqual([expect.objectContaining({ opcode: 8, code, masked: role === "client" })]);
    });

    it.each(INVALID)(`a ${role} fails the connection with 1002 on the received code %i`, (code) => {
      const conn = new WebSocketConnection({ role });
      conn.receiveData(from[role](code));
      expect(drain(conn)).toEqual([
        { type: "error", code: "WS_ERR_INVALID_CLOSE_CODE", closeCode: 1002, position: expect.any(Number) },
      ]);
      expect(decodeAll(conn.takeOutput())).toEqual([expect.objectContaining({ opcode: 8, code: 1002 })]);
      expect(conn.shouldCloseTransport).toBe(true);
    });

    it(`a ${role} sends every valid code; sendClose throws for each invalid one and stays OPEN`, () => {
      for (const code of INVALID) {
        const conn = new WebSocketConnection({ role });
        expectLocal(() => conn.sendClose(code), "WS_ERR_INVALID_CLOSE_CODE");
        expectLocal(() => conn.sendClose(code, "with a reason"), "WS_ERR_INVALID_CLOSE_CODE");
        expect(conn.state).toBe("OPEN");
        expect(conn.takeOutput()).toBeNull();
      }
      for (const code of VALID) {
        const conn = new WebSocketConnection({ role });
        conn.sendClose(code, "r");
        expect(conn.state).toBe("LOCAL_CLOSING");
        expect(decodeAll(conn.takeOutput())).toEqual([expect.objectContaining({ opcode: 8, code, payload: toHex(concat(body(code), utf8("r"))) })]);
      }
    });
  }
});

describe("failures and the end of input", () => {
  it("a protocol error: one error event, a close frame with its code, LOCAL_CLOSING, later input ignored", () => {
    const conn = new WebSocketConnection({ role: "server" });
    conn.receiveData(concat(cf(0x81, "ok"), hex("83 80 00000000"), cf(0x81, "ignored")));
    const events = drain(conn);
    expect(events).toEqual([
      { type: "text", data: "ok" },
      { type: "error", code: "WS_ERR_INVALID_OPCODE", closeCode: 1002, position: 8 },
    ]);
    expect(conn.error).toBeInstanceOf(RemoteProtocolError);
    expect(conn.error?.message).toMatch(/opcode 3/);
    expect(conn.state).toBe("LOCAL_CLOSING");
    expect(conn.shouldCloseTransport).toBe(true);
    conn.receiveData(cf(0x81, "more"));
    expect(conn.nextEvent()).toBe(NEED_DATA);
    expect(conn.bufferedAmount).toBe(0);
    expect(decodeAll(conn.takeOutput())).toEqual([expect.objectContaining({ opcode: 8, code: 1002 })]);
    expectLocal(() => conn.sendText("x"), "WS_ERR_INVALID_STATE");
  });

  it("an error after our own close sends no second close frame", () => {
    const conn = new WebSocketConnection({ role: "server" });
    conn.sendClose(1000);
    conn.takeOutput();
    conn.receiveData(cf(0x88, hex("03")));
    expect(drain(conn)).toEqual([expect.objectContaining({ type: "error", closeCode: 1002 })]);
    expect(conn.takeOutput()).toBeNull();
  });

  it("EOF without a close frame reports 1006 once, mid-frame too; then receiving data throws", () => {
    const conn = new WebSocketConnection({ role: "server" });
    conn.receiveData(cf(0x81, "whole").subarray(0, 4));
    expect(drain(conn)).toEqual([]);
    conn.receiveEof();
    expect(drain(conn)).toEqual([{ type: "close", code: 1006, reason: "" }]);
    expect(conn.state).toBe("CLOSED");
    expect(conn.shouldCloseTransport).toBe(true);
    expect(drain(conn)).toEqual([]);
    expectLocal(() => conn.receiveData(new Uint8Array(1)), "WS_ERR_INVALID_STATE", /ended/);
  });

  it("EOF after the close handshake or an error adds no event", () => {
    const a = new WebSocketConnection({ role: "server" });
    a.receiveData(cf(0x88, hex("03e8")));
    a.receiveEof();
    expect(drain(a)).toEqual([{ type: "close", code: 1000, reason: "" }]);
    const b = new WebSocketConnection({ role: "server" });
    b.receiveData(hex("81 05 00")); // unmasked
    b.receiveEof();
    expect(drain(b).map((e) => e.type)).toEqual(["error"]);
  });

  it("EOF is reported after the complete frames still buffered", () => {
    const conn = new WebSocketConnection({ role: "client" });
    conn.receiveData(concat(sf(0x81, "one"), sf(0x82, hex("02"))));
    conn.receiveEof();
    expect(drain(conn)).toEqual([
      { type: "text", data: "one" },
      { type: "binary", data: "02" },
      { type: "close", code: 1006, reason: "" },
    ]);
  });

  it("a codec that throws on data fails with 1007 and the codec is closed once", () => {
    let closed = 0;
    const codec: DeflateCodec = {
      compress: (d) => d,
      decompress: () => {
        throw new Error("boom");
      },
      close: () => void closed++,
    };
    const conn = new WebSocketConnection({ role: "server", perMessageDeflate: { codec } });
    conn.receiveData(cf(0xc1, "zz"));
    expect(drain(conn)).toEqual([expect.objectContaining({ type: "error", code: "WS_ERR_INVALID_COMPRESSED_DATA", closeCode: 1007 })]);
    expect(conn.error?.cause).toBeInstanceOf(Error);
    conn.receiveEof();
    drain(conn);
    expect(closed).toBe(1);
  });
});

describe("input ownership and views", () => {
  it("binary data stays intact while later input arrives", () => {
    const conn = new WebSocketConnection({ role: "server" });
    conn.receiveData(concat(cf(0x82, hex("0102030405")), cf(0x82, hex("0a0b")).subarray(0, 3)));
    const first = conn.nextEvent();
    expect(first.type).toBe("binary");
    conn.receiveData(cf(0x82, hex("0a0b")).subarray(3));
    expect(drain(conn)).toEqual([{ type: "binary", data: "0a0b" }]);
    expect(toHex((first as { data: Uint8Array }).data)).toBe("0102030405");
  });

  it("connections interleaved byte by byte keep their own headers, keys and output", () => {
    // Header scratch, mask keys and output regions are shared by the process:
    // two connections fed in turn must not see each other's state.
    const a = new WebSocketConnection({ role: "server" });
    const b = new WebSocketConnection({ role: "server" });
    const fa = concat(cf(0x81, "x".repeat(300), "01020304"), cf(0x82, hex("aabbcc"), "a0b0c0d0"));
    const fb = concat(cf(0x82, new Uint8Array(70000).fill(7), "deadbeef"), cf(0x81, "hé", "11223344"));
    const seenA: ReturnType<typeof drain> = [];
    const seenB: ReturnType<typeof drain> = [];
    for (let i = 0; i < Math.max(fa.length, fb.length); i++) {
      if (i < fa.length) {
        a.receiveData(fa.slice(i, i + 1));
        seenA.push(...drain(a, (e) => e.type === "text" && a.sendText(e.data)));
      }
      if (i < fb.length) {
        b.receiveData(fb.slice(i, i + 1));
        seenB.push(...drain(b, (e) => e.type === "binary" && b.sendBinary(e.data.subarray(0, 2))));
      }
    }
    expect(seenA).toEqual([{ type: "text", data: "x".repeat(300) }, { type: "binary", data: "aabbcc" }]);
    expect(seenB).toEqual([{ type: "binary", data: "07".repeat(70000) }, { type: "text", data: "hé" }]);
    expect(decodeAll(a.takeOutput()).map((f) => f.payload)).toEqual(["78".repeat(300)]);
    expect(decodeAll(b.takeOutput()).map((f) => f.payload)).toEqual(["0707"]);
    expect(a.takeOutput()).toBeNull();
    expect(a.outputLength).toBe(0);
  });

  it("accepts plain Uint8Arrays and Buffers alike, and empty reads", () => {
    const conn = new WebSocketConnection({ role: "server" });
    const frame = cf(0x81, "hi");
    conn.receiveData(new Uint8Array(0));
    conn.receiveData(new Uint8Array(frame.buffer.slice(0), 0, 3));
    conn.receiveData(Buffer.from(frame.subarray(3)));
    expect(conn.bufferedAmount).toBe(frame.length);
    expect(drain(conn)).toEqual([{ type: "text", data: "hi" }]);
    expect(conn.bufferedAmount).toBe(0);
  });
});
