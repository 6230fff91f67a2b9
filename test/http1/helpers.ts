/**
 * Shared helpers of the HTTP/1.1 engine tests: bytes, a drain loop, event
 * normalization, feeding a connection in pieces, a small request serializer
 * and an independent response parser (written here, not taken from the
 * engine, so that round trips check the engine against something else).
 */
import { Buffer } from "node:buffer";
import fc from "fast-check";
import { expect } from "vitest";
import { ServerConnection, type ServerConnectionOptions, type ServerEvent } from "../../src/protocols/http1";

// ------------------------------------------------------------------ bytes

/** Bytes of a latin1 string (one byte per char), as HTTP heads are. */
export function bytes(text: string): Uint8Array {
  return Buffer.from(text, "latin1");
}

/** A latin1 string of bytes (one char per byte). */
export function latin1(data: Uint8Array | null | undefined): string {
  if (data === null || data === undefined) return "";
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("latin1");
}

/** Splits `data` at the given offsets (any order, duplicates and out-of-range values ignored). */
export function splitAt(data: Uint8Array, points: readonly number[]): Uint8Array[] {
  const cuts = [...new Set(points.filter((p) => p > 0 && p < data.byteLength))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const c of cuts) {
    out.push(data.subarray(from, c));
    from = c;
  }
  out.push(data.subarray(from));
  return out;
}

/** One chunk per byte. */
export function byteByByte(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.byteLength; i++) out.push(data.subarray(i, i + 1));
  return out;
}

/** Split points for {@link splitAt}, as a fast-check arbitrary. */
export function splitPoints(length: number, maxCuts = 12): fc.Arbitrary<number[]> {
  return fc.array(fc.integer({ min: 0, max: Math.max(0, length) }), { maxLength: maxCuts });
}

// ------------------------------------------------------------------ events

/** An event with bodies as latin1 text and errors reduced to code and status: comparable with toEqual. */
export type NormEvent =
  | {
      type: "request";
      id: number;
      method: string;
      target: string;
      version: string;
      headers: string[];
      keepAlive: boolean;
      upgrade: boolean;
      expectContinue: boolean;
      contentLength: number | null;
      chunked: boolean;
    }
  | { type: "data"; id: number; data: string }
  | { type: "end"; id: number; trailers: string[] }
  | { type: "upgrade"; id: number; trailingData: string }
  | { type: "error"; id: number | null; code: string; status: number | undefined };

/** Plain-data copy of an event (the engine's data events are views into the input). */
export function normalize(ev: ServerEvent): NormEvent {
  switch (ev.type) {
    case "request":
      return {
        type: "request",
        id: ev.id,
        method: ev.method,
        target: ev.target,
        version: ev.version,
        headers: [...ev.headers],
        keepAlive: ev.keepAlive,
        upgrade: ev.upgrade,
        expectContinue: ev.expectContinue,
        contentLength: ev.contentLength,
        chunked: ev.chunked,
      };
    case "data":
      return { type: "data", id: ev.id, data: latin1(ev.data) };
    case "end":
      return { type: "end", id: ev.id, trailers: [...ev.trailers] };
    case "upgrade":
      return { type: "upgrade", id: ev.id, trailingData: latin1(ev.trailingData) };
    case "error":
      return { type: "error", id: ev.id, code: ev.error.code, status: ev.error.status };
    case "need-data":
    case "paused":
      throw new Error(`normalize: ${ev.type} is not a reportable event`);
  }
}

/** Joins consecutive data events of the same request and drops empty ones. */
export function mergeData(events: readonly NormEvent[]): NormEvent[] {
  const out: NormEvent[] = [];
  for (const ev of events) {
    if (ev.type === "data") {
      if (ev.data.length === 0) continue;
      const last = out[out.length - 1];
      if (last !== undefined && last.type === "data" && last.id === ev.id) {
        out[out.length - 1] = { ...last, data: last.data + ev.data };
        continue;
      }
    }
    out.push(ev);
  }
  return out;
}

