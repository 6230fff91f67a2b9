/**
 * Property tests of the HTTP/1.1 server engine (fast-check):
 * (a) any split of a stream of pipelined requests (HTTP/1.1 and HTTP/1.0)
 *     gives the same events, which are the requests that were serialized
 *     (a request round trip);
 * (b) responses written by the engine, in any order and any style, read back
 *     the same with an independent parser and with llhttp in response mode;
 * (c) random bytes and mutated requests never throw out of the engine and
 *     end in events or in exactly one error (4xx/5xx) answered last, with
 *     `Connection: close`;
 * (d) the engine's two sides agree: requests the ClientConnection writes
 *     parse back in the ServerConnection as sent, and responses the
 *     ServerConnection writes parse back in the ClientConnection as written,
 *     with random splits both ways.
 * The limits have their own file (limits.test.ts).
 */
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CB_OK, CB_SKIP_BODY, ExecuteResult, LlhttpParser } from "../../src/protocols/http1/llhttp";
import { ClientConnection, reasonPhrase, type ClientEvent, type ServerConnection, type ServerEvent } from "../../src/protocols/http1";
import {
  anyRequestArb,
  bodyArb,
  bytes,
  chunkSizesArb,
  closes,
  closingRequest,
  expectedEvents,
  feed,
  finals,
  header,
  headersArb,
  latin1,
  makeConn,
  methodArb,
  parseResponses,
  serializeRequest,
  splitAt,
  splitPoints,
  targetArb,
  types,
  type NormEvent,
  type ParsedResponse,
} from "./helpers";

const RUNS = { numRuns: 150 };

// ------------------------------------------------------------------ (a)

