/**
 * The Autobahn testsuite's case list, section by section, as byte vectors
 * fed to a server engine with an echo application (what Autobahn's
 * fuzzingclient runs against). Each vector is fed in the pieces written here
 * (Autobahn's "chops"), whole and byte by byte, and all three must agree.
 * Client frames are masked with key 37 fa 21 3d unless written out.
 */
import { Buffer } from "node:buffer";
import * as zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  acceptDeflateResponse,
  buildDeflateOffer,
  negotiateDeflate,
  parseExtensions,
  WebSocketConnection,
  ZlibDeflateCodec,
  type PerMessageDeflateParams,
} from "../../src/protocols/websocket";
import { byteByByte, cf, concat, decodeAll, drain, f, hex, run, runThreeWays, sf, splitAt, toClientStream, toHex, utf8, type Plain } from "./helpers";

const TEXT = 0x81;
const BINARY = 0x82;
const PING = 0x89;
const PONG = 0x8a;
const CLOSE = 0x88;

const err = (code: string, closeCode: number, position?: number) =>
  expect.objectContaining({ type: "error", code, closeCode, ...(position === undefined ? {} : { position }) });

function closeBody(code: number, reason = ""): Uint8Array {
  return concat(Uint8Array.of(code >> 8, code & 0xff), utf8(reason));
}

/** Splits into pieces of `size` bytes. */
function chops(bytes: Uint8Array, size: number): Uint8Array[] {
  const cuts: number[] = [];
  for (let i = size; i < bytes.length; i += size) cuts.push(i);
  return splitAt(bytes, cuts);
}

describe("Autobahn 1: framing", () => {
  it("1.1.1: an empty text message is echoed", () => {
    const r = runThreeWays([f("81 80 37fa213d")]);
    expect(r.events).toEqual([{ type: "text", data: "" }]);
    expect(r.out).toEqual([{ fin: true, rsv1: false, opcode: 1, masked: false, payload: "" }]);
  });

  it.each([
    ["1.1.2", 125, "81 fd 37fa213d"],
    ["1.1.3", 126, "81 fe 007e 37fa213d"],
    ["1.1.4", 127, "81 fe 007f 37fa213d"],
    ["1.1.5", 128, "81 fe 0080 37fa213d"],
    ["1.1.6", 65535, "81 fe ffff 37fa213d"],
    ["1.1.7", 65536, "81 ff 0000000000010000 37fa213d"],
  ])("%s: a text message of %i bytes, length in 7/16/64 bits", (_case, n, header) => {
    const payload = "*".repeat(n);
    const frame = f(header, payload);
    const r = runThreeWays(splitAt(frame, [1, 2, 5, 9, frame.length - 1]));
    expect(r.events).toEqual([{ type: "text", data: payload }]);
    expect(r.out).toHaveLength(1);
    expect(r.out[0]!.payload).toBe(toHex(utf8(payload)));
  });

  it("1.1.8: 65536 bytes of text in chops of 997 bytes", () => {
    const payload = "*".repeat(65536);
    const r = run(chops(cf(TEXT, payload), 997));
    expect(r.events).toEqual([{ type: "text", data: payload }]);
  });

  it.each([
    ["1.2.1", 0],
    ["1.2.2", 125],
    ["1.2.3", 126],
    ["1.2.4", 127],
    ["1.2.5", 128],
    ["1.2.6", 65535],
    ["1.2.7", 65536],
  ])("%s: a binary message of %i bytes", (_case, n) => {
    const payload = Uint8Array.from({ length: n }, (_, i) => (i * 7 + 0xfe) & 0xff);
    const r = runThreeWays(splitAt(cf(BINARY, payload), [1, 3, 7, 11]));
    expect(r.events).toEqual([{ type: "binary", data: toHex(payload) }]);
    expect(r.out[0]).toMatchObject({ opcode: 2, payload: toHex(payload) });
  });

  it("1.2.8: 65536 bytes of binary in chops of 997 bytes", () => {
    const payload = new Uint8Array(65536).fill(0xfe);
    const r = run(chops(cf(BINARY, payload), 997));
    expect(r.events).toEqual([{ type: "binary", data: toHex(payload) }]);
  });

  it("accepts non-minimal lengths (Autobahn does too): 'Hello' with a 16- and a 64-bit length", () => {
    const r = runThreeWays([f("81 fe 0005 37fa213d", "Hello"), f("81 ff 0000000000000005 37fa213d", "Hello")]);
    expect(r.events).toEqual([{ type: "text", data: "Hello" }, { type: "text", data: "Hello" }]);
  });

  it("the client-role mirror of a vector: RFC 6455 §5.7's masked 'Hello' becomes its unmasked 'Hello'", () => {
    const mirror = toClientStream([hex("81 85 37 fa 21 3d 7f 9f"), hex("4d 51 58"), hex("81 05 48 65")]);
    expect(mirror.pieces.map(toHex)).toEqual(["8105 4865", "6c6c6f", "8185 37fa213d 7f9f"].map((h) => h.replace(/ /g, "")));
    expect([0, 2, 4, 6, 8, 11, 13].map(mirror.position)).toEqual([0, 2, 2, 2, 4, 7, 13]);
  });

  it("RFC 6455 §5.7: the masked 'Hello' byte for byte", () => {
    const r = runThreeWays([hex("81 85 37 fa 21 3d 7f 9f 4d 51 58")]);
    expect(r.events).toEqual([{ type: "text", data: "Hello" }]);
    expect(r.out).toEqual([{ fin: true, rsv1: false, opcode: 1, masked: false, payload: toHex(utf8("Hello")) }]);
  });

  it("rejects a 64-bit length with the most significant bit set (1002), as soon as that byte arrives", () => {
    const pieces = [hex("82 ff 80"), hex("00000000000000 37fa213d")];
    const r = runThreeWays(pieces);
    expect(r.events).toEqual([err("WS_ERR_INVALID_PAYLOAD_LENGTH", 1002)]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1002 })]);
    expect(run([pieces[0]!]).events).toEqual([err("WS_ERR_INVALID_PAYLOAD_LENGTH", 1002)]);
  });

  it("a server rejects an unmasked frame (1002); a client rejects a masked one (1002)", () => {
    expect(runThreeWays([hex("81 05 48656c6c6f")]).events).toEqual([err("WS_ERR_EXPECTED_MASK", 1002, 0)]);
    const client = run([f("81 85 37fa213d", "Hello")], { role: "client" });
    expect(client.events).toEqual([err("WS_ERR_UNEXPECTED_MASK", 1002, 0)]);
    expect(client.out).toEqual([expect.objectContaining({ opcode: 8, code: 1002, masked: true })]);
  });

  it("a client reads unmasked frames and echoes them masked", () => {
    const r = run([hex("81 05 48656c6c6f"), hex("82 7e 0003 010203")], { role: "client" });
    expect(r.events).toEqual([{ type: "text", data: "Hello" }, { type: "binary", data: "010203" }]);
    expect(r.out.map((o) => [o.opcode, o.masked, o.payload])).toEqual([
      [1, true, toHex(utf8("Hello"))],
      [2, true, "010203"],
    ]);
  });
});

