/**
 * Every limit holds for random sizes: maxHeaderBytes (431, head and
 * trailers), maxUrlLength (414), maxBodyBytes (413, Content-Length and
 * chunked, with and without the application raising it when the request
 * event arrives), maxRequestsInFlight (parsing pauses and resumes).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_HEADER_BYTES,
  DEFAULT_MAX_REQUESTS_IN_FLIGHT,
  DEFAULT_MAX_URL_LENGTH,
  type ServerConnection,
  type ServerEvent,
} from "../../src/protocols/http1";
import {
  byteByByte,
  bytes,
  chunkSizesArb,
  closes,
  feed,
  finals,
  headersArb,
  latin1,
  makeConn,
  methodArb,
  parseResponses,
  splitAt,
  splitPoints,
  theError,
  types,
  type NormEvent,
} from "./helpers";

const RUNS = { numRuns: 120 };

/** The error event, or null if there is none (at most one allowed). */
function errorOf(events: readonly NormEvent[]): Extract<NormEvent, { type: "error" }> | null {
  const errors = events.filter((e): e is Extract<NormEvent, { type: "error" }> => e.type === "error");
  expect(errors.length).toBeLessThanOrEqual(1);
  return errors[0] ?? null;
}

/** Checks that a run ended in a clean rejection with `status`. */
function expectRejected(r: { events: NormEvent[]; output: string }, conn: ServerConnection, status: number, code: string): void {
  const err = theError(r.events);
  expect(err).toMatchObject({ status, code });
  const rs = finals(parseResponses(r.output));
  expect(rs[rs.length - 1]!.status).toBe(status);
  expect(closes(rs[rs.length - 1]!)).toBe(true);
  expect(conn.mustClose).toBe(true);
}

describe("defaults", () => {
  it("are named and documented values", () => {
    expect(DEFAULT_MAX_HEADER_BYTES).toBe(64 * 1024);
    expect(DEFAULT_MAX_URL_LENGTH).toBe(8 * 1024);
    expect(DEFAULT_MAX_BODY_BYTES).toBe(100 * 1024 * 1024);
    expect(DEFAULT_MAX_REQUESTS_IN_FLIGHT).toBe(32);
  });

  it("a head just over the default is 431, one at the default URL limit is fine", () => {
    const big = `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${"a".repeat(DEFAULT_MAX_HEADER_BYTES)}\r\n\r\n`;
    const conn = makeConn();
    expectRejected(feed(conn, [bytes(big)]), conn, 431, "ERR_HEADERS_TOO_LARGE");
    const url = "/" + "u".repeat(DEFAULT_MAX_URL_LENGTH - 1);
    const ok = feed(makeConn(), [bytes(`GET ${url} HTTP/1.1\r\nHost: a\r\n\r\n`)]);
    expect(types(ok.events)).toEqual(["request", "end"]);
    const conn2 = makeConn();
    expectRejected(feed(conn2, [bytes(`GET ${url}u HTTP/1.1\r\nHost: a\r\n\r\n`)]), conn2, 414, "ERR_URL_TOO_LONG");
  });
});