describe("(a) pipelined requests: any split gives the same events", () => {
  const streamArb = fc
    .array(anyRequestArb, { minLength: 1, maxLength: 5 })
    .chain((reqs) => {
      const text = reqs.map((r) => serializeRequest(r)).join("");
      return fc.tuple(fc.constant(reqs), fc.constant(text), splitPoints(text.length, 20));
    });

  it("whole, byte by byte and split, the events are the serialized requests", () => {
    fc.assert(
      fc.property(streamArb, ([reqs, text, points]) => {
        const expected = reqs.flatMap((r, i) => expectedEvents(r, i));
        const whole = feed(makeConn(), [bytes(text)]);
        expect(whole.events).toEqual(expected);
        expect(whole.last).toBe("need-data");
        const split = feed(makeConn(), splitAt(bytes(text), points));
        expect(split.events).toEqual(expected);
      }),
      RUNS,
    );
  });

  it("the fields that frame a request are recognized in any letter case and any split", () => {
    // Host, Connection, Expect, Content-Length and Transfer-Encoding, each in
    // random case: the events equal those of the same request with the
    // names as written here, but the names; and whole equals any split.
    // Host values with whitespace inside or bytes outside visible ASCII are
    // refused, trailing whitespace is not part of the value.
    const caseArb = (name: string) =>
      fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length }).map((up) =>
        Array.from(name, (c, i) => (up[i] ? c.toUpperCase() : c.toLowerCase())).join(""),
      );
    const fieldsArb = fc.record({
      hosts: fc.constantFrom(0, 1, 1, 1, 2),
      hostValue: fc.constantFrom("example.com", "example.com:80  \t ", "", "exa mple.com", "exa\tmple", "caf\u00e9.example", "[::1]:8080"),
      connection: fc.constantFrom(null, "close", "keep-alive", "Keep-Alive, Upgrade-ish", "x, CLOSE"),
      expect: fc.constantFrom(null, "100-continue", "100-Continue", "something"),
      body: fc.constantFrom(null, "length", "chunked", "both"),
      version: fc.constantFrom("1.0", "1.1"),
      names: fc.tuple(caseArb("host"), caseArb("connection"), caseArb("expect"), caseArb("content-length"), caseArb("transfer-encoding")),
      other: fc.constantFrom("Hostx", "Hos", "Content-Lengthy", "Expects", "Connectio"),
    });
    type Fields = typeof fieldsArb extends fc.Arbitrary<infer T> ? T : never;
    const build = (f: Fields, names: readonly string[]): string => {
      const [host, connection, expect, length, te] = names;
      let head = `POST /x HTTP/${f.version}\r\n`;
      for (let i = 0; i < f.hosts; i++) head += `${host}: ${f.hostValue}\r\n`;
      head += `${f.other}: 1\r\n`;
      if (f.connection !== null) head += `${connection}: ${f.connection}\r\n`;
      if (f.expect !== null) head += `${expect}: ${f.expect}\r\n`;
      let body = "";
      if (f.body === "length" || f.body === "both") head += `${length}: 3\r\n`;
      if (f.body === "chunked" || f.body === "both") head += `${te}: chunked\r\n`;
      if (f.body === "length") body = "abc";
      else if (f.body === "chunked" || f.body === "both") body = "3\r\nabc\r\n0\r\n\r\n";
      return `${head}\r\n${body}`;
    };
    const withoutNames = (events: NormEvent[]) =>
      events.map((e) => (e.type === "request" ? { ...e, headers: e.headers.filter((_, i) => i % 2 === 1) } : e));
    fc.assert(
      fc.property(fieldsArb, splitPoints(400, 12), (f, points) => {
        const text = build(f, f.names);
        const plain = feed(makeConn(), [bytes(build(f, ["Host", "Connection", "Expect", "Content-Length", "Transfer-Encoding"]))]);
        const whole = feed(makeConn(), [bytes(text)]);
        expect(withoutNames(whole.events)).toEqual(withoutNames(plain.events));
        expect(feed(makeConn(), splitAt(bytes(text), points)).events).toEqual(whole.events);
        expect(feed(makeConn(), splitAt(bytes(text), [...Array(text.length).keys()])).events).toEqual(whole.events);
        // What the fields say, read independently.
        const first = whole.events[0]!;
        const hostInvalid = /[^\x21-\x7e]/.test(f.hostValue.replace(/[ \t]+$/, ""));
        const badHost = f.hosts > 1 || (f.hosts === 0 && f.version === "1.1") || (f.hosts === 1 && hostInvalid);
        if (badHost) {
          expect(first).toMatchObject({ type: "error", status: 400 });
        } else if (f.body === "both") {
          expect(first.type).toBe("error");
        } else if (first.type === "request") {
          const closeListed = f.connection !== null && /(^|, *)close$/i.test(f.connection);
          const keepListed = f.connection !== null && /keep-alive/i.test(f.connection);
          expect(first.keepAlive).toBe(!closeListed && (f.version === "1.1" || keepListed) && !(f.version === "1.0" && f.body === "chunked"));
          expect(first.contentLength).toBe(f.body === "length" ? 3 : null);
          expect(first.chunked).toBe(f.body === "chunked");
          expect(first.expectContinue).toBe(f.version === "1.1" && f.expect !== null && f.expect.toLowerCase() === "100-continue");
        }
      }),
      RUNS,
    );
  });

  it("optional whitespace around values, in any split, is not part of the value", () => {
    const owsArb = fc.constantFrom("", " ", "  ", "\t", " \t ");
    fc.assert(
      fc.property(anyRequestArb, owsArb, owsArb, fc.nat(), (r, lead, trail, cut) => {
        // Re-serialize the header lines with the whitespace around each value.
        const requestLine = `${r.method} ${r.target} HTTP/${r.version}\r\n`;
        let head = requestLine;
        for (let i = 0; i < r.headers.length; i += 2) {
          head += `${r.headers[i]}:${lead}${r.headers[i + 1]}${trail}\r\n`;
        }
        const text = head + serializeRequest({ ...r, headers: [] }).slice(requestLine.length);
        const input = bytes(text);
        const got = feed(makeConn(), splitAt(input, [cut % (input.byteLength + 1)]));
        expect(got.events).toEqual(expectedEvents(r, 0));
      }),
      RUNS,
    );
  });

  it("a request that ends the connection stops the stream there", () => {
    fc.assert(
      fc.property(fc.array(anyRequestArb, { minLength: 2, maxLength: 4 }), fc.nat(), (reqs, k) => {
        const stop = k % reqs.length;
        // Connection: close in HTTP/1.1; no keep-alive in HTTP/1.0.
        const withClose = reqs.map((r, i) => (i === stop ? closingRequest(r) : r));
        const text = withClose.map((r) => serializeRequest(r)).join("");
        const expected = withClose.slice(0, stop + 1).flatMap((r, i) => expectedEvents(r, i));
        const last = expected.find((e) => e.type === "request" && e.id === stop) as { keepAlive: boolean };
        last.keepAlive = false;
        const got = feed(makeConn(), [bytes(text)]);
        expect(got.events).toEqual(expected);
        expect(got.last).toBe("paused");
      }),
      { numRuns: 60 },
    );
  });
});