describe("Autobahn 2: ping and pong", () => {
  it("2.1: a ping without payload is answered by a pong without payload", () => {
    const r = runThreeWays([f("89 80 37fa213d")]);
    expect(r.events).toEqual([{ type: "ping", data: "" }]);
    expect(r.out).toEqual([{ fin: true, rsv1: false, opcode: 10, masked: false, payload: "" }]);
  });

  it("2.2/2.3: a ping with a text or binary payload gets the same payload back", () => {
    const bin = hex("00 ff fe fd fc fb 00 ff");
    const r = runThreeWays([cf(PING, "Hello, world!"), cf(PING, bin)]);
    expect(r.events).toEqual([
      { type: "ping", data: toHex(utf8("Hello, world!")) },
      { type: "ping", data: toHex(bin) },
    ]);
    expect(r.out.map((o) => [o.opcode, o.payload])).toEqual([
      [10, toHex(utf8("Hello, world!"))],
      [10, toHex(bin)],
    ]);
  });

  it("2.4/2.6: a ping with 125 bytes (also in 1-byte chops)", () => {
    const payload = new Uint8Array(125).fill(0xfe);
    const r = runThreeWays(byteByByte(cf(PING, payload)));
    expect(r.out).toEqual([expect.objectContaining({ opcode: 10, payload: toHex(payload) })]);
  });

  it("2.5: a ping with 126 bytes fails with 1002 from its header alone", () => {
    const frame = f("89 fe 007e 37fa213d", new Uint8Array(126).fill(0xfe));
    const r = runThreeWays(splitAt(frame, [2]));
    expect(r.events).toEqual([err("WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH", 1002, 0)]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1002 })]);
    expect(run([frame.subarray(0, 2)]).events).toHaveLength(1);
  });

  it("2.7/2.8: unsolicited pongs are reported and not answered", () => {
    const r = runThreeWays([f("8a 80 37fa213d"), cf(PONG, "unsolicited pong payload")]);
    expect(r.events).toEqual([
      { type: "pong", data: "" },
      { type: "pong", data: toHex(utf8("unsolicited pong payload")) },
    ]);
    expect(r.out).toEqual([]);
  });

  it("2.9: an unsolicited pong, then a ping: one pong answers the ping", () => {
    const r = runThreeWays([cf(PONG, "unsolicited pong payload"), cf(PING, "ping payload")]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 10, payload: toHex(utf8("ping payload")) })]);
  });

  it("2.10/2.11: ten pings get ten pongs, in order (also in 1-byte chops)", () => {
    const frames = Array.from({ length: 10 }, (_, i) => cf(PING, `payload-${i}`));
    const r = runThreeWays(byteByByte(concat(...frames)));
    expect(r.out.map((o) => Buffer.from(o.payload, "hex").toString())).toEqual(
      Array.from({ length: 10 }, (_, i) => `payload-${i}`),
    );
  });

  it("autoPong: false still reports the ping and leaves the answer to the application", () => {
    const r = run([cf(PING, "x")], { autoPong: false });
    expect(r.events).toEqual([{ type: "ping", data: "78" }]);
    expect(r.out).toEqual([]);
  });
});

describe("Autobahn 3: reserved bits", () => {
  it("3.1: RSV1 on a text frame without a negotiated extension fails with 1002", () => {
    const r = runThreeWays([f("c1 85 37fa213d", "Hello")]);
    expect(r.events).toEqual([err("WS_ERR_UNEXPECTED_RSV_1", 1002, 0)]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1002 })]);
  });

  it.each([
    ["3.2 (RSV2)", 0xa1],
    ["3.3 (RSV3)", 0x91],
    ["3.4 (RSV1, 1-byte chops)", 0xc1],
  ])("%s: text echoed, then a text frame with the bit fails, the ping after it is ignored", (_case, first) => {
    const bytes = concat(cf(TEXT, "Hello, world!"), cf(first, "Hello, world!"), cf(PING, "p"));
    const r = runThreeWays(byteByByte(bytes));
    expect(r.events).toEqual([
      { type: "text", data: "Hello, world!" },
      err(first === 0xc1 ? "WS_ERR_UNEXPECTED_RSV_1" : "WS_ERR_UNEXPECTED_RSV_2_3", 1002, 19),
    ]);
    expect(r.out.map((o) => o.opcode)).toEqual([1, 8]);
    expect(r.out[1]!.code).toBe(1002);
  });

  it.each([
    ["3.5: binary with RSV1|RSV3", 0xd2],
    ["3.6: ping with RSV1|RSV2", 0xe9],
    ["3.7: close with RSV1|RSV2|RSV3", 0xf8],
  ])("%s fails with 1002", (_case, first) => {
    const r = runThreeWays([cf(first, first === 0xf8 ? closeBody(1000) : "x")]);
    expect(r.events).toEqual([expect.objectContaining({ type: "error", closeCode: 1002 })]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1002 })]);
  });
});

