/**
 * Property tests of the engine: split invariance, no exception for any
 * input, round trips between a client and a server engine, and UTF-8
 * positions against the reference checker.
 */
import { Buffer } from "node:buffer";
import * as zlib from "node:zlib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeFrame, WebSocketConnection, ZlibDeflateCodec, type PerMessageDeflateParams, type WebSocketRole } from "../../src/protocols/websocket";
import { byteByByte, concat, decodeAll, drain, echo, referenceFirstInvalid, splitAt, toHex, utf8, type Plain } from "./helpers";

const VALID_CLOSE = new Set([1002, 1007, 1009]);

/** permessage-deflate with every default: context takeover and 15-bit windows both ways. */
const P15: PerMessageDeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 };

/** Feeds `pieces` to a fresh engine (echoing messages) and returns events and output bytes. */
function feed(role: WebSocketRole, pieces: readonly Uint8Array[], options: { eof?: boolean; maxMessageSize?: number; deflate?: boolean } = {}) {
  const conn = new WebSocketConnection({
    role,
    maxMessageSize: options.maxMessageSize ?? 4096,
    maxFrameSize: 2048,
    maskKeySource: (b) => b.fill(0x5a), // deterministic, so that outputs compare
    perMessageDeflate: options.deflate ? { codec: new ZlibDeflateCodec(P15, role), threshold: 64 } : null,
  });
  const onEvent = echo(conn);
  const events: Plain[] = [];
  const out: Uint8Array[] = [];
  for (const p of pieces) {
    conn.receiveData(Uint8Array.from(p));
    events.push(...drain(conn, onEvent));
    const o = conn.takeOutput();
    if (o) out.push(Uint8Array.from(o));
  }
  if (options.eof) {
    conn.receiveEof();
    events.push(...drain(conn, onEvent));
  }
  return { events, out: toHex(concat(...out)), conn };
}

/** A frame, mostly following the rules, sometimes not. */
const frameArb = (masked: boolean) =>
  fc
    .record({
      kind: fc.constantFrom("text", "binary", "cont", "ping", "pong", "close", "weird"),
      fin: fc.boolean(),
      rsv: fc.constantFrom(0, 0, 0, 0, 1, 2, 4),
      payload: fc.oneof(
        fc.uint8Array({ maxLength: 40 }),
        fc.string({ maxLength: 30 }).map(utf8),
        fc.uint8Array({ minLength: 120, maxLength: 300 }),
      ),
      mask: fc.uint8Array({ minLength: 4, maxLength: 4 }),
      wrongMask: fc.boolean(),
      weirdOpcode: fc.constantFrom(3, 4, 5, 6, 7, 11, 12, 13, 14, 15),
      code: fc.constantFrom(1000, 1001, 1005, 1006, 1011, 1016, 3000, 4999, 5000),
    })
    .map((r) => {
      const opcode = { text: 1, binary: 2, cont: 0, ping: 9, pong: 10, close: 8, weird: r.weirdOpcode }[r.kind];
      let payload = r.payload;
      if (r.kind === "close") payload = payload.length === 1 ? payload : concat(Uint8Array.of(r.code >> 8, r.code & 0xff), payload.subarray(0, 20));
      if (r.kind === "ping" || r.kind === "pong" || r.kind === "close") payload = payload.subarray(0, r.fin ? 125 : 140);
      const useMask = r.wrongMask && r.rsv === 0 ? !masked : masked;
      return encodeFrame({
        fin: r.kind === "ping" || r.kind === "pong" || r.kind === "close" ? r.fin || r.rsv !== 0 : r.fin,
        rsv1: (r.rsv & 4) !== 0,
        rsv2: (r.rsv & 2) !== 0,
        rsv3: (r.rsv & 1) !== 0,
        opcode,
        payload,
        mask: useMask ? r.mask : null,
      });
    });

/**
 * A compressed message as a peer with permessage-deflate sends it: RSV1 on
 * the first of 1-3 frames, the payload deflated (sometimes a byte of it
 * flipped, sometimes cut short), text that may not be UTF-8 once inflated,
 * and sometimes large enough once inflated to pass the 4 KiB limit.
 */
