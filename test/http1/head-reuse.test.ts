/**
 * The engine keeps the last response head of a connection and reuses it when
 * the next response has the same status and headers. These tests hold it to
 * what matters: a response's bytes never depend on the responses sent before
 * it on the connection, and a header that changed is checked again.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LocalProtocolError } from "../../src/core/errors";
import { ServerConnection } from "../../src/protocols/http1";
import { bytes, drainRaw, latin1 } from "./helpers";

interface Exchange {
  method: "GET" | "HEAD";
  http10: boolean;
  status: number;
  reason: string | undefined;
  headers: string[];
  body: { kind: "none" } | { kind: "text"; text: string } | { kind: "bytes"; text: string } | { kind: "streamed"; text: string };
  /** Seconds after the start: the Date line changes with it. */
  second: number;
}

const START = Date.UTC(2026, 11, 4, 12, 0, 0);

const HEADER_POOL: ReadonlyArray<readonly [string, string]> = [
  ["Content-Type", "text/plain"],
  ["content-type", "text/html; charset=UTF-8"],
  ["Server", "typhoon"],
  ["Etag", '"12-aff3a411f0d7bacc"'],
  ["Etag", '"13-aff3a411f0d7bacc"'],
  ["X-Id", "1"],
  ["X-Id", "2"],
  ["Cache-Control", "no-store"],
  ["Date", "Thu, 01 Jan 1970 00:00:00 GMT"],
];

const exchangeArb: fc.Arbitrary<Exchange> = fc
  .record({
    method: fc.constantFrom("GET" as const, "HEAD" as const),
    http10: fc.boolean(),
    status: fc.constantFrom(200, 200, 201, 204, 304, 404, 418, 599),
    reason: fc.constantFrom(undefined, undefined, "Custom", "Other Reason"),
    headers: fc.array(fc.constantFrom(...HEADER_POOL), { maxLength: 4 }).map((pairs) => pairs.flat()),
    text: fc.constantFrom("", "Hello, world", "Hello, world!", "x".repeat(600)),
    bodyKind: fc.constantFrom("none", "text", "text", "bytes", "streamed"),
    second: fc.integer({ min: 0, max: 2 }),
  })
  .map(({ text, bodyKind, ...rest }) => {
    const noBody = rest.status === 204 || rest.status === 304;
    const kind = noBody ? "none" : bodyKind;
    return { ...rest, body: kind === "none" ? { kind } : { kind, text } } as Exchange;
  });

function requestText(ex: Exchange): string {
  return ex.http10
    ? `${ex.method} / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n`
    : `${ex.method} / HTTP/1.1\r\nHost: a\r\n\r\n`;
}

/** Sends `ex` as the next request on `conn` and answers it; returns the response's bytes as text. */
function answer(conn: ServerConnection, ex: Exchange, clock: { now: number }): string {
  clock.now = START + ex.second * 1000 + 123;
  conn.receiveData(bytes(requestText(ex)));
  const { events } = drainRaw(conn);
  const request = events.find((e) => e.type === "request");
  if (request === undefined || request.type !== "request") throw new Error("no request event");
  const head = { status: ex.status, reason: ex.reason, headers: ex.headers };
  const body = ex.body;
  if (body.kind === "none") conn.writeResponse(request.id, head);
  else if (body.kind === "text") conn.writeResponse(request.id, head, body.text);
  else if (body.kind === "bytes") conn.writeResponse(request.id, head, bytes(body.text));
  else {
    conn.writeHeaders(request.id, head);
    if (ex.method !== "HEAD" && body.text !== "") conn.write(request.id, bytes(body.text));
    conn.finish(request.id);
  }
  drainRaw(conn);
  return latin1(conn.takeOutput());
}

function fresh(clock: { now: number }): ServerConnection {
  return new ServerConnection({ now: () => clock.now });
}