describe("Autobahn 4: opcodes", () => {
  it.each([3, 4, 5, 6, 7])("4.1.x: reserved non-control opcode %i fails with 1002 after the echo of the text before it", (op) => {
    const bytes = concat(cf(TEXT, "Hello, world!"), cf(0x80 | op, "reserved payload"), cf(PING, "p"));
    const r = runThreeWays(op === 7 ? byteByByte(bytes) : [bytes]);
    expect(r.events).toEqual([{ type: "text", data: "Hello, world!" }, err("WS_ERR_INVALID_OPCODE", 1002, 19)]);
    expect(r.out.map((o) => o.opcode)).toEqual([1, 8]);
  });

  it.each([11, 12, 13, 14, 15])("4.2.x: reserved control opcode %i fails with 1002", (op) => {
    const r = runThreeWays([cf(TEXT, "Hello"), cf(0x80 | op, "x"), cf(PING, "p")]);
    expect(r.events).toEqual([{ type: "text", data: "Hello" }, err("WS_ERR_INVALID_OPCODE", 1002, 11)]);
    expect(r.out.map((o) => [o.opcode, o.code])).toEqual([[1, undefined], [8, 1002]]);
  });
});

describe("Autobahn 5: fragmentation", () => {
  it.each([
    ["5.1: a ping", 0x09],
    ["5.2: a pong", 0x0a],
  ])("%s in two fragments fails with 1002", (_case, first) => {
    const r = runThreeWays([cf(first, "frag1"), cf(0x80, "frag2")]);
    expect(r.events).toEqual([err("WS_ERR_EXPECTED_FIN", 1002, 0)]);
  });

  it("5.3/5.4/5.5: a text message in two fragments is echoed whole (also in chops)", () => {
    const pieces = [cf(0x01, "fragment1"), cf(0x80, "fragment2")];
    const r = runThreeWays(pieces);
    expect(r.events).toEqual([{ type: "text", data: "fragment1fragment2" }]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 1, fin: true, payload: toHex(utf8("fragment1fragment2")) })]);
  });

  it("5.6/5.7/5.8: a ping between the fragments is answered before the echo", () => {
    const r = runThreeWays([cf(0x01, "fragment1"), cf(PING, "pongme!"), cf(0x80, "fragment2")]);
    expect(r.events).toEqual([
      { type: "ping", data: toHex(utf8("pongme!")) },
      { type: "text", data: "fragment1fragment2" },
    ]);
    expect(r.out.map((o) => o.opcode)).toEqual([10, 1]);
  });

  it.each([
    ["5.9/5.10/5.11: FIN set", 0x80],
    ["5.12/5.13/5.14: FIN clear", 0x00],
  ])("continuation with nothing to continue (%s) fails with 1002; the text after it is ignored", (_case, first) => {
    const r = runThreeWays([cf(first, "fragment1"), cf(TEXT, "fragment2")]);
    expect(r.events).toEqual([err("WS_ERR_UNEXPECTED_CONTINUATION", 1002, 0)]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1002 })]);
  });

  it("5.15: two fragments, then a continuation with nothing to continue: echo, then 1002", () => {
    const bytes = concat(cf(0x01, "fragment1"), cf(0x80, "fragment2"), cf(0x00, "fragment3"), cf(TEXT, "fragment4"));
    const r = runThreeWays([bytes]);
    expect(r.events).toEqual([{ type: "text", data: "fragment1fragment2" }, err("WS_ERR_UNEXPECTED_CONTINUATION", 1002, 30)]);
  });

  it.each([
    ["5.16", 0x00],
    ["5.17", 0x80],
  ])("%s: continuation first, then a fragmented text, twice: 1002 at once", (_case, first) => {
    const round = concat(cf(first, "fragment1"), cf(0x01, "fragment2"), cf(0x80, "fragment3"));
    const r = runThreeWays([round, round]);
    expect(r.events).toEqual([err("WS_ERR_UNEXPECTED_CONTINUATION", 1002, 0)]);
  });

  it("5.18: two text frames where the second should be a continuation: 1002", () => {
    const r = runThreeWays([concat(cf(0x01, "fragment1"), cf(TEXT, "fragment2"))]);
    expect(r.events).toEqual([err("WS_ERR_EXPECTED_CONTINUATION", 1002, 15)]);
  });

  it("5.19/5.20: five fragments with two pings between them", () => {
    const pieces = [
      cf(0x01, "fragment1"),
      cf(0x00, "fragment2"),
      cf(PING, "pongme 1!"),
      cf(0x00, "fragment3"),
      cf(0x00, "fragment4"),
      cf(PING, "pongme 2!"),
      cf(0x80, "fragment5"),
    ];
    const r = runThreeWays(pieces);
    expect(r.events).toEqual([
      { type: "ping", data: toHex(utf8("pongme 1!")) },
      { type: "ping", data: toHex(utf8("pongme 2!")) },
      { type: "text", data: "fragment1fragment2fragment3fragment4fragment5" },
    ]);
    expect(r.out.map((o) => o.opcode)).toEqual([10, 10, 1]);
  });

  it("a binary message in many empty and non-empty fragments", () => {
    const frames = [cf(0x02), cf(0x00, hex("01")), cf(0x00), cf(0x00, hex("0203")), cf(0x80)];
    expect(runThreeWays(frames).events).toEqual([{ type: "binary", data: "010203" }]);
  });
});