const compressedArb = (masked: boolean) =>
  fc
    .record({
      binary: fc.boolean(),
      payload: fc.oneof(
        fc.string({ maxLength: 60 }).map(utf8),
        fc.uint8Array({ maxLength: 200 }),
        fc.integer({ min: 1000, max: 9000 }).map((n) => new Uint8Array(n).fill(0x61)),
      ),
      fragments: fc.integer({ min: 1, max: 3 }),
      flip: fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { nil: undefined, freq: 4 }),
      cut: fc.option(fc.nat(), { nil: undefined, freq: 6 }),
      mask: fc.uint8Array({ minLength: 4, maxLength: 4 }),
    })
    .map((r) => {
      const z = zlib.deflateRawSync(r.payload, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
      let wire = Uint8Array.from(z.subarray(0, z.length - 4));
      if (r.flip !== undefined && wire.length > 0) wire[r.flip[0] % wire.length]! ^= r.flip[1];
      if (r.cut !== undefined) wire = wire.subarray(0, r.cut % (wire.length + 1));
      const step = Math.ceil(wire.length / r.fragments) || 1;
      const frames: Uint8Array[] = [];
      for (let i = 0; i === 0 || i < wire.length; i += step) {
        const fin = i + step >= wire.length;
        frames.push(encodeFrame({ fin, rsv1: i === 0, opcode: i === 0 ? (r.binary ? 2 : 1) : 0, payload: wire.subarray(i, i + step), mask: masked ? r.mask : null }));
      }
      return concat(...frames);
    });

const streamArb = (masked: boolean) => fc.array(frameArb(masked), { maxLength: 8 }).map((frames) => concat(...frames));
const cutsArb = fc.array(fc.nat(), { maxLength: 10 });

function checkOutcome(events: Plain[]): void {
  const errors = events.filter((e) => e.type === "error");
  expect(errors.length).toBeLessThanOrEqual(1);
  if (errors.length === 1) {
    expect(events.at(-1)).toBe(errors[0]);
    expect(VALID_CLOSE.has((errors[0] as { closeCode: number }).closeCode)).toBe(true);
  }
  const closes = events.filter((e) => e.type === "close");
  expect(closes.length).toBeLessThanOrEqual(1);
}

describe("split invariance", () => {
  for (const role of ["server", "client"] as const) {
    it(`a ${role} sees the same events and writes the same bytes whole, byte by byte and at random splits`, () => {
      fc.assert(
        fc.property(streamArb(role === "server"), cutsArb, fc.boolean(), (bytes, cuts, eof) => {
          const whole = feed(role, [bytes], { eof });
          const bytewise = feed(role, byteByByte(bytes), { eof });
          const split = feed(role, splitAt(bytes, cuts.map((c) => (bytes.length ? c % bytes.length : 0))), { eof });
          expect(bytewise.events).toEqual(whole.events);
          expect(split.events).toEqual(whole.events);
          expect(bytewise.out).toBe(whole.out);
          expect(split.out).toBe(whole.out);
        }),
        { numRuns: 150 },
      );
    });
  }
});

describe("robustness", () => {
  for (const role of ["server", "client"] as const) {
    it(`random bytes never throw out of a ${role}: events, then at most one error with a valid close code`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 400 }), cutsArb, (bytes, cuts) => {
          const r = feed(role, splitAt(bytes, cuts.map((c) => (bytes.length ? c % bytes.length : 0))), { eof: true });
          checkOutcome(r.events);
          const error = r.events.find((e) => e.type === "error") as { closeCode: number } | undefined;
          const frames = decodeAll(Buffer.from(r.out, "hex"));
          if (error !== undefined) expect(frames.at(-1)).toMatchObject({ opcode: 8, code: error.closeCode });
          expect(r.conn.state).toBe("CLOSED");
        }),
        { numRuns: 300 },
      );
    });

    it(`structured garbage never throws out of a ${role} either`, () => {
      fc.assert(
        fc.property(streamArb(role === "server"), (bytes) => {
          const r = feed(role, [bytes]);
          checkOutcome(r.events);
          if (r.conn.error !== null) {
            expect(r.conn.shouldCloseTransport).toBe(true);
            expect(r.conn.error.closeCode).toBeDefined();
          }
        }),
        { numRuns: 300 },
      );
    });
  }
});