describe("maxHeaderBytes (431)", () => {
  it("a head (request line and header lines) larger than the limit is 431, one that fits is read", () => {
    fc.assert(
      fc.property(
        methodArb,
        headersArb,
        fc.integer({ min: 0, max: 400 }),
        fc.integer({ min: -30, max: 30 }),
        splitPoints(1000, 6),
        (method, headers, fill, delta, points) => {
          let head = `${method} /path HTTP/1.1\r\nHost: a\r\n`;
          for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
          head += `X-Fill: ${"f".repeat(fill)}\r\n`;
          const size = head.length; // request line and header lines, with their CRLFs
          const limit = size + delta;
          fc.pre(limit >= 256);
          const input = bytes(head + "\r\n");
          for (const chunks of [splitAt(input, points), byteByByte(input)]) {
            const conn = makeConn({ maxHeaderBytes: limit });
            const r = feed(conn, chunks);
            if (size > limit) {
              expectRejected(r, conn, 431, "ERR_HEADERS_TOO_LARGE");
              expect(r.events.some((e) => e.type === "request")).toBe(false);
            } else {
              expect(errorOf(r.events), `a head of ${size} bytes under a limit of ${limit}, in ${chunks.length} pieces`).toBeNull();
              expect(types(r.events)).toEqual(["request", "end"]);
            }
          }
        },
      ),
      RUNS,
    );
  });

  it("trailers are limited separately: larger than the limit is 431", () => {
    fc.assert(
      fc.property(headersArb, fc.integer({ min: 0, max: 400 }), fc.integer({ min: -30, max: 30 }), splitPoints(1000, 6), (trailers, fill, delta, points) => {
        let lines = "";
        for (let i = 0; i < trailers.length; i += 2) lines += `${trailers[i]}: ${trailers[i + 1]}\r\n`;
        lines += `X-Fill: ${"t".repeat(fill)}\r\n`;
        const limit = lines.length + delta;
        fc.pre(limit >= 256);
        const input = bytes(`POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n${lines}\r\n`);
        for (const chunks of [splitAt(input, points), byteByByte(input)]) {
          const conn = makeConn({ maxHeaderBytes: limit });
          const r = feed(conn, chunks);
          if (lines.length > limit) {
            expectRejected(r, conn, 431, "ERR_HEADERS_TOO_LARGE");
            expect(theError(r.events).id).toBe(0);
          } else {
            expect(errorOf(r.events), `trailers of ${lines.length} bytes under a limit of ${limit}, in ${chunks.length} pieces`).toBeNull();
            expect(types(r.events)).toEqual(["request", "data", "end"]);
          }
        }
      }),
      RUNS,
    );
  });

  it("whether a head fits does not depend on how it is split", () => {
    // The same 249-byte head under a 256-byte limit, whole and byte by byte.
    const head = "GET / HTTP/1.1\r\nHost: a\r\nX-Long-Header-Name: " + "v".repeat(200) + "\r\n\r\n";
    expect(head.length).toBe(249);
    const whole = feed(makeConn({ maxHeaderBytes: 256 }), [bytes(head)]);
    const bytewise = feed(makeConn({ maxHeaderBytes: 256 }), byteByByte(bytes(head)));
    expect(types(whole.events)).toEqual(["request", "end"]);
    expect(bytewise.events).toEqual(whole.events);
  });

  it("a head one byte over the limit is refused, whole and byte by byte", () => {
    const head = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + "v".repeat(223) + "\r\n";
    expect(head.length).toBe(257);
    for (const chunks of [[bytes(head + "\r\n")], byteByByte(bytes(head + "\r\n"))]) {
      const conn = makeConn({ maxHeaderBytes: 256 });
      expectRejected(feed(conn, chunks), conn, 431, "ERR_HEADERS_TOO_LARGE");
    }
    const conn = makeConn({ maxHeaderBytes: 257 });
    expect(types(feed(conn, [bytes(head + "\r\n")]).events)).toEqual(["request", "end"]);
  });

  it("the limit applies to each request of a pipeline, not to their sum", () => {
    const one = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + "p".repeat(200) + "\r\n\r\n";
    const conn = makeConn({ maxHeaderBytes: 300, maxRequestsInFlight: 100 });
    const r = feed(conn, [bytes(one.repeat(20))]);
    expect(errorOf(r.events)).toBeNull();
    expect(r.events.filter((e) => e.type === "request")).toHaveLength(20);
  });
});

describe("maxUrlLength (414)", () => {
  it("a target longer than the limit is 414, one that fits is read", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: -20, max: 20 }), splitPoints(400, 6), (limit, delta, points) => {
        const length = Math.max(1, limit + delta);
        const target = "/" + "t".repeat(length - 1);
        const conn = makeConn({ maxUrlLength: limit });
        const r = feed(conn, splitAt(bytes(`GET ${target} HTTP/1.1\r\nHost: a\r\n\r\n`), points));
        if (length > limit) {
          expectRejected(r, conn, 414, "ERR_URL_TOO_LONG");
        } else {
          expect(errorOf(r.events)).toBeNull();
          expect(r.events[0]).toMatchObject({ type: "request", target });
        }
      }),
      RUNS,
    );
  });
});