/** Autobahn 6.x vectors: a text message's bytes, and where it must fail (-1: valid). */
const UTF8_CASES: Array<[string, string, number]> = [
  ["6.5.1 κόσμε", "cebae1bdb9cf83cebcceb5", -1],
  ["6.6.1", "ce", 1],
  ["6.6.2", "ceba", -1],
  ["6.6.3", "cebae1", 3],
  ["6.6.4", "cebae1bd", 4],
  ["6.6.5", "cebae1bdb9", -1],
  ["6.6.6", "cebae1bdb9cf", 6],
  ["6.6.8", "cebae1bdb9cf83ce", 8],
  ["6.6.10", "cebae1bdb9cf83cebcce", 10],
  ["6.7.1 U+0000", "00", -1],
  ["6.7.2 U+0080", "c280", -1],
  ["6.7.3 U+0800", "e0a080", -1],
  ["6.7.4 U+10000", "f0908080", -1],
  ["6.8.1 5-byte sequence", "f888808080", 0],
  ["6.8.2 6-byte sequence", "fc8480808080", 0],
  ["6.9.1 U+007F", "7f", -1],
  ["6.9.2 U+07FF", "dfbf", -1],
  ["6.9.3 U+FFFF", "efbfbf", -1],
  ["6.9.4 U+10FFFF", "f48fbfbf", -1],
  ["6.10.1 U+1FFFFF", "f7bfbfbf", 0],
  ["6.10.2", "fbbfbfbfbf", 0],
  ["6.10.3", "fdbfbfbfbfbf", 0],
  ["6.11.1 U+D7FF", "ed9fbf", -1],
  ["6.11.2 U+E000", "ee8080", -1],
  ["6.11.3 U+FFFD", "efbfbd", -1],
  ["6.11.4 U+10FFFF", "f48fbfbf", -1],
  ["6.11.5 U+110000", "f4908080", 1],
  ["6.12.1 lone 80", "80", 0],
  ["6.12.2 lone bf", "bf", 0],
  ["6.12.3 80 bf", "80bf", 0],
  ["6.12.8 seven continuations", "80bf80bf80bf80", 0],
  ["6.13.1 lonely C0 start", "c020c120", 0],
  ["6.13.2 lonely E0 start", "e020e120", 1],
  ["6.13.3 lonely F0 start", "f020f120", 1],
  ["6.13.4 lonely F8 start", "f820f920", 0],
  ["6.14.1", "c0", 0],
  ["6.14.2", "e080", 1],
  ["6.14.3", "f08080", 1],
  ["6.14.6 missing last byte of U+07FF", "df", 1],
  ["6.14.7 missing last byte of U+FFFF", "efbf", 2],
  ["6.14.8", "f7bfbf", 0],
  ["6.15.1 concatenated incomplete sequences", "c0e080f08080f8808080fc80808080dfefbff7bfbffbbfbfbffdbfbfbfbf", 0],
  ["6.16.1 fe", "fe", 0],
  ["6.16.2 ff", "ff", 0],
  ["6.16.3 fe fe ff ff", "fefeffff", 0],
  ["6.17.1 overlong '/' in 2 bytes", "c0af", 0],
  ["6.17.2 overlong '/' in 3 bytes", "e080af", 1],
  ["6.17.3 overlong '/' in 4 bytes", "f08080af", 1],
  ["6.17.4 overlong '/' in 5 bytes", "f8808080af", 0],
  ["6.18.1 max overlong 2 bytes", "c1bf", 0],
  ["6.18.2 max overlong 3 bytes", "e09fbf", 1],
  ["6.18.3 max overlong 4 bytes", "f08fbfbf", 1],
  ["6.19.1 overlong NUL 2 bytes", "c080", 0],
  ["6.19.2 overlong NUL 3 bytes", "e08080", 1],
  ["6.19.3 overlong NUL 4 bytes", "f0808080", 1],
  ["6.20.1 U+D800", "eda080", 1],
  ["6.20.4 U+DBFF", "edafbf", 1],
  ["6.20.5 U+DC00", "edb080", 1],
  ["6.20.7 U+DFFF", "edbfbf", 1],
  ["6.21.1 U+D800 U+DC00", "eda080edb080", 1],
  ["6.21.8 U+DBFF U+DFFF", "edafbfedbfbf", 1],
  ["6.22.1 U+FFFE", "efbfbe", -1],
  ["6.22.3 U+1FFFE", "f09fbfbe", -1],
  ["6.22.34 U+10FFFF", "f48fbfbf", -1],
  ["6.23.1 U+FFF9", "efbfb9", -1],
  ["6.23.7 U+FFFD", "efbfbd", -1],
];