/**
 * An event as the split comparison with permessage-deflate sees it: an
 * error by its close code only. zlib notices bad data (or too much output)
 * somewhere after the byte at fault, so where the input was at the time
 * depends on the reads; and when a corrupt stream first inflates to bytes
 * that are not UTF-8, a read that ends before zlib sees the corruption
 * reports WS_ERR_INVALID_UTF8 where a whole read reports
 * WS_ERR_INVALID_COMPRESSED_DATA (the codec returns no output with its
 * error). Both are 1007; the messages before and the close code agree.
 */
function errorByCloseCode(e: Plain): Plain | { type: "error"; closeCode: number | undefined } {
  return e.type === "error" ? { type: "error", closeCode: e.closeCode } : e;
}

describe("robustness with permessage-deflate negotiated", () => {
  for (const role of ["server", "client"] as const) {
    it(`random bytes never throw out of a ${role} with permessage-deflate: events, then at most one error with a valid close code`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 400 }), cutsArb, (bytes, cuts) => {
          const r = feed(role, splitAt(bytes, cuts.map((c) => (bytes.length ? c % bytes.length : 0))), { eof: true, deflate: true });
          checkOutcome(r.events);
          const error = r.events.find((e) => e.type === "error") as { closeCode: number } | undefined;
          if (error !== undefined) expect(decodeAll(Buffer.from(r.out, "hex")).at(-1)).toMatchObject({ opcode: 8, code: error.closeCode });
          expect(r.conn.state).toBe("CLOSED");
        }),
        { numRuns: 300 },
      );
    });

    it(`compressed messages, good and corrupt, mixed with structured garbage never throw out of a ${role}; whole and split alike`, () => {
      const masked = role === "server";
      fc.assert(
        fc.property(fc.array(fc.oneof(compressedArb(masked), compressedArb(masked), frameArb(masked)), { maxLength: 6 }), cutsArb, (frames, cuts) => {
          const bytes = concat(...frames);
          const whole = feed(role, [bytes], { eof: true, deflate: true });
          checkOutcome(whole.events);
          if (whole.conn.error !== null) {
            expect(whole.conn.shouldCloseTransport).toBe(true);
            expect(decodeAll(Buffer.from(whole.out, "hex")).at(-1)).toMatchObject({ opcode: 8, code: whole.conn.error.closeCode });
          }
          expect(whole.conn.state).toBe("CLOSED");
          const split = feed(role, splitAt(bytes, cuts.map((c) => (bytes.length ? c % bytes.length : 0))), { eof: true, deflate: true });
          expect(split.events.map(errorByCloseCode)).toEqual(whole.events.map(errorByCloseCode));
        }),
        { numRuns: 200 },
      );
    });
  }

  it("the compressed-message generator reaches every outcome: text, binary, 1007 and 1009", () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(fc.array(compressedArb(true), { minLength: 1, maxLength: 3 }), (frames) => {
        const r = feed("server", [concat(...frames)], { eof: true, deflate: true });
        for (const e of r.events) seen.add(e.type === "error" ? String(e.closeCode) : e.type);
      }),
      { numRuns: 300, seed: 7 },
    );
    expect([...seen].sort()).toEqual(expect.arrayContaining(["1007", "1009", "binary", "text"]));
  });
});

/** A message to send: text or bytes, in up to 4 fragments, maybe with pings between. */
const messageArb = fc.record({
  data: fc.oneof(fc.string({ unit: "grapheme", maxLength: 300 }), fc.uint8Array({ maxLength: 3000 })),
  fragments: fc.integer({ min: 1, max: 4 }),
  ping: fc.option(fc.uint8Array({ maxLength: 125 }), { nil: undefined }),
});

