/**
 * Unit tests of the HTTP/1.1 server engine: keep-alive, pipelining, bodies
 * both ways, trailers, 100-continue, HEAD, 1xx/204/304, errors the caller
 * makes (LocalProtocolError), Upgrade, graceful close, abort, EOF, Date.
 * The strict framing rules have their own file (strict-framing.test.ts).
 */
import { describe, expect, it } from "vitest";
import { LocalProtocolError } from "../../src/core/errors";
import { ServerConnection, httpDate } from "../../src/protocols/http1";
import {
  byteByByte,
  bytes,
  closes,
  drain,
  feed,
  finals,
  header,
  headerAll,
  latin1,
  makeConn,
  parseResponses,
  run,
  theError,
  types,
  type NormEvent,
} from "./helpers";

const GET = (target = "/", extra = ""): string => `GET ${target} HTTP/1.1\r\nHost: a\r\n${extra}\r\n`;

/** Ids of the request events, in order. */
function ids(events: readonly NormEvent[]): number[] {
  return events.flatMap((e) => (e.type === "request" ? [e.id] : []));
}

/** Takes the output as latin1 text. */
function out(conn: ServerConnection): string {
  return latin1(conn.takeOutput());
}

/** Expects `fn` to throw a LocalProtocolError with `code`. */
function expectLocal(fn: () => unknown, code: string): void {
  let caught: unknown = null;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${code}`).toBeInstanceOf(LocalProtocolError);
  expect((caught as LocalProtocolError).code).toBe(code);
}

describe("construction", () => {
  it("rejects bad options", () => {
    expect(() => new ServerConnection({ maxHeaderBytes: 10 })).toThrow(RangeError);
    expect(() => new ServerConnection({ maxRequestsInFlight: 0 })).toThrow(RangeError);
    expect(() => new ServerConnection({ maxUrlLength: Number.NaN })).toThrow(TypeError);
    expect(() => new ServerConnection({ maxBodyBytes: -1 })).toThrow(RangeError);
    expect(() => new ServerConnection({ maxBodyBytes: Infinity })).not.toThrow();
  });

  it("starts idle and waiting for data", () => {
    const conn = makeConn();
    expect(conn.isIdle).toBe(true);
    expect(conn.theirState).toBe("idle");
    expect(conn.nextEvent().type).toBe("need-data");
    expect(conn.mustClose).toBe(false);
    expect(conn.takeOutput()).toBeNull();
    expect(conn.trailingData).toBeNull();
  });
});

describe("keep-alive (RFC 9112 §9.3)", () => {
  it("HTTP/1.1 stays open by default and reads the next request", () => {
    const { conn, events } = run(GET("/1") + GET("/2"));
    expect(events.filter((e) => e.type === "request").map((e) => (e as { target: string }).target)).toEqual(["/1", "/2"]);
    expect((events[0] as { keepAlive: boolean }).keepAlive).toBe(true);
    conn.writeResponse(0, { status: 200 }, "one");
    conn.writeResponse(1, { status: 200 }, "two");
    const rs = parseResponses(out(conn), ["GET", "GET"]);
    expect(rs.map((r) => [r.status, r.body, header(r.headers, "connection")])).toEqual([
      [200, "one", null],
      [200, "two", null],
    ]);
    expect(conn.mustClose).toBe(false);
    expect(conn.isIdle).toBe(true);
    expect(conn.nextEvent().type).toBe("need-data");
  });

  it("HTTP/1.0 without keep-alive closes after the response and reads nothing more", () => {
    const { conn, events } = run("GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n");
    expect(ids(events)).toEqual([0]);
    expect((events[0] as { keepAlive: boolean; version: string }).keepAlive).toBe(false);
    expect(conn.mustClose).toBe(false); // a response is owed
    conn.writeResponse(0, { status: 200 }, "hi");
    const [r] = parseResponses(out(conn));
    expect(r!.body).toBe("hi");
    expect(closes(r!)).toBe(true);
    expect(conn.mustClose).toBe(true);
    expect(conn.nextEvent().type).toBe("paused");
  });

  it("HTTP/1.0 with Connection: keep-alive gets Connection: keep-alive back when the length is known", () => {
    const { conn, events } = run("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    expect(ids(events)).toEqual([0, 1]);
    expect((events[0] as { keepAlive: boolean }).keepAlive).toBe(true);
    conn.writeResponse(0, { status: 200 }, "abc");
    conn.writeHeaders(1, { status: 200, headers: ["Content-Length", "2"] });
    conn.write(1, "de");
    conn.finish(1);
    const rs = parseResponses(out(conn));
    expect(rs.map((r) => [r.body, r.framing, header(r.headers, "connection")])).toEqual([
      ["abc", "length", "keep-alive"],
      ["de", "length", "keep-alive"],
    ]);
    expect(conn.mustClose).toBe(false);
  });

  it("HTTP/1.0 keep-alive with an unknown length gets a close-delimited body and closes", () => {
    const { conn } = run("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n");
    conn.writeHeaders(0, { status: 200, headers: ["Content-Type", "text/plain"] });
    conn.write(0, "part1 ");
    conn.write(0, "part2");
    conn.finish(0);
    const text = out(conn);
    const [r] = parseResponses(text);
    expect(r!.framing).toBe("close");
    expect(r!.body).toBe("part1 part2");
    expect(header(r!.headers, "transfer-encoding")).toBeNull();
    expect(closes(r!)).toBe(true);
    expect(conn.mustClose).toBe(true);
    // The second request is dropped: the connection ends with this body.
    expect(conn.writeResponse(1, { status: 200 }, "x")).toBe(false);
    expect(conn.takeOutput()).toBeNull();
  });

  it("an HTTP/1.0 request with Transfer-Encoding is faulty framing: 400, or served and then closed (RFC 9112 §6.1)", () => {
    // "A server or client that receives an HTTP/1.0 message containing a Transfer-Encoding
    // header field MUST treat the message as if the framing is faulty, even if a
    // Content-Length is present, and close the connection after processing the message."
    const conn = makeConn();
    const r = feed(conn, [bytes("POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.0\r\n\r\n")]);
    expect(r.events.some((e) => e.type === "request" && e.target === "/next"), "nothing read after it").toBe(false);
    if (!r.events.some((e) => e.type === "error")) {
      conn.writeResponse(0, { status: 200 }, "x");
      expect(closes(parseResponses(out(conn))[0]!)).toBe(true);
    }
    expect(conn.mustClose).toBe(true);
  });

  it("a chunked response to HTTP/1.0 is refused", () => {
    const { conn } = run("GET /a HTTP/1.0\r\n\r\n");
    expectLocal(() => conn.writeHeaders(0, { status: 200, headers: ["Transfer-Encoding", "chunked"] }), "ERR_INVALID_FRAMING");
  });

  it("Connection: close from the client closes after the response", () => {
    const { conn, events } = run(GET("/a", "Connection: close\r\n") + GET("/smuggled"));
    expect(ids(events)).toEqual([0]);
    expect((events[0] as { keepAlive: boolean }).keepAlive).toBe(false);
    expect(conn.theirState).toBe("done");
    conn.writeResponse(0, { status: 200 }, "bye");
    const [r] = parseResponses(out(conn));
    expect(closes(r!)).toBe(true);
    expect(conn.mustClose).toBe(true);
  });

  it("Connection: close among other tokens, in any case, is honoured", () => {
    for (const value of ["Close", "keep-alive, close", "foo,CLOSE"]) {
      const { events } = run(GET("/a", `Connection: ${value}\r\n`));
      expect((events[0] as { keepAlive: boolean }).keepAlive, value).toBe(false);
    }
  });

  it("Connection: close from the response closes and drops later pipelined requests", () => {
    const { conn, events } = run(GET("/a") + GET("/b"));
    expect(ids(events)).toEqual([0, 1]);
    conn.writeResponse(1, { status: 200 }, "second"); // held behind the first
    conn.writeResponse(0, { status: 200, headers: ["Connection", "close"] }, "first");
    const rs = parseResponses(out(conn));
    expect(rs).toHaveLength(1);
    expect(rs[0]!.body).toBe("first");
    expect(headerAll(rs[0]!.headers, "connection")).toEqual(["close"]);
    expect(conn.mustClose).toBe(true);
    expect(conn.theirState).toBe("done");
    expect(conn.writeResponse(1, { status: 200 }, "x")).toBe(false);
  });

  it("a response Connection: close in a list of tokens is honoured too", () => {
    const { conn } = run(GET("/a") + GET("/b"));
    conn.writeResponse(0, { status: 200, headers: ["Connection", "x-foo, Close"] }, "first");
    expect(conn.mustClose).toBe(true);
    expect(parseResponses(out(conn))).toHaveLength(1);
  });
});

describe("pipelining", () => {
  it("responses produced out of order leave in request order", () => {
    const { conn, events } = run(GET("/0") + GET("/1") + GET("/2"));
    expect(ids(events)).toEqual([0, 1, 2]);
    conn.writeResponse(2, { status: 200 }, "two");
    expect(conn.takeOutput()).toBeNull();
    conn.writeHeaders(1, { status: 200 });
    conn.write(1, "on");
    expect(conn.takeOutput()).toBeNull();
    conn.writeResponse(0, { status: 200 }, "zero");
    // Response 0 goes out, followed by what response 1 has so far.
    let text = out(conn);
    expect(text.startsWith("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nzero")).toBe(true);
    expect(text.endsWith("2\r\non\r\n")).toBe(true);
    conn.write(1, "e");
    // Response 1 is now first: its bytes go out as they come.
    expect(latin1(conn.takeOutput())).toBe("1\r\ne\r\n");
    text += "1\r\ne\r\n";
    expect(conn.requestsInFlight).toBe(2);
    conn.finish(1);
    expect(conn.requestsInFlight).toBe(0);
    text += out(conn);
    expect(parseResponses(text).map((r) => r.body)).toEqual(["zero", "one", "two"]);
  });

  it("output of one batch is joined into one buffer", () => {
    const { conn } = run(GET("/0") + GET("/1"));
    conn.writeResponse(0, { status: 200 }, "a");
    conn.writeResponse(1, { status: 200 }, "b");
    expect(conn.outputLength).toBeGreaterThan(0);
    const all = conn.takeOutput()!;
    expect(parseResponses(latin1(all)).map((r) => r.body)).toEqual(["a", "b"]);
    expect(conn.outputLength).toBe(0);
    expect(conn.takeOutput()).toBeNull();
  });

  it("the same stream fed byte by byte gives the same events", () => {
    const input = bytes(GET("/0") + "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" + GET("/2"));
    const whole = feed(makeConn(), [input]);
    const bytewise = feed(makeConn(), byteByByte(input));
    expect(bytewise.events).toEqual(whole.events);
    expect(types(whole.events)).toEqual(["request", "end", "request", "data", "end", "request", "end"]);
  });
});

describe("request bodies", () => {
  it("Content-Length body", () => {
    const { events, last } = run("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world");
    expect(events).toMatchObject([
      { type: "request", method: "POST", contentLength: 11, chunked: false },
      { type: "data", data: "hello world" },
      { type: "end", trailers: [] },
    ]);
    expect(last).toBe("need-data");
  });

  it("Content-Length body in pieces waits for the rest", () => {
    const conn = makeConn();
    const r1 = feed(conn, [bytes("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nabc")]);
    expect(types(r1.events)).toEqual(["request", "data"]);
    expect(r1.last).toBe("need-data");
    expect(conn.theirState).toBe("body");
    expect(conn.isIdle).toBe(false);
    const r2 = feed(conn, [bytes("def")]);
    expect(r2.events).toEqual([
      { type: "data", id: 0, data: "def" },
      { type: "end", id: 0, trailers: [] },
    ]);
  });

  it("chunked body with extensions and trailers", () => {
    const { events } = run(
      "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "5;name=value\r\nhello\r\n6;q=\"a b\"\r\n world\r\n0\r\nX-Checksum: abc\r\nX-Other:  two words \r\n\r\n",
    );
    expect(events).toMatchObject([
      { type: "request", chunked: true, contentLength: null },
      { type: "data", data: "hello world" },
      { type: "end", trailers: ["X-Checksum", "abc", "X-Other", "two words"] },
    ]);
  });

  it("a zero Content-Length or no body at all ends at once", () => {
    for (const input of ["POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", GET()]) {
      const { events } = run(input);
      expect(types(events)).toEqual(["request", "end"]);
    }
  });

  it("header values are trimmed and names kept as sent", () => {
    const { events } = run("GET / HTTP/1.1\r\nhOsT: a\r\nX-A:\t \tv  a l\t \r\nX-Empty:\r\nX-Empty2:   \r\n\r\n");
    expect((events[0] as { headers: string[] }).headers).toEqual(["hOsT", "a", "X-A", "v  a l", "X-Empty", "", "X-Empty2", ""]);
  });

  it("obs-text in a value is kept byte for byte (latin1), also next to trailing whitespace", () => {
    // RFC 9110 §5.5: only SP and HTAB around a value are OWS; 0xA0 and 0x85 are obs-text.
    const { events } = run("GET / HTTP/1.1\r\nHost: a\r\nX-A: \xe9t\xe9\xa0 \r\nX-B: \x85\xa0\t\r\n\r\n");
    expect((events[0] as { headers: string[] }).headers).toEqual(["Host", "a", "X-A", "\xe9t\xe9\xa0", "X-B", "\x85\xa0"]);
  });
});

describe("response bodies", () => {
  it("writeHeaders without a length is chunked, with trailers on finish", () => {
    const { conn } = run(GET());
    conn.writeHeaders(0, { status: 200, headers: ["Trailer", "X-Sum"] }, "ab");
    conn.write(0, "");
    conn.write(0, new Uint8Array([0x63, 0x64]));
    conn.finish(0, ["X-Sum", "42"]);
    const text = out(conn);
    expect(text).toContain("Transfer-Encoding: chunked\r\n");
    expect(text.endsWith("2\r\nab\r\n2\r\ncd\r\n0\r\nX-Sum: 42\r\n\r\n")).toBe(true);
    const [r] = parseResponses(text);
    expect(r).toMatchObject({ status: 200, body: "abcd", framing: "chunked", trailers: ["X-Sum", "42"] });
    expect(conn.isIdle).toBe(true);
  });

  it("writeHeaders with Content-Length writes the body as is", () => {
    const { conn } = run(GET());
    conn.writeHeaders(0, { status: 201, reason: "Made", headers: ["content-length", "5"] });
    conn.write(0, "12");
    conn.write(0, "345");
    conn.finish(0);
    const text = out(conn);
    expect(text.startsWith("HTTP/1.1 201 Made\r\n")).toBe(true);
    expect(text.endsWith("\r\n\r\n12345")).toBe(true);
    expect(text).not.toContain("Transfer-Encoding");
  });

  it("writeResponse adds Content-Length, also for an empty body", () => {
    const { conn } = run(GET() + GET());
    conn.writeResponse(0, { status: 404, headers: ["Content-Type", "text/plain"] }, "Not found");
    conn.writeResponse(1, { status: 200 });
    const rs = parseResponses(out(conn));
    expect(rs.map((r) => [r.status, r.reason, header(r.headers, "content-length"), r.body])).toEqual([
      [404, "Not Found", "9", "Not found"],
      [200, "OK", "0", ""],
    ]);
  });

  it("a user Transfer-Encoding: chunked is not repeated", () => {
    const { conn } = run(GET());
    conn.writeHeaders(0, { status: 200, headers: ["Transfer-Encoding", "chunked"] });
    conn.finish(0);
    const [r] = parseResponses(out(conn));
    expect(headerAll(r!.headers, "transfer-encoding")).toEqual(["chunked"]);
  });

  it("Content-Length with Transfer-Encoding, a bad Content-Length or another coding are refused", () => {
    const { conn } = run(GET());
    expectLocal(() => conn.writeHeaders(0, { status: 200, headers: ["Content-Length", "1", "Transfer-Encoding", "chunked"] }), "ERR_INVALID_FRAMING");
    expectLocal(() => conn.writeHeaders(0, { status: 200, headers: ["Content-Length", "1", "Content-Length", "2"] }), "ERR_INVALID_CONTENT_LENGTH");
    expectLocal(() => conn.writeHeaders(0, { status: 200, headers: ["Content-Length", "-1"] }), "ERR_INVALID_CONTENT_LENGTH");
    expectLocal(() => conn.writeHeaders(0, { status: 200, headers: ["Transfer-Encoding", "gzip"] }), "ERR_INVALID_TRANSFER_ENCODING");
    expect(conn.takeOutput()).toBeNull();
    // Nothing was sent: the response can still be written.
    expect(conn.writeResponse(0, { status: 200 }, "ok")).toBe(true);
    expect(parseResponses(out(conn))[0]!.body).toBe("ok");
  });

  it("API misuse is a LocalProtocolError naming the problem", () => {
    const { conn } = run(GET() + GET());
    expectLocal(() => conn.write(0, "x"), "ERR_HEADERS_NOT_SENT");
    expectLocal(() => conn.finish(0), "ERR_HEADERS_NOT_SENT");
    expectLocal(() => conn.writeResponse(7, { status: 200 }), "ERR_UNKNOWN_REQUEST");
    expectLocal(() => conn.writeResponse(-1, { status: 200 }), "ERR_UNKNOWN_REQUEST");
    expectLocal(() => conn.writeHeaders(0, { status: 1000 }), "ERR_INVALID_STATUS");
    expectLocal(() => conn.writeHeaders(0, { status: 199 }), "ERR_INVALID_STATUS");
    expectLocal(() => conn.writeHeaders(0, { status: 101 }), "ERR_NOT_UPGRADE");
    conn.writeHeaders(0, { status: 200 });
    expectLocal(() => conn.writeHeaders(0, { status: 200 }), "ERR_HEADERS_SENT");
    expectLocal(() => conn.writeResponse(0, { status: 200 }), "ERR_HEADERS_SENT");
    conn.finish(0);
    expectLocal(() => conn.write(0, "x"), "ERR_RESPONSE_FINISHED");
    expectLocal(() => conn.finish(0), "ERR_RESPONSE_FINISHED");
    // Request 1 is unaffected.
    expect(conn.writeResponse(1, { status: 200 }, "ok")).toBe(true);
    expect(finals(parseResponses(out(conn))).map((r) => r.body)).toEqual(["", "ok"]);
  });
});

describe("Content-Length mismatches in responses", () => {
  it("finishing short throws and the connection closes", () => {
    const { conn } = run(GET() + GET("/next"));
    conn.writeHeaders(0, { status: 200, headers: ["Content-Length", "5"] });
    conn.write(0, "abc");
    expectLocal(() => conn.finish(0), "ERR_CONTENT_LENGTH_SHORT");
    expect(conn.mustClose).toBe(true);
    expect(conn.theirState).toBe("done");
    expect(conn.writeResponse(1, { status: 200 }, "x")).toBe(false);
    const text = out(conn);
    expect(text.endsWith("\r\n\r\nabc")).toBe(true);
  });

  it("writing past the declared length throws without writing the chunk", () => {
    const { conn } = run(GET());
    conn.writeHeaders(0, { status: 200, headers: ["Content-Length", "3"] });
    conn.write(0, "ab");
    const before = conn.outputLength;
    expectLocal(() => conn.write(0, "cd"), "ERR_CONTENT_LENGTH_EXCEEDED");
    expect(conn.outputLength).toBe(before);
  });

  it("writeResponse with a body that differs from its Content-Length throws before writing", () => {
    const { conn } = run(GET());
    expectLocal(() => conn.writeResponse(0, { status: 200, headers: ["Content-Length", "2"] }, "abc"), "ERR_CONTENT_LENGTH_MISMATCH");
    expect(conn.takeOutput()).toBeNull();
  });
});

describe("header injection", () => {
  it("CR, LF or NUL in names, values, trailers, reasons and 1xx headers throws and writes nothing", () => {
    const bad: Array<[string, string, string]> = [
      ["X-A\r\nEvil", "1", "ERR_INVALID_HEADER_NAME"],
      ["X-A", "1\r\nEvil: 1", "ERR_INVALID_HEADER_VALUE"],
      ["X-A", "1\nEvil: 1", "ERR_INVALID_HEADER_VALUE"],
      ["X-A", "1\rEvil: 1", "ERR_INVALID_HEADER_VALUE"],
      ["X-A", "a\x00b", "ERR_INVALID_HEADER_VALUE"],
      ["X-A", "a\x7fb", "ERR_INVALID_HEADER_VALUE"],
      ["X A", "1", "ERR_INVALID_HEADER_NAME"],
      ["X:A", "1", "ERR_INVALID_HEADER_NAME"],
      ["", "1", "ERR_INVALID_HEADER_NAME"],
    ];
    for (const [name, value, code] of bad) {
      const { conn } = run(GET());
      expectLocal(() => conn.writeHeaders(0, { status: 200, headers: [name, value] }), code);
      expectLocal(() => conn.writeResponse(0, { status: 200, headers: ["X-Ok", "1", name, value] }, "x"), code);
      expectLocal(() => conn.sendInformational(0, { status: 103, headers: [name, value] }), code);
      expect(conn.takeOutput(), JSON.stringify([name, value])).toBeNull();
      conn.writeHeaders(0, { status: 200 });
      conn.takeOutput();
      expectLocal(() => conn.finish(0, [name, value]), code);
      expect(conn.takeOutput(), "no trailer bytes").toBeNull();
    }
  });

  it("a reason phrase with CR or LF throws", () => {
    const { conn } = run(GET());
    expectLocal(() => conn.writeResponse(0, { status: 200, reason: "OK\r\nX-Evil: 1" }), "ERR_INVALID_REASON");
    expectLocal(() => conn.writeResponse(0, { status: 200, reason: "OK\nX" }), "ERR_INVALID_REASON");
    expect(conn.takeOutput()).toBeNull();
  });
});

describe("Expect: 100-continue (RFC 9110 §10.1.1)", () => {
  const HEAD = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";

  it("100 is sent only by sendContinue, once", () => {
    const conn = makeConn();
    const r = feed(conn, [bytes(HEAD)]);
    expect(r.events).toMatchObject([{ type: "request", expectContinue: true }]);
    expect(r.output).toBe("");
    conn.sendContinue(0);
    conn.sendContinue(0);
    expect(out(conn)).toBe("HTTP/1.1 100 Continue\r\n\r\n");
    const r2 = feed(conn, [bytes("hello")]);
    expect(r2.events).toEqual([
      { type: "data", id: 0, data: "hello" },
      { type: "end", id: 0, trailers: [] },
    ]);
    conn.writeResponse(0, { status: 200 }, "thanks");
    const [resp] = parseResponses(out(conn));
    expect(resp!.status).toBe(200);
    expect(closes(resp!)).toBe(false);
    expect(conn.mustClose).toBe(false);
  });

  it("a final response without 100 before the body closes the connection", () => {
    const conn = makeConn();
    feed(conn, [bytes(HEAD)]);
    conn.writeResponse(0, { status: 200 }, "no body needed");
    const [resp] = parseResponses(out(conn));
    expect(closes(resp!)).toBe(true);
    expect(conn.mustClose).toBe(true);
    expect(conn.nextEvent().type).toBe("paused");
  });

  it("the application may answer 417", () => {
    const conn = makeConn();
    feed(conn, [bytes(HEAD)]);
    conn.writeResponse(0, { status: 417 });
    const [resp] = parseResponses(out(conn));
    expect(resp!.status).toBe(417);
    expect(resp!.reason).toBe("Expectation Failed");
    expect(closes(resp!)).toBe(true);
    expect(conn.mustClose).toBe(true);
  });

  it("sendContinue does nothing once the final response started, or for a request that did not ask", () => {
    const conn = makeConn();
    feed(conn, [bytes(HEAD + "hello" + GET())]);
    conn.writeHeaders(0, { status: 200, headers: ["Content-Length", "0"] });
    conn.sendContinue(0);
    conn.finish(0);
    conn.sendContinue(1);
    const rs = parseResponses(out(conn));
    expect(rs.map((r) => r.status)).toEqual([200]);
  });

  it("sendInformational(100) counts as the continue", () => {
    const conn = makeConn();
    feed(conn, [bytes(HEAD)]);
    conn.sendInformational(0, { status: 100 });
    conn.sendContinue(0);
    expect(out(conn)).toBe("HTTP/1.1 100 Continue\r\n\r\n");
    feed(conn, [bytes("hello")]);
    conn.writeResponse(0, { status: 200 });
    expect(closes(parseResponses(out(conn))[0]!)).toBe(false);
  });

  it("is ignored for HTTP/1.0 (no 1xx to a 1.0 client)", () => {
    const conn = makeConn();
    const r = feed(conn, [bytes("POST / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\nx")]);
    expect(r.events[0]).toMatchObject({ type: "request", expectContinue: false });
    conn.sendContinue(0);
    conn.sendInformational(0, { status: 103 });
    expect(conn.takeOutput()).toBeNull();
  });
});

describe("HEAD (RFC 9110 §9.3.2)", () => {
  it("has no body bytes even when written, and keeps Content-Length", () => {
    const { conn } = run("HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n" + GET());
    conn.writeResponse(0, { status: 200, headers: ["Content-Type", "text/plain"] }, "hello");
    conn.writeResponse(1, { status: 200 }, "get body");
    const text = out(conn);
    const rs = parseResponses(text, ["HEAD", "GET"]);
    expect(rs.map((r) => [r.status, header(r.headers, "content-length"), r.body])).toEqual([
      [200, "5", ""],
      [200, "8", "get body"],
    ]);
    expect(text).not.toContain("hello");
  });

  it("writeHeaders with Content-Length then write: the length is kept, the bytes dropped", () => {
    const { conn } = run("HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n");
    conn.writeHeaders(0, { status: 200, headers: ["Content-Length", "100"] });
    conn.write(0, "x".repeat(100));
    conn.finish(0);
    const text = out(conn);
    expect(text.endsWith("Content-Length: 100\r\n\r\n")).toBe(true);
    expect(conn.mustClose).toBe(false);
  });

  it("writeHeaders without a length then write: no chunk framing is sent", () => {
    const { conn } = run("HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n" + GET());
    conn.writeHeaders(0, { status: 200 });
    conn.write(0, "abc");
    conn.finish(0, ["X-T", "1"]);
    conn.writeResponse(1, { status: 200 }, "next");
    const rs = parseResponses(out(conn), ["HEAD", "GET"]);
    expect(rs.map((r) => r.body)).toEqual(["", "next"]);
  });
});

describe("1xx, 204 and 304", () => {
  it("sendInformational writes 1xx responses before the final one", () => {
    const { conn } = run(GET());
    conn.sendInformational(0, { status: 103, headers: ["Link", "</s.css>; rel=preload"] });
    conn.sendInformational(0, { status: 102 });
    conn.writeResponse(0, { status: 200 }, "done");
    const rs = parseResponses(out(conn));
    expect(rs.map((r) => [r.status, r.reason])).toEqual([
      [103, "Early Hints"],
      [102, "Processing"],
      [200, "OK"],
    ]);
    expect(rs[0]!.headers).toEqual(["Link", "</s.css>; rel=preload"]);
    expect(header(rs[0]!.headers, "date")).toBeNull();
  });

  it("sendInformational refuses 101, non-1xx, and anything after the final head", () => {
    const { conn } = run(GET());
    expectLocal(() => conn.sendInformational(0, { status: 101 }), "ERR_INVALID_STATUS");
    expectLocal(() => conn.sendInformational(0, { status: 200 }), "ERR_INVALID_STATUS");
    expectLocal(() => conn.sendInformational(0, { status: 99 }), "ERR_INVALID_STATUS");
    conn.writeHeaders(0, { status: 200 });
    expectLocal(() => conn.sendInformational(0, { status: 103 }), "ERR_HEADERS_SENT");
  });

  it("a 1xx for a later request waits for the earlier responses", () => {
    const { conn } = run(GET("/0") + GET("/1"));
    conn.sendInformational(1, { status: 103 });
    expect(conn.takeOutput()).toBeNull();
    conn.writeResponse(0, { status: 200 }, "zero");
    conn.writeResponse(1, { status: 200 }, "one");
    expect(parseResponses(out(conn)).map((r) => r.status)).toEqual([200, 103, 200]);
  });

  for (const status of [204, 304]) {
    it(`${status} has no body; writing one throws LocalProtocolError`, () => {
      const { conn } = run(GET() + GET() + GET());
      expectLocal(() => conn.writeResponse(0, { status }, "x"), "ERR_BODY_NOT_ALLOWED");
      conn.writeHeaders(0, { status });
      expectLocal(() => conn.write(0, "x"), "ERR_BODY_NOT_ALLOWED");
      conn.finish(0);
      conn.writeResponse(1, { status });
      conn.writeResponse(2, { status: 200 }, "after");
      const text = out(conn);
      const rs = parseResponses(text);
      expect(rs.map((r) => [r.status, r.body])).toEqual([
        [status, ""],
        [status, ""],
        [200, "after"],
      ]);
      for (const r of rs.slice(0, 2)) {
        expect(header(r.headers, "transfer-encoding")).toBeNull();
        expect(header(r.headers, "content-length")).toBeNull();
      }
      expect(conn.mustClose).toBe(false);
    });
  }

  it("204 with Content-Length or Transfer-Encoding is refused; 304 may carry the Content-Length of the resource", () => {
    const { conn } = run(GET() + GET());
    expectLocal(() => conn.writeHeaders(0, { status: 204, headers: ["Content-Length", "0"] }), "ERR_INVALID_FRAMING");
    expectLocal(() => conn.writeHeaders(0, { status: 204, headers: ["Transfer-Encoding", "chunked"] }), "ERR_INVALID_FRAMING");
    conn.writeResponse(0, { status: 204 });
    conn.writeHeaders(1, { status: 304, headers: ["Content-Length", "1234", "ETag", '"x"'] });
    conn.finish(1);
    const text = out(conn);
    expect(text.endsWith("Content-Length: 1234\r\nETag: \"x\"\r\n\r\n")).toBe(true);
    expect(conn.mustClose).toBe(false);
  });
});

describe("Upgrade (RFC 9110 §7.8)", () => {
  const UPGRADE = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";

  it("an upgrade request waits for its answer; 101 gives an upgrade event with the bytes after the head", () => {
    const conn = makeConn();
    const r = feed(conn, [bytes(UPGRADE + "\x81\x05hello"), bytes("more")]);
    expect(r.events).toMatchObject([
      { type: "request", id: 0, upgrade: true },
      { type: "end", id: 0 },
    ]);
    expect(r.last).toBe("paused");
    expect(conn.theirState).toBe("paused");
    conn.writeHeaders(0, { status: 101, headers: ["Upgrade", "websocket", "Connection", "Upgrade"] });
    const r2 = feed(conn, []);
    expect(r2.events).toEqual([{ type: "upgrade", id: 0, trailingData: "\x81\x05hellomore" }]);
    expect(latin1(conn.trailingData)).toBe("\x81\x05hellomore");
    expect(conn.theirState).toBe("switched");
    expect(r2.output.startsWith("HTTP/1.1 101 Switching Protocols\r\n")).toBe(true);
    expect(r2.output).not.toMatch(/Connection: close/i);
    expect(conn.mustClose).toBe(false);
    expect(() => conn.receiveData(bytes("x"))).toThrow(LocalProtocolError);
  });

  it("with nothing after the head, trailingData is empty", () => {
    const conn = makeConn();
    feed(conn, [bytes(UPGRADE)]);
    conn.writeHeaders(0, { status: 101, headers: ["Upgrade", "websocket", "Connection", "Upgrade"] });
    expect(drain(conn)).toEqual([{ type: "upgrade", id: 0, trailingData: "" }]);
    expect(conn.trailingData?.byteLength).toBe(0);
  });

  it("a non-101 answer continues HTTP parsing with the next pipelined request", () => {
    const conn = makeConn();
    const r = feed(conn, [bytes(UPGRADE + GET("/next"))]);
    expect(ids(r.events)).toEqual([0]);
    conn.writeResponse(0, { status: 426, headers: ["Upgrade", "websocket"] }, "no");
    const r2 = feed(conn, []);
    expect(r2.events).toMatchObject([
      { type: "request", id: 1, target: "/next", upgrade: false },
      { type: "end", id: 1 },
    ]);
    conn.writeResponse(1, { status: 200 }, "ok");
    expect(finals(parseResponses(r2.output + out(conn))).map((x) => x.status)).toEqual([426, 200]);
    expect(conn.mustClose).toBe(false);
  });

  it("Upgrade without Connection: upgrade is a plain request", () => {
    const { events } = run("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n" + GET("/2"));
    expect(events.filter((e) => e.type === "request").map((e) => (e as { upgrade: boolean }).upgrade)).toEqual([false, false]);
  });

  it("CONNECT is an upgrade", () => {
    const conn = makeConn();
    const r = feed(conn, [bytes("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01")]);
    expect(r.events[0]).toMatchObject({ type: "request", method: "CONNECT", target: "example.com:443", upgrade: true });
    conn.writeHeaders(0, { status: 101, headers: ["Upgrade", "tls"] });
    expect(drain(conn)).toEqual([{ type: "upgrade", id: 0, trailingData: "\x16\x03\x01" }]);
  });

  it("a 101 before the upgrade request's body is complete is refused (as h11 does)", () => {
    // RFC 9110 §7.8: the protocol changes after the 101 and the end of the request; bytes
    // of the request body are not the new protocol's. h11 raises LocalProtocolError here.
    const conn = makeConn();
    const r = feed(conn, [bytes("POST /u HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 6\r\n\r\nabc")]);
    expect(types(r.events)).toEqual(["request", "data"]);
    expectLocal(() => conn.writeHeaders(0, { status: 101, headers: ["Upgrade", "x"] }), "ERR_REQUEST_NOT_DONE");
    expect(conn.theirState).not.toBe("switched");
    const r2 = feed(conn, [bytes("defNEW")]);
    expect(r2.events).toEqual([
      { type: "data", id: 0, data: "def" },
      { type: "end", id: 0, trailers: [] },
    ]);
    conn.writeHeaders(0, { status: 101, headers: ["Upgrade", "x"] });
    expect(drain(conn)).toEqual([{ type: "upgrade", id: 0, trailingData: "NEW" }]);
  });

  it("an upgrade declined before its body ends: the next request is still read", () => {
    const conn = makeConn();
    feed(conn, [bytes("POST /u HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 3\r\n\r\n")]);
    conn.writeResponse(0, { status: 426, headers: ["Upgrade", "x"] }, "no");
    expect(closes(parseResponses(out(conn))[0]!)).toBe(false);
    const r = feed(conn, [bytes("abc" + GET("/next"))]);
    expect(r.events).toMatchObject([{ type: "data" }, { type: "end" }, { type: "request", id: 1, target: "/next" }, { type: "end", id: 1 }]);
    expect(conn.mustClose).toBe(false);
  });

  it("closeWhenDone while an upgrade waits: a 101 still hands over the bytes after the head, or is refused", () => {
    const conn = makeConn();
    feed(conn, [bytes(UPGRADE + "NEWPROTO")]);
    conn.closeWhenDone();
    let refused = false;
    try {
      conn.writeHeaders(0, { status: 101, headers: ["Upgrade", "websocket", "Connection", "Upgrade"] });
    } catch (e) {
      refused = e instanceof LocalProtocolError;
      if (!refused) throw e;
    }
    if (refused) {
      conn.writeResponse(0, { status: 503 });
      expect(closes(parseResponses(out(conn))[0]!)).toBe(true);
      expect(conn.mustClose).toBe(true);
    } else {
      expect(drain(conn)).toEqual([{ type: "upgrade", id: 0, trailingData: "NEWPROTO" }]);
    }
  });

  it("closeWhenDone while an upgrade waits: a declined answer closes", () => {
    const conn = makeConn();
    feed(conn, [bytes(UPGRADE + GET("/next"))]);
    conn.closeWhenDone();
    conn.writeResponse(0, { status: 200 }, "no");
    expect(closes(parseResponses(out(conn))[0]!)).toBe(true);
    expect(conn.mustClose).toBe(true);
    expect(drain(conn)).toEqual([]);
  });

  it("an upgrade with a body hands over only what follows the body", () => {
    const conn = makeConn();
    feed(conn, byteByByte(bytes("POST /u HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 3\r\n\r\nabcREST")));
    conn.writeHeaders(0, { status: 101, headers: ["Upgrade", "x"] });
    expect(drain(conn)).toEqual([{ type: "upgrade", id: 0, trailingData: "REST" }]);
  });
});

describe("closeWhenDone (graceful)", () => {
  it("an idle connection must close at once", () => {
    const conn = makeConn();
    conn.closeWhenDone();
    expect(conn.mustClose).toBe(true);
    expect(conn.nextEvent().type).toBe("paused");
  });

  it("an idle keep-alive connection after a response must close at once and reads nothing more", () => {
    const conn = makeConn();
    feed(conn, [bytes(GET())]);
    conn.writeResponse(0, { status: 200 });
    conn.takeOutput();
    conn.closeWhenDone();
    expect(conn.mustClose).toBe(true);
    conn.receiveData(bytes(GET("/late")));
    expect(drain(conn)).toEqual([]);
  });

  it("a busy connection closes after the last response, which carries Connection: close", () => {
    const conn = makeConn();
    feed(conn, [bytes(GET("/0") + GET("/1"))]);
    conn.closeWhenDone();
    expect(conn.mustClose).toBe(false);
    conn.writeResponse(0, { status: 200 }, "a");
    expect(conn.mustClose).toBe(false);
    conn.writeResponse(1, { status: 200 }, "b");
    const rs = parseResponses(out(conn));
    expect(rs.map((r) => [r.body, closes(r)])).toEqual([
      ["a", false],
      ["b", true],
    ]);
    expect(conn.mustClose).toBe(true);
  });

  it("a request being read is completed, then nothing more is read", () => {
    const conn = makeConn();
    feed(conn, [bytes("POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")]);
    conn.closeWhenDone();
    const r = feed(conn, [bytes("cd" + GET("/after"))]);
    expect(r.events).toEqual([
      { type: "data", id: 0, data: "cd" },
      { type: "end", id: 0, trailers: [] },
    ]);
    conn.writeResponse(0, { status: 200 });
    expect(closes(parseResponses(out(conn))[0]!)).toBe(true);
    expect(conn.mustClose).toBe(true);
  });

  it("a partial head is completed and answered with Connection: close", () => {
    const conn = makeConn();
    feed(conn, [bytes("GET /slow HTTP/1.1\r\nHo")]);
    expect(conn.isIdle).toBe(false);
    conn.closeWhenDone();
    const r = feed(conn, [bytes("st: a\r\n\r\n" + GET("/after"))]);
    expect(ids(r.events)).toEqual([0]);
    conn.writeResponse(0, { status: 200 });
    expect(closes(parseResponses(out(conn))[0]!)).toBe(true);
    expect(conn.mustClose).toBe(true);
  });
});

describe("abort()", () => {
  it("keeps output already produced, drops the rest, and must close", () => {
    const conn = makeConn();
    feed(conn, [bytes(GET("/0") + GET("/1") + GET("/2"))]);
    conn.writeResponse(0, { status: 200 }, "zero");
    conn.writeHeaders(1, { status: 200 });
    conn.write(1, "partial");
    conn.writeResponse(2, { status: 200 }, "held");
    conn.abort();
    expect(conn.mustClose).toBe(true);
    const text = out(conn);
    expect(text).toContain("zero");
    expect(text).toContain("partial");
    expect(text).not.toContain("held");
    expect(conn.write(1, "more")).toBe(false);
    expect(conn.finish(1)).toBe(false);
    expect(conn.writeResponse(2, { status: 200 })).toBe(false);
    expect(conn.takeOutput()).toBeNull();
    conn.receiveData(bytes(GET("/3")));
    expect(drain(conn)).toEqual([]);
  });
});

describe("receiveEof", () => {
  it("in the middle of a head is a 400 error", () => {
    const conn = makeConn();
    const r = feed(conn, [bytes("GET / HTTP/1.1\r\nHost: a\r\n")], { eof: true });
    const err = theError(r.events);
    expect(err).toMatchObject({ status: 400, code: "ERR_INCOMPLETE_REQUEST", id: null });
    expect(parseResponses(r.output)[0]!.status).toBe(400);
    expect(conn.mustClose).toBe(true);
  });

  it("in the middle of a body is a 400 error for that request", () => {
    const conn = makeConn();
    const r = feed(conn, [bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")], { eof: true });
    expect(types(r.events)).toEqual(["request", "data", "error"]);
    expect(theError(r.events)).toMatchObject({ status: 400, id: 0 });
    expect(conn.writeResponse(0, { status: 200 })).toBe(false);
    expect(parseResponses(r.output).map((x) => x.status)).toEqual([400]);
    expect(conn.mustClose).toBe(true);
  });

  it("between requests is a clean end; the owed response still goes out", () => {
    const conn = makeConn();
    const r = feed(conn, [bytes(GET())], { eof: true });
    expect(types(r.events)).toEqual(["request", "end"]);
    expect(conn.theirState).toBe("done");
    expect(conn.mustClose).toBe(false);
    conn.writeResponse(0, { status: 200 }, "last");
    expect(parseResponses(out(conn))[0]!.body).toBe("last");
    expect(conn.mustClose).toBe(true);
    expect(() => conn.receiveData(bytes("x"))).toThrow(LocalProtocolError);
  });

  it("on a fresh connection is a clean end", () => {
    const conn = makeConn();
    conn.receiveEof();
    expect(drain(conn)).toEqual([]);
    expect(conn.mustClose).toBe(true);
    expect(conn.takeOutput()).toBeNull();
  });
});

describe("Date header", () => {
  it("comes from the injected now, on responses and on errors", () => {
    const now = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
    const conn = new ServerConnection({ now: () => now });
    feed(conn, [bytes(GET() + "BAD\r\n\r\n")]);
    conn.writeResponse(0, { status: 200 });
    const rs = parseResponses(out(conn));
    expect(rs.map((r) => header(r.headers, "date"))).toEqual(["Tue, 02 Jan 2024 03:04:05 GMT", "Tue, 02 Jan 2024 03:04:05 GMT"]);
    expect(httpDate(now)).toBe("Tue, 02 Jan 2024 03:04:05 GMT");
  });

  it("follows the clock and is not added when the response has one or sendDate is false", () => {
    let now = 0;
    const conn = new ServerConnection({ now: () => now });
    feed(conn, [bytes(GET() + GET() + GET())]);
    conn.writeResponse(0, { status: 200 });
    now = 86_400_000 + 1500;
    conn.writeResponse(1, { status: 200, headers: ["date", "mine"] });
    conn.writeResponse(2, { status: 200 });
    const rs = parseResponses(out(conn));
    expect(rs.map((r) => headerAll(r.headers, "date"))).toEqual([["Thu, 01 Jan 1970 00:00:00 GMT"], ["mine"], ["Fri, 02 Jan 1970 00:00:01 GMT"]]);
    const quiet = makeConn({ sendDate: false });
    feed(quiet, [bytes(GET())]);
    quiet.writeResponse(0, { status: 200 });
    expect(header(parseResponses(out(quiet))[0]!.headers, "date")).toBeNull();
  });
});

describe("isIdle and requestsInFlight", () => {
  it("track partial input, open requests and finished responses", () => {
    const conn = makeConn();
    expect(conn.isIdle).toBe(true);
    feed(conn, [bytes("GET / HT")]);
    expect(conn.isIdle).toBe(false);
    expect(conn.requestsInFlight).toBe(0);
    feed(conn, [bytes("TP/1.1\r\nHost: a\r\n\r\n")]);
    expect(conn.isIdle).toBe(false);
    expect(conn.requestsInFlight).toBe(1);
    conn.writeHeaders(0, { status: 200 });
    expect(conn.isIdle).toBe(false);
    conn.finish(0);
    expect(conn.requestsInFlight).toBe(0);
    expect(conn.isIdle).toBe(true);
    feed(conn, [bytes("\r\n")]); // an empty line between requests (RFC 9112 §2.2)
    expect(conn.requestsInFlight).toBe(0);
  });

  it("a response finished before the request body ends keeps the connection alive (it carried no Connection: close)", () => {
    const conn = makeConn();
    feed(conn, [bytes("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")]);
    conn.writeResponse(0, { status: 200 }, "early");
    // RFC 9112 §9.3: the response keeps the connection (no Connection: close) ...
    expect(closes(parseResponses(out(conn))[0]!)).toBe(false);
    expect(conn.isIdle).toBe(false);
    // ... so once the body is read, the next request must be read too.
    const r = feed(conn, [bytes("cd" + GET("/next"))]);
    expect(types(r.events)).toEqual(["data", "end", "request", "end"]);
    expect(conn.mustClose).toBe(false);
  });
});