describe("Autobahn 6: UTF-8 handling", () => {
  it("6.1.1: an empty text message", () => {
    expect(runThreeWays([cf(TEXT)]).events).toEqual([{ type: "text", data: "" }]);
  });

  it("6.1.2/6.1.3: empty fragments", () => {
    expect(runThreeWays([cf(0x01), cf(0x00), cf(0x80)]).events).toEqual([{ type: "text", data: "" }]);
    expect(runThreeWays([cf(0x01), cf(0x00, "middle frame payload"), cf(0x80)]).events).toEqual([
      { type: "text", data: "middle frame payload" },
    ]);
  });

  const HELLO = "Hello-µ@ßöäüàá-UTF-8!!";

  it("6.2.1: valid UTF-8 in one frame", () => {
    expect(runThreeWays([cf(TEXT, HELLO)]).events).toEqual([{ type: "text", data: HELLO }]);
  });

  it("6.2.2/6.2.3/6.2.4: valid UTF-8 in fragments cut at code points, then at every byte", () => {
    const bytes = utf8(HELLO);
    const atCodePoints = [cf(0x01, utf8("Hello-µ@ßöä")), cf(0x80, utf8("üàá-UTF-8!!"))];
    expect(runThreeWays(atCodePoints).events).toEqual([{ type: "text", data: HELLO }]);
    const perByte = Array.from(bytes, (b, i) => cf(i === 0 ? 0x01 : i === bytes.length - 1 ? 0x80 : 0x00, Uint8Array.of(b)));
    expect(runThreeWays([concat(...perByte)]).events).toEqual([{ type: "text", data: HELLO }]);
    const kosme = hex("cebae1bdb9cf83cebcceb5");
    const kosmePerByte = Array.from(kosme, (b, i) => cf(i === 0 ? 0x01 : i === kosme.length - 1 ? 0x80 : 0x00, Uint8Array.of(b)));
    expect(runThreeWays(kosmePerByte).events).toEqual([{ type: "text", data: Buffer.from(kosme).toString("utf8") }]);
  });

  it("6.3.1/6.3.2: κόσμε + a surrogate + 'edited' fails with 1007 at byte 12 (also in chops)", () => {
    const frame = cf(TEXT, hex("cebae1bdb9cf83cebcceb5eda080656469746564"));
    const r = runThreeWays(byteByByte(frame));
    expect(r.events).toEqual([err("WS_ERR_INVALID_UTF8", 1007, 12)]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1007 })]);
  });

  const P1 = hex("cebae1bdb9cf83cebcceb5");
  const P2 = hex("f4908080");
  const P3 = utf8("edited");

  it("6.4.1: three fragments, the second invalid: fails when the second arrives, not at the end", () => {
    const r = run([cf(0x01, P1), cf(0x00, P2), cf(0x80, P3)]);
    expect(r.events).toEqual([err("WS_ERR_INVALID_UTF8", 1007, 12)]);
    const early = run([cf(0x01, P1), cf(0x00, P2)]);
    expect(early.events).toEqual([err("WS_ERR_INVALID_UTF8", 1007, 12)]);
    expect(early.out).toEqual([expect.objectContaining({ opcode: 8, code: 1007 })]);
  });

  it("6.4.2: the second fragment ends right after the byte that breaks it", () => {
    const early = run([cf(0x01, P1), cf(0x00, P2.subarray(0, 2))]);
    expect(early.events).toEqual([err("WS_ERR_INVALID_UTF8", 1007, 12)]);
  });

  it("6.4.3/6.4.4: one frame in three chops: fails on the second chop, inside the frame", () => {
    const payload = concat(P1, P2, P3);
    const frame = cf(TEXT, payload);
    const headerSize = 6;
    const chop1 = frame.subarray(0, headerSize + P1.length);
    const chop2 = frame.subarray(headerSize + P1.length, headerSize + P1.length + 2); // up to the breaking byte
    expect(run([chop1]).events).toEqual([]);
    const r = run([chop1, chop2]);
    expect(r.events).toEqual([err("WS_ERR_INVALID_UTF8", 1007, 12)]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1007 })]);
  });

  it.each(UTF8_CASES)("%s (%s)", (_name, h, position) => {
    const payload = hex(h);
    const r = runThreeWays([cf(TEXT, payload)]);
    if (position === -1) {
      expect(r.events).toEqual([{ type: "text", data: Buffer.from(payload).toString("utf8") }]);
      expect(r.out).toEqual([expect.objectContaining({ opcode: 1, payload: h })]);
    } else {
      expect(r.events).toEqual([err("WS_ERR_INVALID_UTF8", 1007, position)]);
      expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1007 })]);
    }
    // The same bytes as a fragmented message, one byte per frame.
    if (payload.length > 1) {
      const frames = Array.from(payload, (b, i) => cf(i === 0 ? 0x01 : i === payload.length - 1 ? 0x80 : 0x00, Uint8Array.of(b)));
      const fr = run([concat(...frames)]);
      expect(fr.events[0]).toEqual(position === -1 ? { type: "text", data: Buffer.from(payload).toString("utf8") } : err("WS_ERR_INVALID_UTF8", 1007, position));
    }
  });
});

