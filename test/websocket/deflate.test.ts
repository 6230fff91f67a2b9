import { Buffer } from "node:buffer";
import * as zlib from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RemoteProtocolError } from "../../src/core/errors";
import {
  acceptDeflateResponse,
  buildDeflateOffer,
  formatExtension,
  negotiateDeflate,
  parseDeflateParams,
  parseExtensions,
  WebSocketConnection,
  ZlibDeflateCodec,
  type PerMessageDeflateClientOptions,
  type PerMessageDeflateParams,
  type PerMessageDeflateServerOptions,
} from "../../src/protocols/websocket";
import { cf, concat, drain, hex, toHex, utf8, type Plain } from "./helpers";

const P15: PerMessageDeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };

describe("Sec-WebSocket-Extensions", () => {
  it("parses names, parameters, quoted values, whitespace, repeated lines and empty elements", () => {
    expect(parseExtensions(['permessage-deflate ; client_max_window_bits ;server_max_window_bits="10"', " , x-Foo;A=b,"])).toEqual([
      {
        name: "permessage-deflate",
        params: [
          { name: "client_max_window_bits", value: null },
          { name: "server_max_window_bits", value: "10" },
        ],
      },
      { name: "x-foo", params: [{ name: "a", value: "b" }] },
    ]);
    expect(parseExtensions('a; b="c\\d"')).toEqual([{ name: "a", params: [{ name: "b", value: "cd" }] }]);
    expect(parseExtensions("")).toEqual([]);
  });

  it.each(["a;", ";a", "=b", "a; b=", 'a; b="c', 'a; b="c d"', "a b", "a; b c", "a; b=c d", "é"])("rejects %j with status 400", (header) => {
    try {
      parseExtensions(header);
    } catch (error) {
      expect(error).toBeInstanceOf(RemoteProtocolError);
      expect((error as RemoteProtocolError).code).toBe("WS_ERR_INVALID_EXTENSION");
      expect((error as RemoteProtocolError).status).toBe(400);
      return;
    }
    throw new Error("accepted");
  });

  it("formats what it parses", () => {
    const s = "permessage-deflate; server_no_context_takeover; client_max_window_bits=9";
    expect(formatExtension(parseExtensions(s)[0]!)).toBe(s);
  });
});