/**
 * Takes events until `need-data` or `paused`; returns them (raw) and which of
 * the two ended the loop. Fails the test if the engine throws or loops, or
 * if asking once more right after gives anything else (a hidden event).
 */
export function drainRaw(conn: ServerConnection, limit = 100_000): { events: ServerEvent[]; last: "need-data" | "paused" } {
  const events: ServerEvent[] = [];
  for (let i = 0; i < limit; i++) {
    const ev = conn.nextEvent();
    if (ev.type === "need-data" || ev.type === "paused") {
      const again = conn.nextEvent();
      expect(again.type, `nextEvent said ${ev.type}, then ${again.type} without new input: an event was left in the queue`).toBe(ev.type);
      return { events, last: ev.type };
    }
    events.push(ev);
  }
  throw new Error(`drain: more than ${limit} events without need-data or paused`);
}

/** {@link drainRaw} with normalized events. */
export function drain(conn: ServerConnection): NormEvent[] {
  return drainRaw(conn).events.map(normalize);
}

/** What feeding a connection produced. */
export interface FeedResult {
  /** Normalized events, data merged per request. */
  events: NormEvent[];
  /** What the last `nextEvent` returned. */
  last: "need-data" | "paused";
  /** Everything the engine wrote (latin1). */
  output: string;
}

/**
 * Feeds chunks one by one, taking events after each (and optionally ends
 * with `receiveEof`). `onEvent` sees each event as soon as it is taken, as an
 * application would, so that it can answer or raise a limit in time.
 *
 * Also checks the `nextEvent` contract: once it says `need-data` or
 * `paused`, asking again without new input says the same (no event is left
 * hidden in the queue).
 */
export function feed(
  conn: ServerConnection,
  chunks: readonly Uint8Array[],
  options: { eof?: boolean; onEvent?: (ev: ServerEvent, conn: ServerConnection) => void } = {},
): FeedResult {
  const events: NormEvent[] = [];
  let output = "";
  let last: "need-data" | "paused" = "need-data";
  const step = (): void => {
    for (let n = 0; ; n++) {
      if (n > 100_000) throw new Error("feed: more than 100000 events without need-data or paused");
      const ev = conn.nextEvent();
      if (ev.type === "need-data" || ev.type === "paused") {
        const again = conn.nextEvent();
        expect(again.type, `nextEvent said ${ev.type}, then ${again.type} without new input: an event was left in the queue`).toBe(ev.type);
        last = ev.type;
        break;
      }
      events.push(normalize(ev));
      options.onEvent?.(ev, conn);
    }
    output += latin1(conn.takeOutput());
  };
  step();
  for (const chunk of chunks) {
    if (conn.theirState === "switched") break;
    conn.receiveData(chunk);
    step();
  }
  if (options.eof && conn.theirState !== "switched") {
    conn.receiveEof();
    step();
  }
  return { events: mergeData(events), last, output };
}

/** A connection with a fixed clock and no Date header unless asked. */
export function makeConn(options: ServerConnectionOptions = {}): ServerConnection {
  return new ServerConnection({ sendDate: false, now: () => 0, ...options });
}

/** Feeds a whole string to a fresh connection. */
export function run(input: string, options: ServerConnectionOptions = {}, eof = false): FeedResult & { conn: ServerConnection } {
  const conn = makeConn(options);
  const r = feed(conn, [bytes(input)], { eof });
  return { ...r, conn };
}

/** Events without the `data`/`end` detail: the type sequence, for quick asserts. */
export function types(events: readonly NormEvent[]): string[] {
  return events.map((e) => e.type);
}

/** The single error event of a run; fails the test unless there is exactly one. */
export function theError(events: readonly NormEvent[]): Extract<NormEvent, { type: "error" }> {
  const errors = events.filter((e): e is Extract<NormEvent, { type: "error" }> => e.type === "error");
  expect(errors, "exactly one error event").toHaveLength(1);
  return errors[0]!;
}

// -------------------------------------------------------------- requests