describe("Autobahn 7: close handling", () => {
  it("7.1.1: a message, then a close: echo, then the close echoed; a server closes the transport", () => {
    const r = runThreeWays([cf(TEXT, "Hello World!"), cf(CLOSE, closeBody(1000))]);
    expect(r.events).toEqual([{ type: "text", data: "Hello World!" }, { type: "close", code: 1000, reason: "" }]);
    expect(r.out.map((o) => [o.opcode, o.code])).toEqual([[1, undefined], [8, 1000]]);
    expect(r.conn.state).toBe("CLOSED");
    expect(r.conn.closed).toBe(true);
    expect(r.conn.shouldCloseTransport).toBe(true);
  });

  it("7.1.2/7.1.3/7.1.4: after a close, a second close, a ping and a text are ignored", () => {
    const r = runThreeWays([cf(CLOSE, closeBody(1000)), cf(CLOSE, closeBody(1000)), cf(PING, "p"), cf(TEXT, "t")]);
    expect(r.events).toEqual([{ type: "close", code: 1000, reason: "" }]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1000 })]);
  });

  it("7.1.5: the first fragment, a close, the second fragment: only the close is echoed", () => {
    const r = runThreeWays([cf(0x01, "fragment1"), cf(CLOSE, closeBody(1000)), cf(0x80, "fragment2")]);
    expect(r.events).toEqual([{ type: "close", code: 1000, reason: "" }]);
    expect(r.out.map((o) => o.opcode)).toEqual([8]);
  });

  it("7.1.6: a 256 KiB message, a close and a ping: echo, close, no pong", () => {
    const big = "BAsd7&jh23".repeat(26214) + "BAsd";
    const r = run(chops(concat(cf(TEXT, big), cf(CLOSE, closeBody(1000)), cf(PING, "ping")), 65536));
    expect(r.events.map((e) => e.type)).toEqual(["text", "close"]);
    expect(r.out.map((o) => o.opcode)).toEqual([1, 8]);
  });

  it("7.3.1: an empty close is reported as 1005 and echoed empty", () => {
    const r = runThreeWays([f("88 80 37fa213d")]);
    expect(r.events).toEqual([{ type: "close", code: 1005, reason: "" }]);
    expect(r.out).toEqual([{ fin: true, rsv1: false, opcode: 8, masked: false, payload: "" }]);
  });

  it("7.3.2: a close with a 1-byte payload fails with 1002", () => {
    const r = runThreeWays([cf(CLOSE, hex("03"))]);
    expect(r.events).toEqual([err("WS_ERR_INVALID_CLOSE_PAYLOAD", 1002)]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1002 })]);
  });

  it("7.3.3/7.3.4/7.3.5: close 1000 without a reason, with one, with 123 bytes of one", () => {
    expect(runThreeWays([cf(CLOSE, closeBody(1000))]).events).toEqual([{ type: "close", code: 1000, reason: "" }]);
    expect(runThreeWays([cf(CLOSE, closeBody(1000, "Hello World!"))]).events).toEqual([
      { type: "close", code: 1000, reason: "Hello World!" },
    ]);
    const reason = "*".repeat(123);
    const r = runThreeWays([cf(CLOSE, closeBody(1000, reason))]);
    expect(r.events).toEqual([{ type: "close", code: 1000, reason }]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1000, payload: "03e8" })]);
  });

  it("7.3.6: a close with a 126-byte payload fails with 1002", () => {
    const r = runThreeWays([f("88 fe 007e 37fa213d", closeBody(1000, "*".repeat(124)))]);
    expect(r.events).toEqual([err("WS_ERR_INVALID_CONTROL_PAYLOAD_LENGTH", 1002, 0)]);
  });

  it("7.5.1: a close reason that is not UTF-8 fails with 1007", () => {
    const r = runThreeWays([cf(CLOSE, concat(closeBody(1000), hex("cebae1bdb9cf83cebcceb5eda080656469746564")))]);
    expect(r.events).toEqual([err("WS_ERR_INVALID_UTF8", 1007, 12)]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1007 })]);
  });

  it.each([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999])(
    "7.7.x: valid close code %i is echoed",
    (code) => {
      const r = runThreeWays([cf(CLOSE, closeBody(code))]);
      expect(r.events).toEqual([{ type: "close", code, reason: "" }]);
      expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code })]);
    },
  );

  it.each([0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])(
    "7.9.x/7.13.x: invalid close code %i fails with 1002",
    (code) => {
      const r = runThreeWays([cf(CLOSE, closeBody(code))]);
      expect(r.events).toEqual([err("WS_ERR_INVALID_CLOSE_CODE", 1002)]);
      expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1002 })]);
    },
  );

  it("a client does not close the transport first after the handshake; it does after the server's EOF", () => {
    const client = new WebSocketConnection({ role: "client" });
    client.sendClose(1000);
    expect(client.state).toBe("LOCAL_CLOSING");
    client.receiveData(hex("88 02 03e8"));
    expect(drain(client)).toEqual([{ type: "close", code: 1000, reason: "" }]);
    expect(client.state).toBe("CLOSED");
    expect(client.shouldCloseTransport).toBe(false);
    client.receiveEof();
    expect(drain(client)).toEqual([]);
    expect(client.shouldCloseTransport).toBe(true);
  });
});

describe("Autobahn 9: limits and performance", () => {
  it("9.1.6/9.2.6: a 16 MiB text message in one frame passes the default limit; one byte more fails with 1009 from the header", () => {
    const size = 16 * 1024 * 1024;
    const payload = Buffer.alloc(size, 0x2a);
    const frame = cf(TEXT, payload);
    const r = run(chops(frame, 1 << 20), {}, "none");
    expect(r.events).toHaveLength(1);
    expect(r.events[0]!.type).toBe("text");
    expect((r.events[0] as { data: string }).data.length).toBe(size);
    const tooBig = f("82 ff 0000000001000001 37fa213d");
    const t = run([tooBig], {}, "none");
    expect(t.events).toEqual([err("WS_ERR_FRAME_TOO_BIG", 1009, 0)]);
    expect(t.out).toEqual([expect.objectContaining({ opcode: 8, code: 1009 })]);
  });

  it("9.1.x/9.5.x: 1 MiB text and binary in one frame, chopped at 64..65536 bytes", () => {
    const text = "x".repeat(1 << 20);
    const bin = Buffer.alloc(1 << 20, 0xfe);
    for (const chop of [64, 4096, 65536]) {
      expect(run(chops(cf(TEXT, text), chop)).events).toEqual([{ type: "text", data: text }]);
      const r = run(chops(cf(BINARY, bin), chop), {}, "none");
      expect(r.events).toEqual([{ type: "binary", data: toHex(bin) }]);
    }
  });

  it("9.3.x/9.4.x: 1 MiB in fragments of 64 bytes to 256 KiB", () => {
    const bytes = utf8("a".repeat(1 << 20));
    for (const size of [64, 256, 16384, 262144]) {
      const frames: Uint8Array[] = [];
      for (let i = 0; i < bytes.length; i += size) {
        const last = i + size >= bytes.length;
        frames.push(cf((i === 0 ? 0x01 : 0x00) | (last ? 0x80 : 0), bytes.subarray(i, i + size)));
      }
      const r = run([concat(...frames)], {}, "none");
      expect(r.events).toHaveLength(1);
      expect((r.events[0] as { data: string }).data.length).toBe(1 << 20);
    }
  });

  it("9.7.x/9.8.x: a thousand small messages in one read", () => {
    const frames = Array.from({ length: 1000 }, (_, i) => cf(i % 2 ? BINARY : TEXT, "m".repeat(i % 200)));
    const r = run([concat(...frames)]);
    expect(r.events).toHaveLength(1000);
    expect(r.out).toHaveLength(1000);
  });

  it("maxMessageSize counts across fragments and fails at the header that exceeds it", () => {
    const pieces = [cf(0x01, "a".repeat(100)), f("80 fe 0100 37fa213d")];
    const r = run(pieces, { maxMessageSize: 300 });
    expect(r.events).toEqual([err("WS_ERR_MESSAGE_TOO_BIG", 1009, 106)]);
    expect(r.out).toEqual([expect.objectContaining({ opcode: 8, code: 1009 })]);
  });

  it("maxMessageSize applies to each message on its own", () => {
    const r = run([cf(BINARY, new Uint8Array(200)), cf(0x02, new Uint8Array(100)), cf(0x80, new Uint8Array(100)), cf(BINARY, new Uint8Array(250))], { maxMessageSize: 250 }, "none");
    expect(r.events.map((e) => e.type)).toEqual(["binary", "binary", "binary"]);
    const { server } = deflatePair("permessage-deflate");
    const big = new WebSocketConnection({ role: "server", maxMessageSize: 3000, perMessageDeflate: { codec: new ZlibDeflateCodec({ serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }, "server") } });
    const tx = new ZlibDeflateCodec({ serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }, "client");
    const random = Uint8Array.from({ length: 2000 }, (_, i) => (i * 2654435761) >>> 24);
    big.receiveData(concat(cf(0xc2, tx.compress(random)), cf(0xc2, tx.compress(random.subarray(0, 1999)))));
    expect(drain(big).map((e) => e.type)).toEqual(["binary", "binary"]);
    expect(server.state).toBe("OPEN");
  });

  it("maxFrameSize fails at the header of a larger frame; control frames are bounded by 125 anyway", () => {
    expect(run([f("82 fe 00c8 37fa213d")], { maxFrameSize: 199 }).events).toEqual([err("WS_ERR_FRAME_TOO_BIG", 1009, 0)]);
    expect(run([cf(BINARY, new Uint8Array(199))], { maxFrameSize: 199 }, "none").events).toHaveLength(1);
  });

  it("Infinity lifts the limits", () => {
    const r = run([cf(BINARY, new Uint8Array(300))], { maxFrameSize: Infinity, maxMessageSize: Infinity }, "none");
    expect(r.events).toHaveLength(1);
  });
});