// ------------------------------------------------------------------ (b)

/** A response the application writes, and how it writes it. */
interface TestResponse {
  status: number;
  headers: string[];
  body: string;
  style: "whole" | "chunked" | "length";
  /** Sizes of the write() calls (the body split). */
  pieces: number[];
  trailers: string[];
  informational: boolean;
}

const responseArb: fc.Arbitrary<TestResponse> = fc
  .record({
    status: fc.oneof(fc.constantFrom(200, 201, 204, 206, 301, 304, 404, 500, 503), fc.integer({ min: 200, max: 599 })),
    headers: headersArb,
    body: bodyArb(120),
    style: fc.constantFrom("whole" as const, "chunked" as const, "length" as const),
    trailers: headersArb,
    informational: fc.boolean(),
  })
  .chain((r) => {
    const noBody = r.status === 204 || r.status === 304;
    const body = noBody ? "" : r.body;
    return chunkSizesArb(body.length).map((pieces): TestResponse => ({ ...r, body, pieces, trailers: r.style === "chunked" ? r.trailers : [] }));
  });

/** Writes `r` as the response to request `id`. */
function writeTestResponse(conn: ServerConnection, id: number, r: TestResponse): void {
  if (r.informational) conn.sendInformational(id, { status: 103, headers: ["Link", "</a>; rel=preload"] });
  const noBody = r.status === 204 || r.status === 304;
  if (r.style === "whole") {
    conn.writeResponse(id, { status: r.status, headers: r.headers }, noBody ? undefined : Buffer.from(r.body, "latin1"));
    return;
  }
  const headers = r.style === "length" && !noBody ? [...r.headers, "Content-Length", String(r.body.length)] : r.headers;
  conn.writeHeaders(id, { status: r.status, headers });
  let at = 0;
  for (const n of r.pieces) {
    conn.write(id, Buffer.from(r.body.slice(at, at + n), "latin1"));
    at += n;
  }
  conn.finish(id, r.style === "chunked" ? r.trailers : undefined);
}

/** What a client must read for `r` answering `method`. */
function expectedResponse(r: TestResponse, method: string): Omit<ParsedResponse, "framing" | "reason"> & { reason: string } {
  const noBody = r.status === 204 || r.status === 304 || method === "HEAD";
  const headers = [...r.headers];
  const bodyless = r.status === 204 || r.status === 304;
  if (r.style === "length" && !bodyless) headers.push("Content-Length", String(r.body.length));
  else if (r.style === "whole" && !bodyless) headers.push("Content-Length", String(r.body.length));
  else if (r.style === "chunked" && !bodyless && method !== "HEAD") headers.push("Transfer-Encoding", "chunked");
  return {
    status: r.status,
    reason: reasonPhrase(r.status),
    headers,
    body: noBody ? "" : r.body,
    trailers: noBody ? [] : r.trailers,
  };
}