/** A request to serialize. `chunks` (not null) means chunked transfer coding. */
export interface TestRequest {
  method: string;
  target: string;
  version: "1.0" | "1.1";
  /** Header lines other than the framing ones (Content-Length, Transfer-Encoding). */
  headers: string[];
  body: string;
  /** Chunk sizes for a chunked body (summing to body.length); null for Content-Length framing. */
  chunks: number[] | null;
  /** Trailer lines of a chunked body. */
  trailers: string[];
  /** Chunk extensions to add on the first chunk line, e.g. `;a=b`. */
  ext?: string;
}

/**
 * Serializes a request. A body without chunks gets Content-Length (omitted
 * when the body is empty and `forceLength` is false).
 */
export function serializeRequest(r: TestRequest, forceLength = false): string {
  let s = `${r.method} ${r.target} HTTP/${r.version}\r\n`;
  for (let i = 0; i < r.headers.length; i += 2) s += `${r.headers[i]}: ${r.headers[i + 1]}\r\n`;
  if (r.chunks !== null) {
    s += "Transfer-Encoding: chunked\r\n\r\n";
    let at = 0;
    let first = true;
    for (const n of r.chunks) {
      if (n === 0) continue;
      s += `${n.toString(16)}${first ? (r.ext ?? "") : ""}\r\n${r.body.slice(at, at + n)}\r\n`;
      first = false;
      at += n;
    }
    s += "0\r\n";
    for (let i = 0; i < r.trailers.length; i += 2) s += `${r.trailers[i]}: ${r.trailers[i + 1]}\r\n`;
    s += "\r\n";
  } else {
    if (r.body.length > 0 || forceLength) s += `Content-Length: ${r.body.length}\r\n`;
    s += `\r\n${r.body}`;
  }
  return s;
}

/** The events a well-formed keep-alive request should produce (data merged). */
export function expectedEvents(r: TestRequest, id: number, forceLength = false): NormEvent[] {
  const headers = [...r.headers];
  let contentLength: number | null = null;
  if (r.chunks !== null) headers.push("Transfer-Encoding", "chunked");
  else if (r.body.length > 0 || forceLength) {
    headers.push("Content-Length", String(r.body.length));
    contentLength = r.body.length;
  }
  const out: NormEvent[] = [
    {
      type: "request",
      id,
      method: r.method,
      target: r.target,
      version: r.version,
      headers,
      keepAlive: true,
      upgrade: false,
      expectContinue: false,
      contentLength,
      chunked: r.chunks !== null,
    },
  ];
  if (r.body.length > 0) out.push({ type: "data", id, data: r.body });
  out.push({ type: "end", id, trailers: r.chunks !== null ? [...r.trailers] : [] });
  return out;
}

// ------------------------------------------------------------ arbitraries

/** Header names the engine or llhttp treat specially; generated headers avoid them. */
const SPECIAL = new Set([
  "host", "content-length", "transfer-encoding", "connection", "proxy-connection", "keep-alive", "upgrade", "expect", "te", "trailer",
]);

export const tokenArb: fc.Arbitrary<string> = fc
  .stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}$/)
  .filter((s) => !SPECIAL.has(s.toLowerCase()));

const plainValueArb = fc.stringMatching(/^[\x21-\x7e\x80-\xff]([\x21-\x7e\x80-\xff \t]{0,30}[\x21-\x7e\x80-\xff])?$/);

/**
 * A field value: visible ASCII and obs-text, inner spaces and tabs, no edge
 * whitespace. A third of the values end with an obs-text byte that some
 * whitespace trimmers mistake for space (0xA0 is U+00A0 in latin1, 0x85 is NEL).
 */
export const valueArb: fc.Arbitrary<string> = fc.oneof(
  fc.constant(""),
  plainValueArb,
  fc.tuple(plainValueArb, fc.constantFrom("\xa0", "\x85", "\xff", "\xe9")).map(([v, end]) => v + end),
);

export const headersArb: fc.Arbitrary<string[]> = fc
  .array(fc.tuple(tokenArb, valueArb), { maxLength: 6 })
  .map((pairs) => pairs.flat());

export const methodArb: fc.Arbitrary<string> = fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND");