// ------------------------------------------------------------ 12 and 13

interface Pair {
  server: WebSocketConnection;
  client: WebSocketConnection;
  params: PerMessageDeflateParams;
  response: string;
}

/** Negotiates from a client offer header to both engines, as Autobahn's cases set up. */
function deflatePair(offer: string, serverOptions = {}, clientOptions = {}): Pair {
  const negotiated = negotiateDeflate(parseExtensions(offer), serverOptions);
  if (negotiated === null) throw new Error(`offer declined: ${offer}`);
  const [ext] = parseExtensions(negotiated.response);
  const clientParams = acceptDeflateResponse(ext!.params, clientOptions);
  return {
    server: new WebSocketConnection({
      role: "server",
      perMessageDeflate: { codec: new ZlibDeflateCodec(negotiated.params, "server"), threshold: 0 },
    }),
    client: new WebSocketConnection({
      role: "client",
      perMessageDeflate: { codec: new ZlibDeflateCodec(clientParams, "client"), threshold: 0 },
    }),
    params: negotiated.params,
    response: negotiated.response,
  };
}

/** Test data like Autobahn's json_data1: repetitive text. */
function testData(length: number, seed: number): string {
  let s = "";
  let i = seed;
  while (s.length < length) s += `{"id":${i++},"name":"typhoon-${i % 97}","tags":["ws","deflate"],"ok":${i % 3 === 0}},`;
  return s.slice(0, length);
}

/** Client sends `count` messages; the server echoes them; the client checks them. */
function echoThrough(pair: Pair, sizes: readonly number[], chop?: number): void {
  const { server, client } = pair;
  let seed = 0;
  for (const size of sizes) {
    const msg = testData(size, seed++);
    client.sendText(msg);
    const wire = client.takeOutput()!;
    const frames = decodeAll(wire);
    expect(frames[0]!.rsv1).toBe(true);
    for (const piece of chop === undefined ? [wire] : chops(wire, chop)) server.receiveData(Uint8Array.from(piece));
    const got = drain(server, (e) => {
      if (e.type === "text") server.sendText(e.data);
    });
    expect(got).toEqual([{ type: "text", data: msg }]);
    client.receiveData(server.takeOutput()!);
    expect(drain(client)).toEqual([{ type: "text", data: msg }]);
  }
}

const SIZES = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072];