/** Reads a response stream with llhttp in response mode (HEAD answers skip their body). */
function llhttpResponses(data: Uint8Array, methods: readonly string[]): Array<{ status: number; headers: string[]; body: string; trailers: string[] }> {
  const out: Array<{ status: number; headers: string[]; body: string; trailers: string[] }> = [];
  let cur: { status: number; headers: string[]; body: string; trailers: string[] } | null = null;
  let field = "";
  let value = "";
  let inValue = false;
  let inTrailers = false;
  let finalIndex = 0;
  const text = (s: number, n: number): string => Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("latin1", s, s + n);
  const commit = (): void => {
    if (field === "" && !inValue) return;
    (inTrailers ? cur!.trailers : cur!.headers).push(field, value.replace(/[ \t]+$/, ""));
    field = "";
    value = "";
    inValue = false;
  };
  const parser = new LlhttpParser("response", {
    onMessageBegin: () => {
      cur = { status: 0, headers: [], body: "", trailers: [] };
      inTrailers = false;
      return CB_OK;
    },
    onUrl: () => CB_OK,
    onStatus: () => CB_OK,
    onHeaderField: (s, n) => {
      if (inValue) commit();
      field += text(s, n);
      return CB_OK;
    },
    onHeaderValue: (s, n) => {
      inValue = true;
      value += text(s, n);
      return CB_OK;
    },
    onHeadersComplete: (status) => {
      commit();
      cur!.status = status;
      inTrailers = true;
      if (status >= 100 && status < 200) return CB_OK;
      return methods[finalIndex++] === "HEAD" ? CB_SKIP_BODY : CB_OK;
    },
    onBody: (s, n) => {
      cur!.body += text(s, n);
      return CB_OK;
    },
    onMessageComplete: () => {
      commit();
      out.push(cur!);
      cur = null;
      return CB_OK;
    },
  });
  try {
    const r = parser.execute(data);
    if (r !== ExecuteResult.OK) throw new Error(`llhttp could not read the responses: ${parser.errorName} ${parser.errorReason} at ${parser.stoppedAt}`);
  } finally {
    parser.destroy();
  }
  expect(cur, "llhttp: a response was cut short").toBeNull();
  return out;
}