export const targetArb: fc.Arbitrary<string> = fc.oneof(
  fc.stringMatching(/^\/[A-Za-z0-9._~!$&'()*+,;=:@%\/-]{0,40}(\?[A-Za-z0-9._~!$&'()*+,;=:@%\/?-]{0,20})?$/),
  fc.constant("*"),
  fc.constant("http://example.com/a?b=c"),
);

/** Body text over all 256 byte values. */
export const bodyArb = (maxLength = 200): fc.Arbitrary<string> =>
  fc.array(fc.integer({ min: 0, max: 255 }), { maxLength }).map((codes) => String.fromCharCode(...codes));

/** Splits n into positive parts. */
export function chunkSizesArb(n: number): fc.Arbitrary<number[]> {
  if (n === 0) return fc.constant([]);
  return fc.array(fc.integer({ min: 1, max: n }), { maxLength: 5 }).map((cuts) => {
    const points = [...new Set(cuts.filter((c) => c < n))].sort((a, b) => a - b);
    const sizes: number[] = [];
    let from = 0;
    for (const p of points) {
      sizes.push(p - from);
      from = p;
    }
    sizes.push(n - from);
    return sizes;
  });
}

/** A valid HTTP/1.1 keep-alive request with a Host header first. */
export const requestArb: fc.Arbitrary<TestRequest> = fc
  .record({
    method: methodArb,
    target: targetArb,
    headers: headersArb,
    body: bodyArb(),
    chunked: fc.boolean(),
    trailers: headersArb,
    ext: fc.constantFrom("", ";a", ";a=b", ';name="quoted value"'),
  })
  .chain((r) =>
    (r.chunked ? chunkSizesArb(r.body.length) : fc.constant(null)).map(
      (chunks): TestRequest => ({
        method: r.method,
        target: r.target,
        version: "1.1",
        headers: ["Host", "example.com", ...r.headers],
        body: r.body,
        chunks,
        trailers: chunks === null ? [] : r.trailers,
        ext: r.ext,
      }),
    ),
  );

/**
 * A valid HTTP/1.0 request that keeps the connection open (`Connection:
 * keep-alive`, which HTTP/1.0 needs for a second request), with or without
 * Host, its body framed by Content-Length (HTTP/1.0 has no chunked coding).
 */
export const request10Arb: fc.Arbitrary<TestRequest> = fc
  .record({ method: methodArb, target: targetArb, host: fc.boolean(), headers: headersArb, body: bodyArb() })
  .map(
    (r): TestRequest => ({
      method: r.method,
      target: r.target,
      version: "1.0",
      headers: [...(r.host ? ["Host", "example.com"] : []), "Connection", "keep-alive", ...r.headers],
      body: r.body,
      chunks: null,
      trailers: [],
    }),
  );

/** HTTP/1.1 and HTTP/1.0 keep-alive requests, mixed. */
export const anyRequestArb: fc.Arbitrary<TestRequest> = fc.oneof({ weight: 3, arbitrary: requestArb }, { weight: 1, arbitrary: request10Arb });

/**
 * The same request, asking the server to close after it: `Connection:
 * close` in HTTP/1.1, no `Connection: keep-alive` in HTTP/1.0.
 */
export function closingRequest(r: TestRequest): TestRequest {
  if (r.version === "1.1") return { ...r, headers: [...r.headers, "Connection", "close"] };
  const headers: string[] = [];
  for (let i = 0; i < r.headers.length; i += 2) {
    if (r.headers[i]!.toLowerCase() !== "connection") headers.push(r.headers[i]!, r.headers[i + 1]!);
  }
  return { ...r, headers };
}

// ------------------------------------------------------------- responses

/** One response as read by {@link parseResponses}. */
export interface ParsedResponse {
  status: number;
  reason: string;
  headers: string[];
  body: string;
  trailers: string[];
  /** How the body was delimited. */
  framing: "none" | "length" | "chunked" | "close";
}

/** Value of the first header named `name` (case-insensitive), or null. */
export function header(headers: readonly string[], name: string): string | null {
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === name.toLowerCase()) return headers[i + 1]!;
  return null;
}