describe("round trips", () => {
  for (const [from, to] of [["client", "server"], ["server", "client"]] as const) {
    it(`${from} → ${to}: messages, fragments and pings arrive as sent`, () => {
      fc.assert(
        fc.property(fc.array(messageArb, { maxLength: 6 }), cutsArb, (messages, cuts) => {
          const sender = new WebSocketConnection({ role: from });
          const receiver = new WebSocketConnection({ role: to, autoPong: false });
          const expected: Plain[] = [];
          for (const m of messages) {
            const isText = typeof m.data === "string";
            const bytes = isText ? utf8(m.data as string) : (m.data as Uint8Array);
            const step = Math.ceil(bytes.length / m.fragments) || 1;
            if (m.fragments === 1 || bytes.length === 0) {
              sender.send(m.data);
            } else {
              for (let i = 0; i < bytes.length; i += step) {
                sender.send(bytes.subarray(i, i + step), { binary: !isText, fin: i + step >= bytes.length });
                if (i === 0 && i + step < bytes.length && m.ping !== undefined) {
                  sender.sendPing(m.ping);
                  expected.push({ type: "ping", data: toHex(m.ping) });
                }
              }
            }
            expected.push(isText ? { type: "text", data: m.data as string } : { type: "binary", data: toHex(bytes) });
          }
          sender.sendClose(1000, "done");
          expected.push({ type: "close", code: 1000, reason: "done" });
          const wire = sender.takeOutput()!;
          const events: Plain[] = [];
          for (const piece of splitAt(wire, cuts.map((c) => c % wire.length))) {
            receiver.receiveData(piece);
            events.push(...drain(receiver));
          }
          expect(events).toEqual(expected);
          expect(receiver.state).toBe("CLOSED");
          sender.receiveData(receiver.takeOutput()!);
          expect(drain(sender)).toEqual([{ type: "close", code: 1000, reason: "" }]);
          expect(sender.state).toBe("CLOSED");
        }),
        { numRuns: 100 },
      );
    });
  }
});

describe("UTF-8 in text messages", () => {
  const nearlyValid = fc
    .tuple(fc.string({ unit: "binary", maxLength: 400 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0x80, max: 0xff })), { maxLength: 2 }))
    .map(([s, edits]) => {
      const bytes = Array.from(utf8(s));
      for (const [at, b] of edits) bytes.splice(at % (bytes.length + 1), 0, b);
      return Uint8Array.from(bytes);
    });

  for (const role of ["server", "client"] as const) {
  it(`fails at the reference's first invalid byte, whatever the fragmentation and the read splits (${role})`, () => {
    const mask = role === "server" ? Uint8Array.of(1, 2, 3, 4) : null;
    fc.assert(
      fc.property(nearlyValid, fc.array(fc.nat(), { maxLength: 4 }), cutsArb, (payload, fragCuts, readCuts) => {
        const pieces = splitAt(payload, fragCuts.map((c) => (payload.length ? c % payload.length : 0)));
        const frames = pieces.map((p, i) =>
          encodeFrame({ fin: i === pieces.length - 1, opcode: i === 0 ? 1 : 0, payload: p, mask }),
        );
        const wire = concat(...frames);
        const r = feed(role, splitAt(wire, readCuts.map((c) => c % wire.length)), { maxMessageSize: 1 << 20 });
        const position = referenceFirstInvalid(payload);
        if (position === -1) {
          expect(r.events).toEqual([{ type: "text", data: Buffer.from(payload).toString("utf8") }]);
        } else {
          expect(r.events).toEqual([{ type: "error", code: "WS_ERR_INVALID_UTF8", closeCode: 1007, position }]);
        }
      }),
      { numRuns: 300 },
    );
  });

  it(`fails before the rest of the message arrives (${role})`, () => {
    const mask = role === "server" ? Uint8Array.of(9, 8, 7, 6) : null;
    fc.assert(
      fc.property(fc.string({ maxLength: 50 }), fc.integer({ min: 0xf5, max: 0xff }), fc.string({ maxLength: 50 }), (a, bad, b) => {
        const payload = concat(utf8(a), Uint8Array.of(bad), utf8(b));
        const wire = encodeFrame({ fin: true, opcode: 1, payload, mask });
        const upToBad = wire.subarray(0, wire.length - utf8(b).length);
        const r = feed(role, [upToBad]);
        expect(r.events).toEqual([{ type: "error", code: "WS_ERR_INVALID_UTF8", closeCode: 1007, position: utf8(a).length }]);
      }),
      { numRuns: 100 },
    );
  });
  }
});