describe("(b) round trips", () => {
  it("responses written in any order and style read back the same (own parser and llhttp)", () => {
    const caseArb = fc
      .array(fc.tuple(fc.constantFrom("GET", "HEAD", "POST"), responseArb), { minLength: 1, maxLength: 5 })
      .chain((pairs) => fc.tuple(fc.constant(pairs), fc.shuffledSubarray(pairs.map((_, i) => i), { minLength: pairs.length, maxLength: pairs.length })));
    fc.assert(
      fc.property(caseArb, ([pairs, order]) => {
        const methods = pairs.map(([m]) => m);
        const conn = makeConn();
        const reqs = methods.map((m) => `${m} /r HTTP/1.1\r\nHost: a\r\n\r\n`).join("");
        const got = feed(conn, [bytes(reqs)]);
        expect(got.events.filter((e) => e.type === "request")).toHaveLength(pairs.length);
        let output = "";
        for (const i of order) {
          writeTestResponse(conn, i, pairs[i]![1]);
          output += latin1(conn.takeOutput());
        }
        expect(conn.requestsInFlight).toBe(0);
        expect(conn.mustClose).toBe(false);
        const expected = pairs.map(([m, r]) => expectedResponse(r, m));
        const own = parseResponses(output, methods);
        // 103s first where asked, then each final response in request order.
        const ownFinals = finals(own).map((r) => ({ status: r.status, reason: r.reason, headers: r.headers, body: r.body, trailers: r.trailers }));
        expect(ownFinals).toEqual(expected);
        expect(own.filter((r) => r.status === 103)).toHaveLength(pairs.filter(([, r]) => r.informational).length);
        const viaLlhttp = llhttpResponses(bytes(output), methods).filter((r) => r.status >= 200);
        expect(viaLlhttp).toEqual(expected.map(({ reason: _r, ...rest }) => rest));
      }),
      RUNS,
    );
  });

  it("HTTP/1.0 keep-alive responses: known length keeps alive, unknown length is close-delimited", () => {
    fc.assert(
      fc.property(responseArb, fc.boolean(), (r, keepAlive) => {
        const conn = makeConn();
        feed(conn, [bytes(`GET / HTTP/1.0\r\n${keepAlive ? "Connection: keep-alive\r\n" : ""}\r\n`)]);
        const resp: TestResponse = { ...r, informational: false, trailers: [] };
        writeTestResponse(conn, 0, resp);
        const [got] = parseResponses(latin1(conn.takeOutput()), ["GET"]);
        expect(got!.status).toBe(r.status);
        expect(got!.body).toBe(resp.body);
        const bodyless = r.status === 204 || r.status === 304;
        const unknownLength = r.style === "chunked" && !bodyless;
        expect(header(got!.headers, "transfer-encoding")).toBeNull();
        if (unknownLength) expect(got!.framing).toBe("close");
        const staysOpen = keepAlive && !unknownLength;
        expect(closes(got!)).toBe(!staysOpen);
        expect(header(got!.headers, "connection")).toBe(staysOpen ? "keep-alive" : "close");
        expect(conn.mustClose).toBe(!staysOpen);
      }),
      RUNS,
    );
  });
});

// ------------------------------------------------------------------ (c)

/** One edit of a byte string. */
type Mutation = { kind: "flip" | "insert" | "delete" | "dup"; at: number; byte: number; len: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom("flip" as const, "insert" as const, "delete" as const, "dup" as const),
  at: fc.nat(),
  byte: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x00, 0x30, 0x2c)),
  len: fc.integer({ min: 1, max: 20 }),
});

function mutate(text: string, muts: readonly Mutation[]): Uint8Array {
  let b = Array.from(bytes(text));
  for (const m of muts) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    switch (m.kind) {
      case "flip":
        if (at < b.length) b[at] = b[at]! ^ (m.byte || 1);
        break;
      case "insert":
        b.splice(at, 0, m.byte);
        break;
      case "delete":
        b.splice(at, m.len);
        break;
      case "dup":
        b.splice(at, 0, ...b.slice(at, at + m.len));
        break;
    }
  }
  return Uint8Array.from(b);
}

/**
 * Runs garbage through a connection like an application would: every
 * complete request is answered (an upgrade is declined), then EOF. Checks
 * the invariant of (c) and returns the events.
 */