describe("permessage-deflate parameters (RFC 7692 §7.1)", () => {
  const params = (s: string) => parseExtensions(`permessage-deflate; ${s}`)[0]!.params;

  it("reads each parameter", () => {
    expect(parseDeflateParams(params("server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=15"), "response")).toEqual({
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 8,
      clientMaxWindowBits: 15,
    });
    expect(parseDeflateParams(params("client_max_window_bits"), "offer").clientMaxWindowBits).toBe(true);
  });

  it.each([
    ["an unknown parameter", "foo", "offer"],
    ["a repeated parameter", "server_no_context_takeover; server_no_context_takeover", "offer"],
    ["a repeated window size", "client_max_window_bits=9; client_max_window_bits=10", "offer"],
    ["a value on a flag", "client_no_context_takeover=1", "offer"],
    ["server_max_window_bits without a value", "server_max_window_bits", "offer"],
    ["a window of 7", "server_max_window_bits=7", "offer"],
    ["a window of 16", "client_max_window_bits=16", "offer"],
    ["a leading zero", "server_max_window_bits=09", "offer"],
    ["a non-number", "server_max_window_bits=ten", "offer"],
    ["client_max_window_bits without a value in a response", "client_max_window_bits", "response"],
  ] as const)("rejects %s", (_name, s, kind) => {
    expect(() => parseDeflateParams(params(s), kind)).toThrow(RemoteProtocolError);
  });

  it("builds client offers", () => {
    expect(buildDeflateOffer()).toBe("permessage-deflate; client_max_window_bits");
    expect(buildDeflateOffer({ clientMaxWindowBits: false })).toBe("permessage-deflate");
    expect(buildDeflateOffer({ serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 12 })).toBe(
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12",
    );
    expect(() => buildDeflateOffer({ serverMaxWindowBits: 7 })).toThrow(RangeError);
    expect(() => buildDeflateOffer({ clientMaxWindowBits: 8.5 })).toThrow(TypeError);
    expect(() => buildDeflateOffer({ serverNoContextTakeover: "yes" as unknown as boolean })).toThrow(TypeError);
  });

  it.each<[string, string, PerMessageDeflateServerOptions, string | null]>([
    ["the plain offer", "permessage-deflate", {}, "permessage-deflate"],
    ["client_max_window_bits without value: nothing to say", "permessage-deflate; client_max_window_bits", {}, "permessage-deflate"],
    ["client_max_window_bits with a value is confirmed", "permessage-deflate; client_max_window_bits=10", {}, "permessage-deflate; client_max_window_bits=10"],
    ["our client limit applies", "permessage-deflate; client_max_window_bits", { clientMaxWindowBits: 9 }, "permessage-deflate; client_max_window_bits=9"],
    ["the smaller of both limits", "permessage-deflate; client_max_window_bits=8", { clientMaxWindowBits: 9 }, "permessage-deflate; client_max_window_bits=8"],
    ["a client limit needs client_max_window_bits in the offer", "permessage-deflate", { clientMaxWindowBits: 9 }, null],
    ["server_max_window_bits is honoured", "permessage-deflate; server_max_window_bits=10", {}, "permessage-deflate; server_max_window_bits=10"],
    ["...or lowered", "permessage-deflate; server_max_window_bits=12", { serverMaxWindowBits: 9 }, "permessage-deflate; server_max_window_bits=9"],
    ["our own window is announced unasked", "permessage-deflate", { serverMaxWindowBits: 11 }, "permessage-deflate; server_max_window_bits=11"],
    ["server_no_context_takeover asked", "permessage-deflate; server_no_context_takeover", {}, "permessage-deflate; server_no_context_takeover"],
    ["server_no_context_takeover imposed", "permessage-deflate", { serverNoContextTakeover: true }, "permessage-deflate; server_no_context_takeover"],
    ["client_no_context_takeover requested by us", "permessage-deflate", { clientNoContextTakeover: true }, "permessage-deflate; client_no_context_takeover"],
    ["an invalid first offer is declined, the next accepted", "permessage-deflate; x=1, permessage-deflate; server_max_window_bits=9", {}, "permessage-deflate; server_max_window_bits=9"],
    ["unknown extensions are ignored", "x-webkit-deflate-frame, permessage-deflate", {}, "permessage-deflate"],
    ["only invalid offers: declined", "permessage-deflate; server_max_window_bits=16", {}, null],
  ])("server: %s", (_name, offer, options, response) => {
    const r = negotiateDeflate(parseExtensions(offer), options);
    expect(r === null ? null : r.response).toBe(response);
    if (r !== null) {
      // What the response says is what the server will do.
      const said = parseDeflateParams(parseExtensions(r.response)[0]!.params, "response");
      expect(r.params.serverNoContextTakeover).toBe(said.serverNoContextTakeover);
      expect(r.params.clientNoContextTakeover).toBe(said.clientNoContextTakeover);
      expect(r.params.serverMaxWindowBits).toBe(said.serverMaxWindowBits ?? 15);
      expect(r.params.clientMaxWindowBits).toBe(said.clientMaxWindowBits ?? 15);
    }
  });

  it("server options are validated", () => {
    expect(() => negotiateDeflate([], { serverMaxWindowBits: 16 })).toThrow(RangeError);
    expect(() => negotiateDeflate([], { clientNoContextTakeover: 1 as unknown as boolean })).toThrow(TypeError);
  });

  it.each<[string, string, PerMessageDeflateClientOptions]>([
    ["client_max_window_bits we did not offer", "client_max_window_bits=10", { clientMaxWindowBits: false }],
    ["client_max_window_bits above our value", "client_max_window_bits=12", { clientMaxWindowBits: 10 }],
    ["a missing server_max_window_bits we asked for", "", { serverMaxWindowBits: 10 }],
    ["a larger server_max_window_bits than asked", "server_max_window_bits=11", { serverMaxWindowBits: 10 }],
    ["a missing server_no_context_takeover we asked for", "", { serverNoContextTakeover: true }],
    ["an unknown parameter", "foo=1", {}],
    ["a repeated parameter", "server_max_window_bits=9; server_max_window_bits=9", {}],
  ])("client: fails on %s", (_name, response, options) => {
    expect(() => acceptDeflateResponse(parseExtensions(`permessage-deflate; ${response}`)[0]!.params, options)).toThrow(RemoteProtocolError);
  });

  it("client: takes what the server may add unasked", () => {
    expect(acceptDeflateResponse(parseExtensions("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8")[0]!.params)).toEqual({
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 9,
      clientMaxWindowBits: 8,
    });
    expect(acceptDeflateResponse([], { clientMaxWindowBits: 11, clientNoContextTakeover: true })).toEqual({
      serverNoContextTakeover: false,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 15,
      clientMaxWindowBits: 11,
    });
  });
});