describe("a connection's last response head, reused", () => {
  it("never changes a response's bytes: each is what a fresh connection sends for it", () => {
    fc.assert(
      fc.property(fc.array(exchangeArb, { minLength: 1, maxLength: 12 }), (exchanges) => {
        const clock = { now: START };
        const conn = fresh(clock);
        for (const ex of exchanges) {
          const reused = answer(conn, ex, clock);
          const alone = answer(fresh(clock), ex, clock);
          expect(reused).toBe(alone);
          // A body that ends with the connection (streamed to HTTP/1.0) ends the sequence.
          if (reused.includes("\r\nConnection: close\r\n")) break;
        }
      }),
      { numRuns: 300 },
    );
  });

  it("sends the same head twice, then what changed", () => {
    const clock = { now: START };
    const conn = fresh(clock);
    const ex: Exchange = { method: "GET", http10: false, status: 200, reason: undefined, headers: ["Content-Type", "text/plain"], body: { kind: "text", text: "Hello, world" }, second: 0 };
    const expected = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nDate: Fri, 04 Dec 2026 12:00:00 GMT\r\n\r\nHello, world";
    expect(answer(conn, ex, clock)).toBe(expected);
    expect(answer(conn, ex, clock)).toBe(expected);
    expect(answer(conn, { ...ex, second: 1 }, clock)).toBe(expected.replace("12:00:00", "12:00:01"));
    expect(answer(conn, { ...ex, second: 1, body: { kind: "text", text: "Bye" } }, clock)).toBe(
      expected.replace("12:00:00", "12:00:01").replace("Length: 12", "Length: 3").replace("Hello, world", "Bye"),
    );
    expect(answer(conn, { ...ex, second: 1, headers: ["Content-Type", "text/html"] }, clock)).toBe(
      expected.replace("12:00:00", "12:00:01").replace("text/plain", "text/html"),
    );
  });

  it("sees a header list changed in place after it was sent", () => {
    const clock = { now: START };
    const conn = fresh(clock);
    const headers = ["X-Id", "1"];
    const ex: Exchange = { method: "GET", http10: false, status: 200, reason: undefined, headers, body: { kind: "text", text: "a" }, second: 0 };
    expect(answer(conn, ex, clock)).toContain("X-Id: 1\r\n");
    headers[1] = "2";
    const second = answer(conn, ex, clock);
    expect(second).toContain("X-Id: 2\r\n");
    expect(second).not.toContain("X-Id: 1");
  });

  it("checks a value again when only the value changed, and still throws for CR LF", () => {
    const clock = { now: START };
    const conn = fresh(clock);
    const ok: Exchange = { method: "GET", http10: false, status: 200, reason: undefined, headers: ["X-Id", "1"], body: { kind: "text", text: "a" }, second: 0 };
    answer(conn, ok, clock);
    conn.receiveData(bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    const request = drainRaw(conn).events.find((e) => e.type === "request");
    if (request?.type !== "request") throw new Error("no request event");
    let thrown: unknown;
    try {
      conn.writeResponse(request.id, { status: 200, headers: ["X-Id", "1\r\nSet-Cookie: evil=1"] }, "a");
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(LocalProtocolError);
    expect((thrown as LocalProtocolError).code).toBe("ERR_INVALID_HEADER_VALUE");
    // The failed head did not replace the good one, and nothing was sent for it.
    expect(conn.takeOutput()).toBeNull();
    conn.writeResponse(request.id, { status: 200, headers: ["X-Id", "1"] }, "a");
    expect(latin1(conn.takeOutput())).toContain("X-Id: 1\r\n");
  });

  it("answers a body longer than the one kept with the head the same each time", () => {
    const clock = { now: START };
    const conn = fresh(clock);
    const big = "y".repeat(600);
    const ex: Exchange = { method: "GET", http10: false, status: 200, reason: undefined, headers: [], body: { kind: "text", text: big }, second: 0 };
    const first = answer(conn, ex, clock);
    expect(first.endsWith(`\r\n\r\n${big}`)).toBe(true);
    expect(answer(conn, ex, clock)).toBe(first);
  });
});