function checkGarbage(input: Uint8Array, points: number[], options: { maxHeaderBytes?: number } = {}): NormEvent[] {
  const conn = makeConn(options);
  const methods: string[] = [];
  let answered = 0;
  const onEvent = (ev: ServerEvent, c: ServerConnection): void => {
    if (ev.type === "request") methods.push(ev.method);
    if (ev.type === "end" && c.writeResponse(ev.id, { status: 200 }, "ok")) answered++;
  };
  const r = feed(conn, splitAt(input, points), { eof: true, onEvent });
  const errors = r.events.filter((e): e is Extract<NormEvent, { type: "error" }> => e.type === "error");
  expect(errors.length, "at most one error").toBeLessThanOrEqual(1);
  // Events are well formed: ids in order, data and end only for the current request.
  let current = -1;
  let open = false;
  for (const e of r.events) {
    if (e.type === "request") {
      expect(open, "a request while the previous one is open").toBe(false);
      expect(e.id).toBe(current + 1);
      current = e.id;
      open = true;
    } else if (e.type === "data" || e.type === "end") {
      expect(e.id).toBe(current);
      expect(open).toBe(true);
      if (e.type === "end") open = false;
    } else if (e.type === "error") {
      expect(e.id === null || e.id === current).toBe(true);
    }
  }
  expect(types(r.events).includes("upgrade")).toBe(false);
  // The requests' methods are needed to read HEAD answers.
  const responses = finals(parseResponses(r.output, methods));
  if (errors.length === 1) {
    const err = errors[0]!;
    expect(r.events[r.events.length - 1]).toBe(err);
    expect(err.status).toBeGreaterThanOrEqual(400);
    expect(err.status).toBeLessThan(600);
    // One response per answered request, then the error response, which closes.
    expect(responses.map((x) => x.status)).toEqual([...new Array(answered).fill(200), err.status]);
    expect(closes(responses[responses.length - 1]!)).toBe(true);
    expect(responses.slice(0, -1).some(closes), "only the error response closes").toBe(false);
  } else {
    expect(responses.map((x) => x.status)).toEqual(new Array(answered).fill(200));
    expect(r.last).toBe("paused");
  }
  // After EOF and with every complete request answered, nothing is owed.
  expect(conn.mustClose, "mustClose at the end").toBe(true);
  return r.events;
}

describe("(c) garbage never throws and ends in events or one error", () => {
  it("random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), splitPoints(300, 8), (data, points) => {
        checkGarbage(data, points);
      }),
      { numRuns: 300 },
    );
  });

  it("random printable lines (closer to HTTP)", () => {
    const lineArb = fc.oneof(
      fc.constantFrom("GET / HTTP/1.1", "POST /x HTTP/1.0", "Host: a", "Content-Length: 3", "Transfer-Encoding: chunked", "Connection: close", "", "0", "5", "abc"),
      fc.string({ maxLength: 20 }),
    );
    const sepArb = fc.constantFrom("\r\n", "\n", "\r", " ", ":");
    fc.assert(
      fc.property(fc.array(fc.tuple(lineArb, sepArb), { maxLength: 12 }), splitPoints(400, 8), (lines, points) => {
        checkGarbage(bytes(lines.map(([l, s]) => l + s).join("")), points);
      }),
      { numRuns: 300 },
    );
  });

  it("mutated valid requests", () => {
    fc.assert(
      fc.property(fc.array(anyRequestArb, { minLength: 1, maxLength: 3 }), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), splitPoints(600, 8), (reqs, muts, points) => {
        const input = mutate(reqs.map((r) => serializeRequest(r)).join(""), muts);
        checkGarbage(input, points);
      }),
      { numRuns: 300 },
    );
  });

  it("mutated valid requests with a small head limit", () => {
    fc.assert(
      fc.property(fc.array(anyRequestArb, { minLength: 1, maxLength: 3 }), fc.array(mutationArb, { maxLength: 3 }), fc.integer({ min: 256, max: 400 }), (reqs, muts, max) => {
        checkGarbage(mutate(reqs.map((r) => serializeRequest(r)).join(""), muts), [], { maxHeaderBytes: max });
      }),
      { numRuns: 400 },
    );
  });

  it("a mutated stream gives the same events whole and byte by byte", () => {
    fc.assert(
      fc.property(fc.array(anyRequestArb, { minLength: 1, maxLength: 2 }), fc.array(mutationArb, { minLength: 1, maxLength: 3 }), (reqs, muts) => {
        const input = mutate(reqs.map((r) => serializeRequest(r)).join(""), muts);
        const whole = checkGarbage(input, []);
        const points = Array.from({ length: input.byteLength }, (_, i) => i);
        expect(checkGarbage(input, points)).toEqual(whole);
      }),
      { numRuns: 300 },
    );
  });
});

// ------------------------------------------------------------------ (d)

