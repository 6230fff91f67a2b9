/**
 * Strict framing: every ambiguous or malformed request is answered with one
 * 4xx/5xx (400, or 501 for a transfer coding we do not know, 505 for an HTTP
 * version other than 1.0/1.1) with `Connection: close`, and nothing after it
 * is ever read as a request: a smuggled second request never produces a
 * `request` event. Each case is fed whole, byte by byte and at random splits.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  byteByByte,
  bytes,
  closes,
  drain,
  feed,
  finals,
  header,
  makeConn,
  parseResponses,
  splitAt,
  splitPoints,
  theError,
  type NormEvent,
} from "./helpers";

const SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

interface Case {
  name: string;
  /** The bad request (the smuggled one is appended). */
  input: string;
  /** The status, or the statuses that are all acceptable. */
  status: number | number[];
  /** The error code, when it is ours (llhttp's codes are ERR_<llhttp name>). */
  code?: string;
  /** The error belongs to a request whose head was emitted. */
  afterHead?: boolean;
}

const POST = "POST / HTTP/1.1\r\nHost: a\r\n";
const CHUNKED = `${POST}Transfer-Encoding: chunked\r\n\r\n`;

const CASES: Case[] = [
  // RFC 9112 §6.3 (3): Content-Length with Transfer-Encoding is a smuggling attempt.
  { name: "Content-Length with Transfer-Encoding", input: `${POST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  { name: "Transfer-Encoding with Content-Length", input: `${POST}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`, status: 400 },
  // RFC 9112 §6.3 (5): differing Content-Length values are unrecoverable.
  { name: "differing duplicate Content-Length", input: `${POST}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, status: 400 },
  { name: "a Content-Length list", input: `${POST}Content-Length: 5, 6\r\n\r\nhello!`, status: 400 },
  { name: "a non-numeric Content-Length", input: `${POST}Content-Length: abc\r\n\r\n`, status: 400 },
  { name: "a negative Content-Length", input: `${POST}Content-Length: -1\r\n\r\n`, status: 400 },
  { name: "a signed Content-Length", input: `${POST}Content-Length: +5\r\n\r\nhello`, status: 400 },
  { name: "a fractional Content-Length", input: `${POST}Content-Length: 1.5\r\n\r\nhello`, status: 400 },
  { name: "an overflowing Content-Length", input: `${POST}Content-Length: 99999999999999999999999\r\n\r\n`, status: 400 },
  // RFC 9112 §6.3 (4): "If a Transfer-Encoding header field is present in a request and the
  // chunked transfer coding is not the final encoding, ... the server MUST respond with the 400
  // (Bad Request) status code and then close the connection." 400, not 501, even for gzip.
  { name: "Transfer-Encoding not ending in chunked", input: `${POST}Transfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, status: 400 },
  { name: "Transfer-Encoding without chunked", input: `${POST}Transfer-Encoding: gzip\r\n\r\nhello`, status: 400 },
  { name: "Transfer-Encoding: identity", input: `${POST}Transfer-Encoding: identity\r\n\r\nhello`, status: 400 },
  { name: "chunked applied twice", input: `${POST}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  // RFC 9112 §6.1: an unknown transfer coding SHOULD be answered with 501.
  { name: "an unknown coding before chunked", input: `${POST}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, status: 501, code: "ERR_UNSUPPORTED_TRANSFER_CODING" },
  { name: "an unknown coding in a separate line", input: `${POST}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 501, code: "ERR_UNSUPPORTED_TRANSFER_CODING" },
  // RFC 9112 §5.2: obs-fold in a request is rejected (or replaced; we reject).
  { name: "obs-fold", input: `${POST}X-A: a\r\n b\r\n\r\n`, status: 400 },
  { name: "obs-fold with a tab", input: `${POST}X-A: a\r\n\tb\r\n\r\n`, status: 400 },
  { name: "obs-fold hiding chunked", input: `${POST}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`, status: 400 },
  // RFC 9112 §2.2: a bare CR is an error; we also refuse bare LF as a line end.
  { name: "a bare CR in a value", input: `${POST}X-A: a\rb\r\n\r\n`, status: 400 },
  { name: "a bare CR ending the request line", input: "GET / HTTP/1.1\rHost: a\r\n\r\n", status: 400 },
  { name: "a bare CR ending a header line", input: `${POST}X-A: a\rContent-Length: 5\r\n\r\nhello`, status: 400 },
  { name: "a bare LF ending a header line", input: `${POST}X-A: a\nContent-Length: 5\r\n\r\nhello`, status: 400 },
  { name: "bare LFs only", input: "GET / HTTP/1.1\nHost: a\n\n", status: 400 },
  { name: "a bare LF ending the head", input: `${POST}X-A: a\r\n\n`, status: 400 },
  // RFC 9112 §7.1: chunk-size = 1*HEXDIG, then optional extensions, then CRLF.
  { name: "a non-hex chunk size", input: `${CHUNKED}zz\r\nhello\r\n0\r\n\r\n`, status: 400, afterHead: true },
  { name: "a negative chunk size", input: `${CHUNKED}-5\r\nhello\r\n0\r\n\r\n`, status: 400, afterHead: true },
  { name: "a 0x chunk size", input: `${CHUNKED}0x5\r\nhello\r\n0\r\n\r\n`, status: 400, afterHead: true },
  { name: "a space after the chunk size", input: `${CHUNKED}5 \r\nhello\r\n0\r\n\r\n`, status: 400, afterHead: true },
  { name: "an empty chunk size", input: `${CHUNKED}\r\nhello\r\n0\r\n\r\n`, status: 400, afterHead: true },
  { name: "an overflowing chunk size", input: `${CHUNKED}fffffffffffffffff\r\nhello\r\n0\r\n\r\n`, status: 400, afterHead: true },
  { name: "chunk data longer than its size", input: `${CHUNKED}5\r\nhello!!\r\n0\r\n\r\n`, status: 400, afterHead: true },
  { name: "a bare LF after the chunk size", input: `${CHUNKED}5\nhello\r\n0\r\n\r\n`, status: 400, afterHead: true },
  // RFC 9112 §5.1: no whitespace between the field name and the colon.
  { name: "a space before the colon", input: `${POST}Content-Length : 5\r\n\r\nhello`, status: 400 },
  { name: "a space before the colon of Host", input: "GET / HTTP/1.1\r\nHost : a\r\n\r\n", status: 400 },
  { name: "a space inside a field name", input: `${POST}X A: b\r\n\r\n`, status: 400 },
  { name: "a non-token char in a field name", input: `${POST}X@: b\r\n\r\n`, status: 400 },
  { name: "an empty field name", input: `${POST}: b\r\n\r\n`, status: 400 },
  { name: "whitespace before the first header", input: "GET / HTTP/1.1\r\n Host: a\r\n\r\n", status: 400 },
  { name: "NUL in a value", input: `${POST}X-A: a\x00b\r\n\r\n`, status: 400 },
  { name: "a control char in a value", input: `${POST}X-A: a\x01b\r\n\r\n`, status: 400 },
  // RFC 9112 §3.2: request-target has no CTLs or spaces.
  { name: "NUL in the target", input: "GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400 },
  { name: "a control char in the target", input: "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400 },
  { name: "DEL in the target", input: "GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n", status: 400 },
  { name: "a space in the target", input: "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", status: 400 },
  { name: "a bad method", input: "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", status: 400 },
  // RFC 9112 §3.2: a 1.1 request without Host, or with more than one, or an invalid one, is 400.
  { name: "no Host in HTTP/1.1", input: "GET / HTTP/1.1\r\n\r\n", status: 400, code: "ERR_BAD_HOST" },
  { name: "two Host lines", input: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", status: 400, code: "ERR_BAD_HOST" },
  { name: "two equal Host lines", input: "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", status: 400, code: "ERR_BAD_HOST" },
  { name: "two Host lines in HTTP/1.0", input: "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", status: 400, code: "ERR_BAD_HOST" },
  { name: "a Host with a space", input: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", status: 400, code: "ERR_BAD_HOST" },
  // RFC 9110 §6.2: we serve 1.0 and 1.1 only.
  { name: "HTTP/2.0 in a request line", input: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", status: 505, code: "ERR_HTTP_VERSION" },
  // llhttp itself refuses versions it does not know (HPE_INVALID_VERSION, 400 as in Node and h11).
  // 505 would do too (RFC 9110 §15.6.6); serving 1.2 as 1.1 (RFC 9110 §2.5) is not offered by llhttp.
  { name: "HTTP/1.2", input: "GET / HTTP/1.2\r\nHost: a\r\n\r\n", status: [400, 505] },
  { name: "HTTP/5.6", input: "GET / HTTP/5.6\r\nHost: a\r\n\r\n", status: [400, 505] },
  { name: "HTTP/0.9", input: "GET /\r\n\r\n", status: 505, code: "ERR_HTTP_VERSION" },
];

/** Fails unless the run is one clean rejection of `c`. */
function checkRejected(c: Case, chunks: Uint8Array[]): NormEvent[] {
  const conn = makeConn();
  const r = feed(conn, chunks);
  const err = theError(r.events);
  const statuses = typeof c.status === "number" ? [c.status] : c.status;
  expect(statuses, c.name).toContain(err.status);
  if (c.code !== undefined) expect(err.code, c.name).toBe(c.code);
  expect(r.events[r.events.length - 1], `${c.name}: the error is the last event`).toBe(err);
  expect(r.events.some((e) => e.type === "request" && e.target === "/smuggled"), `${c.name}: smuggled request`).toBe(false);
  const requests = r.events.filter((e) => e.type === "request");
  expect(requests.length, `${c.name}: at most the bad request itself`).toBeLessThanOrEqual(c.afterHead ? 1 : 0);
  expect(err.id, c.name).toBe(c.afterHead ? 0 : null);
  // One response, the error, with Connection: close; then the connection must close.
  const rs = finals(parseResponses(r.output));
  expect(rs.map((x) => x.status), c.name).toEqual([err.status]);
  expect(closes(rs[0]!), c.name).toBe(true);
  expect(header(rs[0]!.headers, "content-type")).toMatch(/^text\/plain/);
  expect(conn.mustClose, c.name).toBe(true);
  expect(conn.theirState).toBe("error");
  expect(r.last).toBe("paused");
  // Nothing more is read.
  conn.receiveData(bytes(SMUGGLED));
  expect(drain(conn)).toEqual([]);
  expect(conn.takeOutput()).toBeNull();
  if (c.afterHead) expect(conn.writeResponse(0, { status: 200 }, "x")).toBe(false);
  return r.events;
}

describe("strict framing: 4xx/5xx, Connection: close, nothing read after", () => {
  for (const c of CASES) {
    it(c.name, () => {
      const input = bytes(c.input + SMUGGLED);
      const whole = checkRejected(c, [input]);
      expect(checkRejected(c, byteByByte(input))).toEqual(whole);
      fc.assert(
        fc.property(splitPoints(input.byteLength, 6), (points) => {
          expect(checkRejected(c, splitAt(input, points))).toEqual(whole);
        }),
        { numRuns: 5 },
      );
    });
  }

  it("an error after good pipelined requests waits for their responses", () => {
    const conn = makeConn();
    const r = feed(conn, [bytes("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost : a\r\n\r\n" + SMUGGLED)]);
    expect(r.events.map((e) => e.type)).toEqual(["request", "end", "request", "end", "error"]);
    expect(r.output).toBe("");
    expect(conn.mustClose).toBe(false);
    conn.writeResponse(1, { status: 200 }, "two");
    expect(conn.takeOutput()).toBeNull();
    conn.writeResponse(0, { status: 200 }, "one");
    const rs = parseResponses(String.fromCharCode(...conn.takeOutput()!));
    expect(rs.map((x) => [x.status, x.body.slice(0, 3)])).toEqual([
      [200, "one"],
      [200, "two"],
      [400, "Bad"],
    ]);
    expect(closes(rs[0]!)).toBe(false);
    expect(closes(rs[2]!)).toBe(true);
    expect(conn.mustClose).toBe(true);
  });

  it("an error while a response is half written closes after what precedes it", () => {
    const conn = makeConn();
    feed(conn, [bytes(`${CHUNKED}5\r\nhello\r\n`)]);
    conn.writeHeaders(0, { status: 200 });
    conn.write(0, "partial");
    const r = feed(conn, [bytes("zz\r\n")]);
    expect(theError(r.events)).toMatchObject({ id: 0, status: 400 });
    expect(conn.write(0, "more")).toBe(false);
    expect(conn.mustClose).toBe(true);
    // The response could not be completed: no 400 is appended to a half response.
    expect(r.output).not.toContain("400");
  });

  it("the error answering a HEAD request has no body (RFC 9110 §9.3.2)", () => {
    for (const input of ["HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab", `HEAD / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`]) {
      const conn = makeConn();
      const r = feed(conn, [bytes(input)], { eof: true });
      expect(theError(r.events)).toMatchObject({ id: 0, status: 400 });
      // Read as the answer to a HEAD: one response, nothing after it.
      const rs = parseResponses(r.output, ["HEAD"]);
      expect(rs.map((x) => x.status)).toEqual([400]);
      expect(closes(rs[0]!)).toBe(true);
    }
  });

  it("an empty Host is fine when the target has no authority (RFC 9112 §3.2)", () => {
    const conn = makeConn();
    const r = feed(conn, [bytes("GET / HTTP/1.1\r\nHost:\r\n\r\n")]);
    expect(r.events.map((e) => e.type)).toEqual(["request", "end"]);
  });

  it("a bare CR is refused even in an HTTP/1.0 request without Host", () => {
    const conn = makeConn();
    const r = feed(conn, [bytes("GET / HTTP/1.0\r\nX: a\rb\r\n\r\n")]);
    expect(theError(r.events).status).toBe(400);
  });
});