/** Every value of headers named `name`. */
export function headerAll(headers: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === name.toLowerCase()) out.push(headers[i + 1]!);
  return out;
}

/**
 * An independent, strict parser of a stream of responses (latin1 text).
 * `methods` gives the request method each final response answers (for
 * HEAD); 1xx responses (but 101) are interim and returned too. Throws on
 * anything malformed or cut short (a close-delimited body runs to the end).
 */
export function parseResponses(stream: string, methods: readonly string[] = []): ParsedResponse[] {
  const out: ParsedResponse[] = [];
  let at = 0;
  let final = 0;
  const line = (): string => {
    const end = stream.indexOf("\r\n", at);
    if (end < 0) throw new Error(`response parser: no CRLF after offset ${at} in ${JSON.stringify(stream.slice(at, at + 80))}`);
    const l = stream.slice(at, end);
    if (/[\r\n]/.test(l)) throw new Error(`response parser: bare CR or LF in ${JSON.stringify(l)}`);
    at = end + 2;
    return l;
  };
  const fields = (): string[] => {
    const h: string[] = [];
    for (let l = line(); l !== ""; l = line()) {
      const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/.exec(l);
      if (m === null) throw new Error(`response parser: bad header line ${JSON.stringify(l)}`);
      h.push(m[1]!, m[2]!);
    }
    return h;
  };
  while (at < stream.length) {
    const m = /^HTTP\/1\.1 (\d{3}) (.*)$/.exec(line());
    if (m === null) throw new Error(`response parser: bad status line at ${at}`);
    const status = Number(m[1]);
    const headers = fields();
    const te = header(headers, "transfer-encoding");
    const cls = headerAll(headers, "content-length");
    if (te !== null && cls.length > 0) throw new Error("response parser: both Content-Length and Transfer-Encoding");
    if (new Set(cls).size > 1) throw new Error("response parser: differing Content-Length values");
    const r: ParsedResponse = { status, reason: m[2]!, headers, body: "", trailers: [], framing: "none" };
    out.push(r);
    if (status >= 100 && status < 200) {
      if (status === 101) {
        // The rest belongs to another protocol.
        r.body = stream.slice(at);
        at = stream.length;
      }
      continue;
    }
    const method = methods[final++] ?? "GET";
    if (method === "HEAD" || status === 204 || status === 304) continue;
    if (te !== null) {
      if (te.toLowerCase() !== "chunked") throw new Error(`response parser: transfer coding ${te}`);
      r.framing = "chunked";
      for (;;) {
        const sizeLine = line();
        if (!/^[0-9a-fA-F]+$/.test(sizeLine)) throw new Error(`response parser: bad chunk size ${JSON.stringify(sizeLine)}`);
        const size = parseInt(sizeLine, 16);
        if (size === 0) break;
        if (at + size + 2 > stream.length) throw new Error("response parser: chunk cut short");
        r.body += stream.slice(at, at + size);
        at += size;
        if (stream.slice(at, at + 2) !== "\r\n") throw new Error("response parser: no CRLF after chunk data");
        at += 2;
      }
      r.trailers = fields();
    } else if (cls.length > 0) {
      if (!/^[0-9]+$/.test(cls[0]!)) throw new Error(`response parser: bad Content-Length ${cls[0]}`);
      const n = Number(cls[0]);
      if (at + n > stream.length) throw new Error(`response parser: body cut short (${stream.length - at} of ${n})`);
      r.framing = "length";
      r.body = stream.slice(at, at + n);
      at += n;
    } else {
      r.framing = "close";
      r.body = stream.slice(at);
      at = stream.length;
    }
  }
  return out;
}

/** Final responses only (no 1xx but 101). */
export function finals(responses: readonly ParsedResponse[]): ParsedResponse[] {
  return responses.filter((r) => r.status >= 200 || r.status === 101);
}

/** True if the response carries `Connection: close`. */
export function closes(r: ParsedResponse): boolean {
  return headerAll(r.headers, "connection").some((v) => /(^|,)\s*close\s*(,|$)/i.test(v));
}