/** A request the ClientConnection writes, and how. */
interface ClientRequest {
  method: string;
  target: string;
  /** Host first, then other headers; never framing headers. */
  headers: string[];
  body: string;
  /** `whole`: the body given to sendRequest; `chunked`: streamed with no length; `length`: streamed under a Content-Length. */
  style: "whole" | "chunked" | "length";
  /** Sizes of the write() calls when streamed. */
  pieces: number[];
  trailers: string[];
}

const clientRequestArb: fc.Arbitrary<ClientRequest> = fc
  .record({
    method: methodArb,
    target: targetArb,
    headers: headersArb,
    body: bodyArb(150),
    style: fc.constantFrom("whole" as const, "chunked" as const, "length" as const),
    trailers: headersArb,
  })
  .chain((r) =>
    chunkSizesArb(r.body.length).map(
      (pieces): ClientRequest => ({ ...r, headers: ["Host", "example.com", ...r.headers], pieces, trailers: r.style === "chunked" ? r.trailers : [] }),
    ),
  );

/** Writes `r` with the client engine; returns the request's id. */
function sendClientRequest(client: ClientConnection, r: ClientRequest): number {
  const head = { method: r.method, target: r.target, headers: r.headers };
  if (r.style === "whole") return client.sendRequest(head, Buffer.from(r.body, "latin1"));
  const id = client.sendRequest(r.style === "length" ? { ...head, headers: [...r.headers, "Content-Length", String(r.body.length)] } : head);
  let at = 0;
  for (const n of r.pieces) {
    client.write(Buffer.from(r.body.slice(at, at + n), "latin1"));
    at += n;
  }
  client.finish(r.style === "chunked" ? r.trailers : undefined);
  return id;
}

/** The events the server must report for `r`, sent by the client as request `id`. */
function expectedServerEvents(r: ClientRequest, id: number): NormEvent[] {
  const headers = [...r.headers];
  let contentLength: number | null = null;
  if (r.style === "chunked") headers.push("Transfer-Encoding", "chunked");
  else {
    // ClientConnection adds Content-Length to a whole body unless it is empty
    // on a method that carries no body (GET, HEAD, DELETE, OPTIONS, TRACE).
    const declared = r.style === "length" || r.body.length > 0 || !/^(GET|HEAD|DELETE|OPTIONS|TRACE)$/.test(r.method);
    if (declared) {
      headers.push("Content-Length", String(r.body.length));
      contentLength = r.body.length;
    }
  }
  const out: NormEvent[] = [
    { type: "request", id, method: r.method, target: r.target, version: "1.1", headers, keepAlive: true, upgrade: false, expectContinue: false, contentLength, chunked: r.style === "chunked" },
  ];
  if (r.body.length > 0) out.push({ type: "data", id, data: r.body });
  out.push({ type: "end", id, trailers: r.trailers });
  return out;
}

/** A client event as comparable plain data (bodies as latin1), data merged per response. */
type NormClientEvent =
  | { type: "response"; id: number; status: number; reason: string; version: string; headers: string[]; keepAlive: boolean }
  | { type: "informational"; id: number; status: number; headers: string[] }
  | { type: "data"; id: number; data: string }
  | { type: "end"; id: number; trailers: string[] };

/** Feeds `chunks` to the client engine, taking its events after each; fails on anything but responses. */
function feedClient(client: ClientConnection, chunks: readonly Uint8Array[]): NormClientEvent[] {
  const out: NormClientEvent[] = [];
  const take = (): void => {
    for (let ev: ClientEvent = client.nextEvent(); ev.type !== "need-data" && ev.type !== "paused"; ev = client.nextEvent()) {
      switch (ev.type) {
        case "response":
          out.push({ type: "response", id: ev.id, status: ev.status, reason: ev.reason, version: ev.version, headers: [...ev.headers], keepAlive: ev.keepAlive });
          break;
        case "informational":
          out.push({ type: "informational", id: ev.id, status: ev.status, headers: [...ev.headers] });
          break;
        case "data": {
          const last = out[out.length - 1];
          if (last !== undefined && last.type === "data" && last.id === ev.id) last.data += latin1(ev.data);
          else if (ev.data.byteLength > 0) out.push({ type: "data", id: ev.id, data: latin1(ev.data) });
          break;
        }
        case "end":
          out.push({ type: "end", id: ev.id, trailers: [...ev.trailers] });
          break;
        case "upgrade":
        case "error":
          throw new Error(`The client engine reported ${ev.type}: ${ev.type === "error" ? ev.error.message : "an upgrade"}`);
      }
    }
  };
  for (const chunk of chunks) {
    client.receiveData(chunk);
    take();
  }
  return out;
}