describe("ZlibDeflateCodec", () => {
  it("validates its arguments", () => {
    expect(() => new ZlibDeflateCodec({ ...P15, serverMaxWindowBits: 7 }, "server")).toThrow(RangeError);
    expect(() => new ZlibDeflateCodec(P15, "peer" as "server")).toThrow(TypeError);
    expect(() => new ZlibDeflateCodec(P15, "server", { level: 10 })).toThrow(RangeError);
    expect(() => new ZlibDeflateCodec(P15, "server", { chunkSize: 1 })).toThrow(RangeError);
  });

  it("uses the streaming path on Node, and the fallback when told", () => {
    const a = new ZlibDeflateCodec(P15, "server");
    a.compress(utf8("x"));
    expect(a.usesFallback).toBe(false);
    expect(new ZlibDeflateCodec(P15, "server", { forceFallback: true }).usesFallback).toBe(true);
  });

  it("strips the 00 00 ff ff tail and sends an empty message as 00 (RFC 7692 §7.2.3.6)", () => {
    for (const forceFallback of [false, true]) {
      const c = new ZlibDeflateCodec(P15, "server", { forceFallback });
      const hello = c.compress(utf8("Hello"));
      expect(toHex(hello.subarray(-4))).not.toBe("0000ffff");
      expect(toHex(c.compress(new Uint8Array(0)))).toBe("00");
      expect(toHex(c.compress(new Uint8Array(0)))).toBe("00");
    }
    // RFC 7692 §7.2.3.1: "Hello" compressed is f2 48 cd c9 c9 07 00.
    expect(toHex(new ZlibDeflateCodec({ ...P15, serverNoContextTakeover: true }, "server").compress(utf8("Hello")))).toBe("f248cdc9c90700");
  });

  it("finds too much output before corruption that follows it, whether the input comes whole or in pieces", () => {
    // 3,000 bytes of valid output, then bytes that do not inflate; the limit is 1,000.
    const valid = zlib.deflateRawSync(Buffer.alloc(3000, 0x61), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    const corrupt = concat(valid, hex("ffffffffff"));
    const whole = new ZlibDeflateCodec(P15, "client");
    expect(whole.decompress(corrupt, true, 1000)).toBeNull();
    for (let cut = 1; cut < corrupt.length; cut++) {
      const split = new ZlibDeflateCodec(P15, "client");
      const first = split.decompress(corrupt.subarray(0, cut), false, 1000);
      if (first !== null) expect(split.decompress(corrupt.subarray(cut), true, 1000 - first.length)).toBeNull();
    }
    // Without the limit in the way, the corruption is what fails.
    expect(() => new ZlibDeflateCodec(P15, "client").decompress(corrupt, true, 1 << 20)).toThrow();
  });

  it("inflates RFC 7692 §7.2.3.2's shared-context 'Hello' twice", () => {
    const c = new ZlibDeflateCodec(P15, "client");
    expect(Buffer.from(c.decompress(hex("f248cdc9c90700"), true, 100)!).toString()).toBe("Hello");
    expect(Buffer.from(c.decompress(hex("f200110000"), true, 100)!).toString()).toBe("Hello");
  });

  it("context takeover makes a repeated message smaller; no_context_takeover does not", () => {
    const msg = utf8(JSON.stringify({ hello: "world", list: Array.from({ length: 20 }, (_, i) => `item-${i}`) }));
    for (const forceFallback of [false, true]) {
      const keep = new ZlibDeflateCodec(P15, "client", { forceFallback });
      const reset = new ZlibDeflateCodec({ ...P15, clientNoContextTakeover: true }, "client", { forceFallback });
      const k1 = keep.compress(msg).length;
      const k2 = keep.compress(msg).length;
      const r1 = reset.compress(msg).length;
      const r2 = reset.compress(msg).length;
      expect(k2).toBeLessThan(k1 / 2);
      expect(r2).toBe(r1);
    }
  });

  it("interoperates between the streaming path and the fallback, in both directions, in pieces", () => {
    const msgs = Array.from({ length: 12 }, (_, i) => utf8(`message ${i} `.repeat(i * 7) + "end"));
    for (const [sendFallback, receiveFallback] of [[false, true], [true, false], [true, true]]) {
      const tx = new ZlibDeflateCodec(P15, "server", { forceFallback: sendFallback });
      const rx = new ZlibDeflateCodec(P15, "client", { forceFallback: receiveFallback });
      for (const m of msgs) {
        const c = tx.compress(m);
        const mid = c.length >> 1;
        const out = concat(rx.decompress(c.subarray(0, mid), false, 1 << 20)!, rx.decompress(c.subarray(mid), true, 1 << 20)!);
        expect(toHex(out)).toBe(toHex(m));
      }
    }
  });

  it("window bits 8: compresses with 9 within 8's distances, inflates with 8", () => {
    const p8 = { ...P15, serverMaxWindowBits: 8, clientMaxWindowBits: 8 };
    const block = Uint8Array.from({ length: 300 }, (_, i) => (i * 7919) % 251);
    const msg = concat(block, block, block, utf8("tail".repeat(100)));
    const tx = new ZlibDeflateCodec(p8, "server");
    const rx = new ZlibDeflateCodec(p8, "client");
    for (let i = 0; i < 5; i++) {
      const c = tx.compress(msg);
      // zlib itself, with a 256-byte window, accepts it: no distance beyond 256.
      const check = zlib.inflateRawSync(Buffer.concat([c, hex("0000ffff")]), { windowBits: 8, finishFlush: zlib.constants.Z_SYNC_FLUSH });
      if (i === 0) expect(toHex(check)).toBe(toHex(msg));
      expect(toHex(rx.decompress(c, true, 1 << 20)!)).toBe(toHex(msg));
    }
  });

  it("stops inflating at the limit: null for a decompression bomb, exactly at the limit passes", () => {
    const bomb = new ZlibDeflateCodec(P15, "server").compress(new Uint8Array(32 << 20));
    for (const forceFallback of [false, true]) {
      expect(new ZlibDeflateCodec(P15, "client", { forceFallback }).decompress(bomb, true, 1 << 20)).toBeNull();
      const exact = new ZlibDeflateCodec(P15, "server", { forceFallback }).compress(new Uint8Array(5000));
      expect(new ZlibDeflateCodec(P15, "client", { forceFallback }).decompress(exact, true, 5000)!.length).toBe(5000);
      expect(new ZlibDeflateCodec(P15, "client", { forceFallback }).decompress(exact, true, 4999)).toBeNull();
    }
  });

  it("throws on corrupt data and after close", () => {
    for (const forceFallback of [false, true]) {
      const c = new ZlibDeflateCodec(P15, "client", { forceFallback });
      expect(() => c.decompress(hex("ff ff ff ff 00"), true, 100)).toThrow();
      const d = new ZlibDeflateCodec(P15, "client", { forceFallback });
      d.close();
      d.close();
      expect(() => d.compress(utf8("x"))).toThrow(/closed/);
      expect(() => d.decompress(utf8("x"), true, 10)).toThrow(/closed/);
    }
  });

  it("after an empty compressed message the context is intact", () => {
    const params = P15;
    const tx = new ZlibDeflateCodec(params, "client");
    const server = new WebSocketConnection({ role: "server", perMessageDeflate: { codec: new ZlibDeflateCodec(params, "server") } });
    server.receiveData(concat(cf(0xc1), cf(0xc1, tx.compress(utf8("after")))));
    expect(drain(server)).toEqual([{ type: "text", data: "" }, { type: "text", data: "after" }]);
  });
});

// ------------------------------------------------ every negotiation combination

const clientCombos: PerMessageDeflateClientOptions[] = [];
for (const serverNoContextTakeover of [false, true])
  for (const clientNoContextTakeover of [false, true])
    for (const serverMaxWindowBits of [undefined, 8, 11, 15])
      for (const clientMaxWindowBits of [true, false, 8, 12] as const)
        clientCombos.push({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits });

const serverCombos: PerMessageDeflateServerOptions[] = [];
for (const serverNoContextTakeover of [false, true])
  for (const clientNoContextTakeover of [false, true])
    for (const serverMaxWindowBits of [undefined, 9])
      for (const clientMaxWindowBits of [undefined, 10])
        serverCombos.push({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits, clientMaxWindowBits });

const messagesArb = fc.array(
  fc.oneof(
    fc.record({ text: fc.string({ maxLength: 60 }), repeat: fc.integer({ min: 0, max: 80 }) }).map(({ text, repeat }) => text.repeat(repeat)),
    fc.uint8Array({ maxLength: 3000 }),
    fc.constant(""),
  ),
  { minLength: 6, maxLength: 6 },
);

function exchange(from: WebSocketConnection, to: WebSocketConnection, messages: ReadonlyArray<string | Uint8Array>, compressEvery: number): void {
  const expected: Plain[] = [];
  messages.forEach((m, i) => {
    from.send(m, { compress: i % compressEvery !== compressEvery - 1 });
    expected.push(typeof m === "string" ? { type: "text", data: m } : { type: "binary", data: toHex(m) });
  });
  to.receiveData(from.takeOutput()!);
  expect(drain(to)).toEqual(expected);
}

/** The client's and the server's params for an offer and a server configuration, or null if the server declines. */
function negotiatePair(co: PerMessageDeflateClientOptions, so: PerMessageDeflateServerOptions) {
  const negotiated = negotiateDeflate(parseExtensions(buildDeflateOffer(co)), so);
  if (negotiated === null) return null;
  return { server: negotiated.params, client: acceptDeflateResponse(parseExtensions(negotiated.response)[0]!.params, co) };
}

describe("compressed round trips for every negotiation", () => {
  it(`${clientCombos.length} client offers × ${serverCombos.length} server configurations negotiate parameters both sides agree on, within what each asked`, () => {
    let declined = 0;
    for (const co of clientCombos) {
      for (const so of serverCombos) {
        const pair = negotiatePair(co, so);
        if (pair === null) {
          // Only a server that bounds the client's window may decline: the offer lacks client_max_window_bits.
          expect(so.clientMaxWindowBits).toBeDefined();
          expect(co.clientMaxWindowBits).toBe(false);
          declined++;
          continue;
        }
        expect(pair.client).toEqual(pair.server);
        const p = pair.server;
        if (co.serverNoContextTakeover || so.serverNoContextTakeover) expect(p.serverNoContextTakeover).toBe(true);
        if (co.clientNoContextTakeover || so.clientNoContextTakeover) expect(p.clientNoContextTakeover).toBe(true);
        if (co.serverMaxWindowBits !== undefined) expect(p.serverMaxWindowBits).toBeLessThanOrEqual(co.serverMaxWindowBits);
        if (so.serverMaxWindowBits !== undefined) expect(p.serverMaxWindowBits).toBeLessThanOrEqual(so.serverMaxWindowBits);
        if (typeof co.clientMaxWindowBits === "number") expect(p.clientMaxWindowBits).toBeLessThanOrEqual(co.clientMaxWindowBits);
        if (so.clientMaxWindowBits !== undefined) expect(p.clientMaxWindowBits).toBeLessThanOrEqual(so.clientMaxWindowBits);
      }
    }
    // Declined: the 16 offers without client_max_window_bits × the 8 servers that bound the client's window.
    expect(declined).toBe(16 * 8);
  });

  it("messages round trip compressed both ways, twice over one context, for any accepted negotiation and either codec path", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...clientCombos),
        fc.constantFrom(...serverCombos),
        messagesArb,
        fc.boolean(),
        fc.boolean(),
        (co, so, messages, clientFallback, serverFallback) => {
          const pair = negotiatePair(co, so);
          fc.pre(pair !== null);
          const client = new WebSocketConnection({
            role: "client",
            perMessageDeflate: { codec: new ZlibDeflateCodec(pair!.client, "client", { forceFallback: clientFallback }), threshold: 0 },
          });
          const server = new WebSocketConnection({
            role: "server",
            perMessageDeflate: { codec: new ZlibDeflateCodec(pair!.server, "server", { forceFallback: serverFallback }), threshold: 0 },
          });
          for (let round = 0; round < 2; round++) {
            exchange(client, server, messages, 4);
            exchange(server, client, messages, 5);
          }
          client.sendClose(1000);
          server.receiveData(client.takeOutput()!);
          drain(server);
          client.receiveData(server.takeOutput()!);
          drain(client);
          expect([client.state, server.state]).toEqual(["CLOSED", "CLOSED"]);
        },
      ),
      { numRuns: 600 },
    );
  });
});