describe("maxBodyBytes (413)", () => {
  /** What the application does when the request event arrives (lowering has its own test). */
  const raiseArb = fc.constantFrom("none" as const, "exact" as const, "infinity" as const);

  function limitFor(raise: "none" | "exact" | "infinity", length: number, limit: number): number {
    switch (raise) {
      case "none":
        return limit;
      case "exact":
        return Math.max(limit, length);
      case "infinity":
        return Infinity;
    }
  }

  function onRequest(raise: "none" | "exact" | "infinity", length: number, limit: number) {
    return (ev: ServerEvent, c: ServerConnection): void => {
      if (ev.type === "request" && ev.id === 0 && raise !== "none") c.setMaxBodyBytes(0, limitFor(raise, length, limit));
      if (ev.type === "end") c.writeResponse(ev.id, { status: 200 }, "ok");
    };
  }

  it("Content-Length: over the limit is 413 before any body byte, unless raised in time", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 300 }),
        fc.integer({ min: 0, max: 300 }),
        raiseArb,
        splitPoints(500, 6),
        (length, limit, raise, points) => {
          const conn = makeConn({ maxBodyBytes: limit });
          const body = "b".repeat(length);
          const input = `POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ${length}\r\n\r\n${body}GET /next HTTP/1.1\r\nHost: a\r\n\r\n`;
          const r = feed(conn, splitAt(bytes(input), points), { onEvent: onRequest(raise, length, limit) });
          const effective = limitFor(raise, length, limit);
          expect(r.events[0]).toMatchObject({ type: "request", id: 0, contentLength: length });
          if (length > effective) {
            expectRejected(r, conn, 413, "ERR_BODY_TOO_LARGE");
            expect(theError(r.events).id).toBe(0);
            expect(r.events.filter((e) => e.type === "data")).toEqual([]);
            expect(r.events.some((e) => e.type === "request" && e.id === 1)).toBe(false);
          } else {
            expect(errorOf(r.events)).toBeNull();
            expect(r.events.slice(1)).toEqual([
              ...(length > 0 ? [{ type: "data", id: 0, data: body }] : []),
              { type: "end", id: 0, trailers: [] },
              expect.objectContaining({ type: "request", id: 1, target: "/next" }),
              { type: "end", id: 1, trailers: [] },
            ]);
          }
        },
      ),
      RUNS,
    );
  });

  it("chunked: over the limit is 413, and no more than the limit is ever delivered", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }).chain((n) => fc.tuple(fc.constant(n), chunkSizesArb(n))),
        fc.integer({ min: 0, max: 300 }),
        raiseArb,
        splitPoints(600, 6),
        ([length, sizes], limit, raise, points) => {
          const conn = makeConn({ maxBodyBytes: limit });
          let input = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
          let at = 0;
          let body = "";
          for (const n of sizes) {
            const piece = String.fromCharCode(...Array.from({ length: n }, (_, i) => 97 + ((at + i) % 26)));
            input += `${n.toString(16)}\r\n${piece}\r\n`;
            body += piece;
            at += n;
          }
          input += "0\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n";
          const r = feed(conn, splitAt(bytes(input), points), { onEvent: onRequest(raise, length, limit) });
          const effective = limitFor(raise, length, limit);
          const delivered = r.events.filter((e) => e.type === "data").map((e) => (e as { data: string }).data).join("");
          expect(body.startsWith(delivered), "data is a prefix of the body").toBe(true);
          if (length > effective) {
            expectRejected(r, conn, 413, "ERR_BODY_TOO_LARGE");
            expect(theError(r.events).id).toBe(0);
            expect(delivered.length).toBeLessThanOrEqual(effective);
            expect(r.events.some((e) => e.type === "end")).toBe(false);
          } else {
            expect(errorOf(r.events)).toBeNull();
            expect(delivered).toBe(body);
            expect(types(r.events)).toEqual(["request", "data", "end", "request", "end"]);
          }
        },
      ),
      RUNS,
    );
  });

  it("the limit is per request: the next request starts from the configured value again", () => {
    const conn = makeConn({ maxBodyBytes: 3 });
    const input = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nworld";
    const r = feed(conn, [bytes(input)], {
      onEvent: (ev, c) => {
        if (ev.type === "request" && ev.id === 0) c.setMaxBodyBytes(0, 10);
        if (ev.type === "end") c.writeResponse(ev.id, { status: 200 }, "ok");
      },
    });
    expect(types(r.events)).toEqual(["request", "data", "end", "request", "error"]);
    expect(theError(r.events)).toMatchObject({ id: 1, status: 413 });
    expect(finals(parseResponses(r.output)).map((x) => x.status)).toEqual([200, 413]);
  });

  it("lowering the limit when the request event arrives applies to that request", () => {
    // setMaxBodyBytes "raises or lowers the body limit of the request being read; call it when
    // its request event arrives". The body may come in the same read as the head or later.
    const head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n";
    const chunkedHead = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    const cases: Array<[string, string[]]> = [
      ["Content-Length, body later", [head, "0123456789"]],
      ["Content-Length, body with the head", [head + "0123456789"]],
      ["chunked, body later", [chunkedHead, "a\r\n0123456789\r\n0\r\n\r\n"]],
      ["chunked, body with the head", [chunkedHead + "a\r\n0123456789\r\n0\r\n\r\n"]],
    ];
    for (const [name, pieces] of cases) {
      const conn = makeConn();
      const r = feed(conn, pieces.map(bytes), {
        onEvent: (ev, c) => {
          if (ev.type === "request") c.setMaxBodyBytes(ev.id, 3);
          if (ev.type === "end") c.writeResponse(ev.id, { status: 200 }, "ok");
        },
      });
      expect(r.events.map((e) => (e.type === "error" ? `${e.type} ${e.status}` : e.type)), name).toEqual(["request", "error 413"]);
      expect(finals(parseResponses(r.output)).map((x) => x.status), name).toEqual([413]);
    }
  });

  it("setMaxBodyBytes refuses a negative or NaN limit", () => {
    const conn = makeConn();
    feed(conn, [bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n")]);
    expect(() => conn.setMaxBodyBytes(0, -1)).toThrow(RangeError);
    expect(() => conn.setMaxBodyBytes(0, Number.NaN)).toThrow(RangeError);
  });

  it("the 413 error is returned by nextEvent right away, not after a paused", () => {
    // nextEvent's contract: need-data/paused only when nothing is queued.
    const conn = makeConn({ maxBodyBytes: 3 });
    conn.receiveData(bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"));
    const seen: string[] = [];
    for (let ev = conn.nextEvent(); ev.type !== "need-data" && ev.type !== "paused"; ev = conn.nextEvent()) seen.push(ev.type);
    expect(seen).toEqual(["request", "error"]);
  });
});

describe("maxRequestsInFlight", () => {
  it("parsing pauses at the limit and resumes as responses finish, in any answering order", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 12 }),
        fc.array(fc.nat(), { minLength: 12, maxLength: 12 }),
        splitPoints(1200, 8),
        fc.boolean(),
        (limit, count, picks, points, withBodies) => {
          const conn = makeConn({ maxRequestsInFlight: limit });
          let input = "";
          for (let i = 0; i < count; i++) {
            input += withBodies && i % 2 === 1 ? `POST /${i} HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nxx` : `GET /${i} HTTP/1.1\r\nHost: a\r\n\r\n`;
          }
          const seen: number[] = [];
          const finished = new Set<number>();
          const check = (ev: ServerEvent): void => {
            if (ev.type !== "request") return;
            seen.push(ev.id);
            // Never more than `limit` requests without a finished response.
            expect(seen.length - finished.size, `request ${ev.id} with ${finished.size} answered`).toBeLessThanOrEqual(limit);
            expect(conn.requestsInFlight).toBeLessThanOrEqual(limit);
          };
          const first = feed(conn, splitAt(bytes(input), points), { onEvent: check });
          expect(seen).toHaveLength(Math.min(count, limit));
          if (count > limit) expect(first.last).toBe("paused");
          let output = first.output;
          for (let step = 0; finished.size < count; step++) {
            const open = seen.filter((id) => !finished.has(id));
            expect(open.length, "stuck: no request to answer").toBeGreaterThan(0);
            const id = open[picks[step % picks.length]! % open.length]!;
            conn.writeResponse(id, { status: 200 }, String(id));
            finished.add(id);
            output += feed(conn, [], { onEvent: check }).output;
          }
          expect(seen).toEqual(Array.from({ length: count }, (_, i) => i));
          expect(parseResponses(output).map((x) => x.body)).toEqual(seen.map(String));
          expect(conn.mustClose).toBe(false);
          expect(conn.nextEvent().type).toBe("need-data");
          expect(latin1(conn.takeOutput())).toBe("");
        },
      ),
      RUNS,
    );
  });

  it("an upgrade request also stops parsing until it is answered", () => {
    const conn = makeConn();
    const r = feed(conn, [bytes("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")]);
    expect(r.events.filter((e) => e.type === "request")).toHaveLength(1);
    expect(r.last).toBe("paused");
  });
});