describe("(d) ClientConnection and ServerConnection understand each other", () => {
  it("requests written by the client parse back in the server, and the server's responses in the client, with random splits", () => {
    // A HEAD answer streamed by the server has neither Content-Length nor
    // Transfer-Encoding; the client must still keep the connection.
    const pairArb = fc.tuple(clientRequestArb, responseArb);
    const caseArb = fc
      .array(pairArb, { minLength: 1, maxLength: 4 })
      .chain((pairs) =>
        fc.tuple(
          fc.constant(pairs),
          fc.shuffledSubarray(pairs.map((_, i) => i), { minLength: pairs.length, maxLength: pairs.length }),
          splitPoints(2000, 16),
          splitPoints(2000, 16),
        ),
      );
    fc.assert(
      fc.property(caseArb, ([pairs, order, requestCuts, responseCuts]) => {
        const client = new ClientConnection();
        const ids = pairs.map(([req]) => sendClientRequest(client, req));
        expect(ids).toEqual(pairs.map((_, i) => i));
        const requestBytes = client.takeOutput()!;
        // Client to server, cut anywhere.
        const server = makeConn();
        const got = feed(server, splitAt(requestBytes, requestCuts.map((c) => c % (requestBytes.byteLength + 1))));
        expect(got.events).toEqual(pairs.flatMap(([req], i) => expectedServerEvents(req, i)));
        expect(got.last).toBe("need-data");
        // Server to client: answers in any order, leaving in request order, cut anywhere.
        for (const i of order) writeTestResponse(server, i, pairs[i]![1]);
        const responseBytes = server.takeOutput()!;
        expect(server.requestsInFlight).toBe(0);
        const events = feedClient(client, splitAt(responseBytes, responseCuts.map((c) => c % (responseBytes.byteLength + 1))));
        const expected: NormClientEvent[] = pairs.flatMap(([req, res], id): NormClientEvent[] => {
          const want = expectedResponse(res, req.method);
          const out: NormClientEvent[] = [];
          if (res.informational) out.push({ type: "informational", id, status: 103, headers: ["Link", "</a>; rel=preload"] });
          out.push({ type: "response", id, status: want.status, reason: want.reason, version: "1.1", headers: want.headers, keepAlive: true });
          if (want.body.length > 0) out.push({ type: "data", id, data: want.body });
          out.push({ type: "end", id, trailers: want.trailers });
          return out;
        });
        expect(events).toEqual(expected);
        expect(client.isIdle).toBe(true);
        expect(client.mustClose).toBe(false);
        server.destroy();
        client.destroy();
      }),
      RUNS,
    );
  });

  it("a request cut at every byte reads the same as whole", () => {
    fc.assert(
      fc.property(clientRequestArb, (req) => {
        const client = new ClientConnection();
        sendClientRequest(client, req);
        const data = client.takeOutput()!;
        const whole = feed(makeConn(), [data]).events;
        const points = Array.from({ length: data.byteLength }, (_, i) => i);
        expect(feed(makeConn(), splitAt(data, points)).events).toEqual(whole);
        expect(whole).toEqual(expectedServerEvents(req, 0));
        client.destroy();
      }),
      { numRuns: 50 },
    );
  });
});