describe("compressed split invariance", () => {
  it("a compressed stream gives the same events whole, byte by byte and at random splits (both codec paths)", () => {
    fc.assert(
      fc.property(messagesArb, fc.array(fc.nat(), { maxLength: 8 }), fc.boolean(), (messages, cuts, fallback) => {
        const sender = new WebSocketConnection({ role: "client", perMessageDeflate: { codec: new ZlibDeflateCodec(P15, "client"), threshold: 0 } });
        for (const m of messages) sender.send(m);
        const wire = Uint8Array.from(sender.takeOutput()!);
        const receive = (pieces: Uint8Array[]) => {
          const r = new WebSocketConnection({
            role: "server",
            perMessageDeflate: { codec: new ZlibDeflateCodec(P15, "server", { forceFallback: fallback }) },
          });
          const events: Plain[] = [];
          for (const p of pieces) {
            r.receiveData(Uint8Array.from(p));
            events.push(...drain(r));
          }
          return events;
        };
        const whole = receive([wire]);
        expect(whole).toEqual(messages.map((m) => (typeof m === "string" ? { type: "text", data: m } : { type: "binary", data: toHex(m) })));
        expect(receive(Array.from(wire, (b) => Uint8Array.of(b)))).toEqual(whole);
        const sorted = [...new Set(cuts.map((c) => c % wire.length))].sort((a, b) => a - b);
        const pieces: Uint8Array[] = [];
        let prev = 0;
        for (const c of [...sorted, wire.length]) {
          pieces.push(wire.slice(prev, c));
          prev = c;
        }
        expect(receive(pieces)).toEqual(whole);
      }),
      { numRuns: 40 },
    );
  });
});