describe("Autobahn 12: permessage-deflate with the default offer", () => {
  it("12.x.1-10: compressed messages of 16 B to 128 KiB are echoed compressed, over one context", () => {
    const pair = deflatePair("permessage-deflate; client_no_context_takeover; client_max_window_bits");
    expect(pair.response).toBe("permessage-deflate; client_no_context_takeover");
    echoThrough(pair, [...SIZES, ...SIZES]);
  });

  it.each(["server", "client"] as const)("12.x.11-18: compressed messages split into frames of 256 B to 32 KiB (RSV1 on the first only), to a %s", (role) => {
    const peer = role === "server" ? "client" : "server";
    const frameOf = role === "server" ? cf : sf;
    for (const fragment of [256, 1024, 4096, 32768]) {
      const params = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };
      const peerCodec = new ZlibDeflateCodec(params, peer);
      const conn = new WebSocketConnection({ role, perMessageDeflate: { codec: new ZlibDeflateCodec(params, role) } });
      for (let m = 0; m < 3; m++) {
        const msg = testData(65536, m);
        const compressed = peerCodec.compress(utf8(msg));
        const frames: Uint8Array[] = [];
        for (let i = 0; i < compressed.length || i === 0; i += fragment) {
          const first = i === 0;
          const last = i + fragment >= compressed.length;
          frames.push(frameOf((last ? 0x80 : 0) | (first ? 0x40 | 0x01 : 0x00), compressed.subarray(i, i + fragment)));
        }
        expect(frames.length).toBeGreaterThan(fragment === 32768 ? 0 : 1);
        conn.receiveData(concat(...frames));
        expect(drain(conn)).toEqual([{ type: "text", data: msg }]);
      }
    }
  });

  it("RSV1 on a continuation frame or a control frame fails with 1002 even when negotiated", () => {
    const pair = () => deflatePair("permessage-deflate");
    const a = pair().server;
    a.receiveData(concat(cf(0x41, hex("00")), cf(0xc0, hex("00"))));
    expect(drain(a)).toEqual([err("WS_ERR_UNEXPECTED_RSV_1", 1002, 7)]);
    const b = pair().server;
    b.receiveData(cf(0xc9, "x"));
    expect(drain(b)).toEqual([err("WS_ERR_UNEXPECTED_RSV_1", 1002, 0)]);
  });

  it("data that does not inflate fails with 1007", () => {
    const { server } = deflatePair("permessage-deflate");
    server.receiveData(cf(0xc1, hex("ff ff ff ff 00 11")));
    expect(drain(server)).toEqual([err("WS_ERR_INVALID_COMPRESSED_DATA", 1007)]);
    expect(decodeAll(server.takeOutput())).toEqual([expect.objectContaining({ opcode: 8, code: 1007 })]);
  });

  it("a decompression bomb fails with 1009 without inflating it whole", () => {
    const params = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };
    const bomb = new ZlibDeflateCodec(params, "client").compress(new Uint8Array(64 << 20));
    expect(bomb.length).toBeLessThan(100_000);
    for (const forceFallback of [false, true]) {
      const server = new WebSocketConnection({
        role: "server",
        maxMessageSize: 1 << 20,
        perMessageDeflate: { codec: new ZlibDeflateCodec(params, "server", { forceFallback }) },
      });
      server.receiveData(cf(0xc2, bomb));
      expect(drain(server)).toEqual([err("WS_ERR_MESSAGE_TOO_BIG", 1009)]);
    }
  });

  it("an empty compressed message, as 0x00 and as no payload at all", () => {
    const { server } = deflatePair("permessage-deflate");
    server.receiveData(concat(cf(0xc1, hex("00")), cf(0xc1), cf(0x41), cf(0x80)));
    expect(drain(server)).toEqual([
      { type: "text", data: "" },
      { type: "text", data: "" },
      { type: "text", data: "" },
    ]);
  });

  it("a peer that ends its stream with BFINAL: the message inflates and the next one starts afresh", () => {
    const { server } = deflatePair("permessage-deflate");
    for (const word of ["first message", "second message"]) {
      const finished = zlib.deflateRawSync(Buffer.from(word)); // ends with a final block
      server.receiveData(cf(0xc1, finished));
      expect(drain(server)).toEqual([{ type: "text", data: word }]);
    }
  });

  it("uncompressed messages may be mixed in (RSV1 clear)", () => {
    const { server } = deflatePair("permessage-deflate");
    server.receiveData(concat(cf(TEXT, "plain"), cf(BINARY, hex("0102"))));
    expect(drain(server)).toEqual([{ type: "text", data: "plain" }, { type: "binary", data: "0102" }]);
  });
});

describe("Autobahn 13: permessage-deflate parameters", () => {
  // Autobahn's offers: PerMessageDeflateOffer(requestNoContextTakeover, requestMaxWindowBits).
  const cases: Array<[string, string, string]> = [
    ["13.1 (False, 0)", "permessage-deflate; client_no_context_takeover; client_max_window_bits", "permessage-deflate; client_no_context_takeover"],
    ["13.2 (True, 0)", "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover", "permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
    ["13.3 (False, 8)", "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=8", "permessage-deflate; client_no_context_takeover; server_max_window_bits=8"],
    ["13.4 (False, 15)", "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=15", "permessage-deflate; client_no_context_takeover; server_max_window_bits=15"],
    ["13.5 (True, 8)", "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=8; server_no_context_takeover", "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8"],
    ["13.6 (True, 15)", "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=15; server_no_context_takeover", "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15"],
  ];

  it.each(cases)("%s: negotiated and echoed over 128 KiB messages", (_case, offer, response) => {
    const pair = deflatePair(offer);
    expect(pair.response).toBe(response);
    echoThrough(pair, [...SIZES, ...SIZES], 4096);
  });

  it("13.7: several offers: the first acceptable one wins", () => {
    const offers =
      "permessage-deflate; server_no_context_takeover; server_max_window_bits=8; client_max_window_bits, " +
      "permessage-deflate; server_no_context_takeover; client_max_window_bits, permessage-deflate; client_max_window_bits";
    const pair = deflatePair(offers);
    expect(pair.response).toBe("permessage-deflate; server_no_context_takeover; server_max_window_bits=8");
    expect(pair.params.serverMaxWindowBits).toBe(8);
    echoThrough(pair, SIZES);
    // A server that insists on client_max_window_bits=10 skips an offer that cannot take it.
    const choosy = negotiateDeflate(parseExtensions("permessage-deflate, permessage-deflate; client_max_window_bits"), { clientMaxWindowBits: 10 });
    expect(choosy?.response).toBe("permessage-deflate; client_max_window_bits=10");
  });

  it("client side: our offer and the server's answers with every window size", () => {
    expect(buildDeflateOffer()).toBe("permessage-deflate; client_max_window_bits");
    for (let bits = 8; bits <= 15; bits++) {
      const pair = deflatePair(buildDeflateOffer({ serverMaxWindowBits: bits }), { clientMaxWindowBits: bits }, { serverMaxWindowBits: bits });
      expect(pair.params).toEqual({ serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: bits, clientMaxWindowBits: bits });
      echoThrough(pair, [16, 4096, 65536]);
    }
  });
});

describe("Autobahn 10: miscellaneous", () => {
  it("10.1.1: a 64 KiB text message in fragments of 1300 bytes", () => {
    const bytes = utf8("*".repeat(65536));
    const frames: Uint8Array[] = [];
    for (let i = 0; i < bytes.length; i += 1300) {
      frames.push(cf((i === 0 ? 0x01 : 0) | (i + 1300 >= bytes.length ? 0x80 : 0), bytes.subarray(i, i + 1300)));
    }
    const r = run(chops(concat(...frames), 1300));
    expect(r.events).toEqual([{ type: "text", data: "*".repeat(65536) }]);
  });
});

export type { Plain };
