/**
 * llhttp's own request vectors (nodejs/llhttp `test/request/*.md`, as data in
 * /work/shared/vectors) fed to the ServerConnection three ways: whole, byte
 * by byte, and at random split points from fast-check. Every way must give
 * the same events, and those events must match what the vector's callback
 * log says, translated to our stricter rules:
 *
 * - an llhttp error (`error code=N`) is one `error` event with status 400
 *   and code `ERR_<llhttp name>`;
 * - code 22 (pause on CONNECT/Upgrade) is not an error: it is a request with
 *   `upgrade: true`, after which parsing waits for the answer;
 * - code 5 (data after `Connection: close`) is not an error either: we stop
 *   reading after a message that ends the connection;
 * - code 23 (pause on PRI, the HTTP/2 preface) must be answered with an error
 *   (400 or 505): we serve HTTP/1.x only;
 * - our own checks at the end of the head: a version other than 1.0/1.1 is
 *   505, a request line that is not HTTP (llhttp also reads `RTSP/1.0` and
 *   `ICE/1.0` as version 1.0) is 400 or 505, a missing (HTTP/1.1) or
 *   repeated Host is 400 (RFC 9112 §3.2), Transfer-Encoding not ending in
 *   chunked is 400 (RFC 9112 §6.3), an unknown transfer coding before chunked
 *   such as `deflate, chunked` is 501 (RFC 9112 §6.1).
 *
 * Most llhttp vectors are HTTP/1.1 without Host, which we answer 400 by
 * design; each such vector is checked for ERR_BAD_HOST and run a second time
 * with `Host: x` inserted after each request line that lacks it, so that its
 * method, target, headers and body are still compared with the log.
 *
 * Only `type: "request"` vectors run (not the lenient modes). Their metadata:
 * - `pause` (llhttp's harness pauses in one callback and resumes): applies as
 *   is; the callbacks and spans are the same, the `pause` lines are ignored.
 * - `noScan` (llhttp's harness does not re-run the case split at every byte,
 *   because error offsets move): applies too, since we compare events, not
 *   offsets.
 * - `skipBody` (the harness returns 1 from on_headers_complete, which means
 *   "no body" and is what a *client* does for a HEAD response): does not apply
 *   to a server, which must read a request's Content-Length body. That vector
 *   gets its own test below with the server's reading of the same bytes.
 */
import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LLHTTP_ERRORS } from "../../src/protocols/http1/llhttp";
import type { ServerConnection, ServerEvent } from "../../src/protocols/http1";
import {
  byteByByte,
  closes,
  feed,
  finals,
  latin1,
  makeConn,
  parseResponses,
  splitAt,
  splitPoints,
  type FeedResult,
  type NormEvent,
} from "./helpers";

interface Vector {
  file: string;
  line: number;
  name: string;
  meta: { type: string; pause?: string; noScan?: boolean; skipBody?: boolean };
  input: string;
  log: string;
  messages: number;
  type: string;
}

const VECTORS_PATH = "/work/shared/vectors/llhttp-request-vectors.json";
const ALL: Vector[] = JSON.parse(readFileSync(VECTORS_PATH, "utf8"));
const REQUEST_VECTORS = ALL.filter((v) => v.type === "request" && v.meta.type === "request");
const ERROR_NAMES: Record<number, string> = Object.fromEntries(Object.entries(LLHTTP_ERRORS).map(([k, v]) => [v, k]));

/** The vector's input as bytes: llhttp's harness encodes the markdown text as UTF-8. */
function inputBytes(v: Vector): Buffer {
  return Buffer.from(v.input, "utf8");
}

// ------------------------------------------------------------ the log

/** One message as llhttp's log describes it. Strings are latin1 (one char per byte), as the engine decodes. */
interface LogMessage {
  method: string;
  url: string;
  /** The protocol name of the request line: HTTP, or RTSP/ICE which llhttp also knows. */
  protocol: string;
  /** Offset just after the version (where the request line's CRLF should be); -1 if not reached. */
  versionEnd: number;
  major: number;
  minor: number;
  flags: number;
  contentLength: number;
  headers: string[];
  trailers: string[];
  body: string;
  headersComplete: boolean;
  complete: boolean;
  /** llhttp paused for an Upgrade/CONNECT right after this message. */
  upgrade: boolean;
}

interface LogResult {
  messages: LogMessage[];
  /** The llhttp error that ended the log, if any (codes 22 and 5 are folded into messages). */
  error: { code: number; name: string; reason: string } | null;
  /** Offset where the upgrade pause happened (the bytes after belong to the new protocol). */
  upgradeAt: number;
}

const F_CONNECTION_KEEP_ALIVE = 0x1;
const F_CONNECTION_CLOSE = 0x2;
const F_CHUNKED = 0x8;
const F_CONTENT_LENGTH = 0x20;

function parseLog(v: Vector): LogResult {
  const input = inputBytes(v);
  const span = (off: number, len: number): string => input.subarray(off, off + len).toString("latin1");
  const messages: LogMessage[] = [];
  let msg: LogMessage | null = null;
  let field = "";
  let value = "";
  let inField = false;
  let inValue = false;
  let error: LogResult["error"] = null;
  let upgradeAt = -1;
  const commit = (): void => {
    if (msg === null || (!inField && !inValue && field === "")) return;
    (msg.headersComplete ? msg.trailers : msg.headers).push(field, value.replace(/[ \t]+$/, ""));
    field = "";
    value = "";
    inField = false;
    inValue = false;
  };
  for (const line of v.log.split("\n")) {
    if (line === "") continue;
    const off = Number(/^off=(\d+) /.exec(line)![1]);
    const rest = line.replace(/^off=\d+ /, "");
    let m: RegExpExecArray | null;
    if (rest === "message begin") {
      msg = {
        method: "",
        url: "",
        protocol: "",
        versionEnd: -1,
        major: -1,
        minor: -1,
        flags: 0,
        contentLength: 0,
        headers: [],
        trailers: [],
        body: "",
        headersComplete: false,
        complete: false,
        upgrade: false,
      };
      messages.push(msg);
    } else if ((m = /^len=(\d+) span\[(\w+)\]=/.exec(rest)) !== null) {
      const text = span(off, Number(m[1]));
      switch (m[2]) {
        case "method":
          msg!.method += text;
          break;
        case "url":
          msg!.url += text;
          break;
        case "header_field":
          if (inValue) commit();
          field += text;
          inField = true;
          break;
        case "header_value":
          value += text;
          inValue = true;
          break;
        case "body":
          msg!.body += text;
          break;
        case "protocol":
          msg!.protocol += text;
          break;
        default:
          break; // version, chunk extensions
      }
    } else if (rest === "version complete") {
      msg!.versionEnd = off;
    } else if (rest === "header_value complete") {
      inValue = true;
      commit();
    } else if ((m = /^headers complete method=\d+ v=(\d+)\/(\d+) flags=([0-9a-f]+) content_length=(\d+)$/.exec(rest)) !== null) {
      commit();
      msg!.major = Number(m[1]);
      msg!.minor = Number(m[2]);
      msg!.flags = parseInt(m[3]!, 16);
      msg!.contentLength = Number(m[4]);
      msg!.headersComplete = true;
    } else if (rest === "message complete") {
      commit();
      msg!.complete = true;
    } else if ((m = /^error code=(\d+) reason="(.*)"$/.exec(rest)) !== null) {
      const code = Number(m[1]);
      const name = ERROR_NAMES[code] ?? `UNKNOWN_${code}`;
      if (name === "PAUSED_UPGRADE") {
        msg!.upgrade = true;
        upgradeAt = off;
      } else if (name !== "CLOSED_CONNECTION") {
        error = { code, name, reason: m[2]! };
      }
    }
    // Ignored: method/url/protocol/version/header_* "complete" markers, chunk
    // headers and extensions, "pause", "reset", "skip body".
  }
  return { messages, error, upgradeAt };
}

// ------------------------------------------------ the expected outcome

function headerValues(headers: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === name) out.push(headers[i + 1]!);
  return out;
}

interface Expected {
  events: NormEvent[];
  /** Status of the error response, or null if there is no error. A list means "one of". */
  errorStatus: number[] | null;
  /** Ids of upgrade requests (left unanswered). */
  upgradeIds: Set<number>;
  /** True if the engine must not read anything more (close, error). */
  closing: boolean;
  /** For an upgrade: the offset where the new protocol's bytes start. */
  upgradeAt: number;
}

/**
 * What the engine must emit for a log, under our rules. `addedHost` lists the
 * messages that got a `Host: x` line inserted (its header comes first).
 */
function expectFromLog(log: LogResult, addedHost: ReadonlySet<number> = new Set()): Expected {
  const events: NormEvent[] = [];
  const upgradeIds = new Set<number>();
  let id = 0;
  const fail = (emittedId: number | null, code: string | null, status: number[]): Expected => {
    events.push({ type: "error", id: emittedId, code: code ?? "?", status: status[0] });
    return { events, errorStatus: status, upgradeIds, closing: true, upgradeAt: -1 };
  };
  for (let i = 0; i < log.messages.length; i++) {
    const m = log.messages[i]!;
    if (!m.headersComplete) break; // the log ends (an error or the input) inside this head
    const headers = addedHost.has(i) ? ["Host", "x", ...m.headers] : [...m.headers];
    // RFC 9112 §2.3: HTTP-name is "HTTP" (case-sensitive). llhttp also reads RTSP/1.0 and
    // ICE/1.0 request lines and reports them as version 1.0; a server of HTTP must not serve
    // them as HTTP/1.0 (llhttp's maintainers keep RTSP/ICE off for responses for this reason,
    // nodejs/llhttp#464). 400 or 505 are both acceptable answers.
    if (m.protocol !== "HTTP") return fail(null, null, [400, 505]);
    if (m.major !== 1 || (m.minor !== 0 && m.minor !== 1)) return fail(null, "ERR_HTTP_VERSION", [505]);
    const hosts = headerValues(headers, "host");
    if ((m.minor === 1 && hosts.length === 0) || hosts.length > 1) return fail(null, "ERR_BAD_HOST", [400]);
    if (hosts.length === 1 && !/^[\x21-\x7e]*$/.test(hosts[0]!)) return fail(null, "ERR_BAD_HOST", [400]);
    const te = headerValues(headers, "transfer-encoding");
    if (te.length > 0) {
      const codings = te.join(",").split(",").map((c) => c.trim().toLowerCase()).filter((c) => c !== "");
      // RFC 9112 §6.3: chunked not final in a request is a MUST-400; only then is an
      // unknown coding before chunked a 501 (RFC 9112 §6.1).
      if (codings[codings.length - 1] !== "chunked") return fail(null, null, [400]);
      if (codings.some((c) => c !== "chunked")) return fail(null, "ERR_UNSUPPORTED_TRANSFER_CODING", [501]);
      if (codings.length !== 1) return fail(null, "ERR_INVALID_TRANSFER_ENCODING", [400]);
    }
    const keepAlive = m.minor === 1 ? (m.flags & F_CONNECTION_CLOSE) === 0 : (m.flags & F_CONNECTION_KEEP_ALIVE) !== 0;
    const expect = headerValues(headers, "expect");
    events.push({
      type: "request",
      id,
      method: m.method,
      target: m.url,
      version: m.minor === 0 ? "1.0" : "1.1",
      headers,
      keepAlive,
      upgrade: m.upgrade,
      expectContinue: m.minor === 1 && expect.length > 0 && expect.join(", ").toLowerCase() === "100-continue",
      contentLength: (m.flags & F_CONTENT_LENGTH) !== 0 ? m.contentLength : null,
      chunked: (m.flags & F_CHUNKED) !== 0,
    });
    if (m.body !== "") events.push({ type: "data", id, data: m.body });
    if (!m.complete) {
      // The log stops inside this body: an error (below) or the end of the input.
      if (log.error !== null) return fail(id, `ERR_${log.error.name}`, [400]);
      return { events, errorStatus: null, upgradeIds, closing: false, upgradeAt: -1 };
    }
    events.push({ type: "end", id, trailers: [...m.trailers] });
    if (m.upgrade) {
      upgradeIds.add(id);
      return { events, errorStatus: null, upgradeIds, closing: false, upgradeAt: log.upgradeAt };
    }
    if (!keepAlive) return { events, errorStatus: null, upgradeIds, closing: true, upgradeAt: -1 };
    id++;
  }
  if (log.error !== null) {
    // RFC 9113 §3.4: the HTTP/2 preface; we serve HTTP/1.x, so 400 or 505 are both fine.
    if (log.error.name === "PAUSED_H2_UPGRADE") return fail(null, null, [400, 505]);
    return fail(null, `ERR_${log.error.name}`, [400]);
  }
  return { events, errorStatus: null, upgradeIds, closing: false, upgradeAt: -1 };
}

// ------------------------------------------------------------ feeding

interface Outcome extends FeedResult {
  conn: ServerConnection;
}

/** Feeds chunks, answering each complete non-upgrade request with a 200 as its `end` arrives. */
function runVector(chunks: readonly Uint8Array[], upgradeIds: ReadonlySet<number>): Outcome {
  const conn = makeConn();
  const answer = (ev: ServerEvent, c: ServerConnection): void => {
    if (ev.type === "end" && !upgradeIds.has(ev.id)) c.writeResponse(ev.id, { status: 200 }, "ok");
  };
  const r = feed(conn, chunks, { onEvent: answer });
  return { ...r, conn };
}

/** Replaces the code of error events for comparisons where only the status matters. */
function withoutErrorCode(events: readonly NormEvent[]): NormEvent[] {
  return events.map((e) => (e.type === "error" ? { ...e, code: "*" } : e));
}

/** The methods of the requests, in order (the response parser needs to know HEAD). */
function methodsOf(events: readonly NormEvent[]): string[] {
  return events.flatMap((e) => (e.type === "request" ? [e.method] : []));
}

/** Checks one outcome against the expectation derived from the log. */
function checkOutcome(out: Outcome, exp: Expected, what: string): void {
  if (exp.errorStatus !== null) {
    const errors = out.events.filter((e) => e.type === "error");
    expect(errors, `${what}: exactly one error event`).toHaveLength(1);
    const err = errors[0] as Extract<NormEvent, { type: "error" }>;
    expect(exp.errorStatus, `${what}: error status`).toContain(err.status);
    // Everything before the error is what the log says; the error's own code is compared separately.
    expect(withoutErrorCode(out.events).slice(0, -1), `${what}: events`).toEqual(exp.events.slice(0, -1));
    expect(out.events[out.events.length - 1]!.type, `${what}: the error is the last event`).toBe("error");
    expect(err.id, `${what}: error id`).toBe((exp.events[exp.events.length - 1] as { id: number | null }).id);
    // The answer: a 200 per complete request, then the error response with Connection: close.
    const responses = finals(parseResponses(out.output, methodsOf(out.events)));
    const last = responses[responses.length - 1];
    expect(last?.status, `${what}: the last response is the error`).toBe(err.status);
    expect(closes(last!), `${what}: the error response closes`).toBe(true);
    expect(out.conn.mustClose, `${what}: mustClose`).toBe(true);
    expect(out.conn.theirState).toBe("error");
    expect(out.last).toBe("paused");
    return;
  }
  expect(out.events, `${what}: events`).toEqual(exp.events);
  const answered = exp.events.filter((e) => e.type === "end" && !exp.upgradeIds.has(e.id)).length;
  const responses = finals(parseResponses(out.output, methodsOf(out.events)));
  expect(responses.map((r) => r.status), `${what}: one 200 per complete request`).toEqual(new Array(answered).fill(200));
  if (exp.upgradeIds.size > 0) {
    expect(out.last, `${what}: an upgrade waits for its answer`).toBe("paused");
    expect(out.conn.mustClose).toBe(false);
  } else if (exp.closing) {
    expect(out.conn.mustClose, `${what}: mustClose after Connection: close`).toBe(true);
    expect(closes(responses[responses.length - 1]!), `${what}: the last response closes`).toBe(true);
  } else {
    expect(out.last, `${what}: waits for more`).toBe("need-data");
    expect(out.conn.mustClose).toBe(false);
  }
}

/** Runs a vector's input whole, byte by byte and at random splits; all must agree and match `exp`. */
function checkThreeWays(input: Uint8Array, exp: Expected, label: string): void {
  const whole = runVector([input], exp.upgradeIds);
  checkOutcome(whole, exp, `${label} (whole)`);
  if (exp.errorStatus !== null && exp.events[exp.events.length - 1]!.type === "error") {
    const code = (exp.events[exp.events.length - 1] as { code: string }).code;
    if (code !== "?") expect((whole.events[whole.events.length - 1] as { code: string }).code, `${label}: error code`).toBe(code);
  }
  const bytewise = runVector(byteByByte(input), exp.upgradeIds);
  checkOutcome(bytewise, exp, `${label} (byte by byte)`);
  expect(bytewise.events).toEqual(whole.events);
  expect(bytewise.output).toBe(whole.output);
  fc.assert(
    fc.property(splitPoints(input.byteLength), (points) => {
      const split = runVector(splitAt(input, points), exp.upgradeIds);
      checkOutcome(split, exp, `${label} (split at ${points.join(",")})`);
      expect(split.events).toEqual(whole.events);
      expect(split.output).toBe(whole.output);
    }),
    { numRuns: 8 },
  );
}

/**
 * Inserts `Host: x` after the request line of each HTTP/1.1 message that has
 * no Host, where the line ends with CRLF. Returns null if nothing changes.
 */
function withHost(v: Vector, log: LogResult): { input: Buffer; added: Set<number> } | null {
  const input = inputBytes(v);
  const added = new Set<number>();
  const cuts: number[] = [];
  log.messages.forEach((m, i) => {
    if (m.versionEnd < 0 || (m.headersComplete && m.minor !== 1)) return;
    if (input.subarray(m.versionEnd, m.versionEnd + 2).toString("latin1") !== "\r\n") return;
    if (headerValues(m.headers, "host").length > 0) return;
    // A version the log never completed (an error in the head) is still 1.1 when the line says so.
    if (!m.headersComplete && input.subarray(m.versionEnd - 3, m.versionEnd).toString("latin1") !== "1.1") return;
    added.add(i);
    cuts.push(m.versionEnd + 2);
  });
  if (cuts.length === 0) return null;
  const parts: Buffer[] = [];
  let from = 0;
  for (const c of cuts) {
    parts.push(input.subarray(from, c), Buffer.from("Host: x\r\n", "latin1"));
    from = c;
  }
  parts.push(input.subarray(from));
  return { input: Buffer.concat(parts), added };
}

// ------------------------------------------------------------------ tests

/**
 * Vectors that the llhttp inside the pinned undici rejects although the
 * (newer) llhttp that wrote the log accepts them: `Content-Length:\t42\t`
 * (trailing HTAB is OWS, RFC 9110 §5.5; fixed in later llhttp, see
 * nodejs/node#62192). Rejecting a valid length with 400 is safe, and the
 * engine cannot make llhttp accept it, so either outcome passes here; the
 * rejection must still be a clean 400 the three ways.
 */
const OLDER_LLHTTP_REJECTS = new Map<string, string>([
  ["Content-Length header / Spaces in `Content-Length` (surrounding) / Tabs in `Content-Length` (surrounding)", "ERR_INVALID_CONTENT_LENGTH"],
]);

/** The expectation, or the older llhttp's rejection if that is what the engine (whole input) gives. */
function pickExpectation(v: Vector, input: Uint8Array, exp: Expected): Expected {
  const code = OLDER_LLHTTP_REJECTS.get(v.name);
  if (code === undefined) return exp;
  const whole = runVector([input], exp.upgradeIds);
  const last = whole.events[whole.events.length - 1];
  if (last?.type !== "error" || last.code !== code) return exp;
  return { events: [{ type: "error", id: null, code, status: 400 }], errorStatus: [400], upgradeIds: new Set(), closing: true, upgradeAt: -1 };
}

describe("llhttp request vectors", () => {
  it("are there, and the log parser understands them", () => {
    expect(REQUEST_VECTORS.length).toBeGreaterThan(100);
    for (const v of REQUEST_VECTORS) {
      const log = parseLog(v);
      const complete = log.messages.filter((m) => m.complete).length;
      // `messages` counts complete messages in llhttp's harness (an upgrade pause still counts its message).
      expect(complete, v.name).toBe(v.messages);
    }
  });

  for (const v of REQUEST_VECTORS) {
    if (v.meta.skipBody) continue; // its own test below
    const log = parseLog(v);
    const exp = expectFromLog(log);
    const label = `${v.file}:${v.line} ${v.name}`;

    it(`${label}`, () => {
      checkThreeWays(inputBytes(v), pickExpectation(v, inputBytes(v), exp), label);
    });

    const hosted = withHost(v, log);
    if (hosted !== null) {
      it(`${label} (with Host: x inserted)`, () => {
        // Without the Host, an HTTP/1.1 request is 400 ERR_BAD_HOST unless llhttp rejects it earlier.
        const bad = pickExpectation(v, inputBytes(v), exp).events.at(-1);
        const firstNoHost = Math.min(...hosted.added);
        if (log.messages[firstNoHost]!.headersComplete && !OLDER_LLHTTP_REJECTS.has(v.name)) {
          expect(bad?.type === "error" && bad.code, "without Host").toBe("ERR_BAD_HOST");
        }
        const exp2 = expectFromLog(log, hosted.added);
        // Inserting a line can change which llhttp error a broken head gets; the status stays.
        const e2last = exp2.events[exp2.events.length - 1];
        if (e2last?.type === "error") e2last.code = "?";
        checkThreeWays(hosted.input, pickExpectation(v, hosted.input, exp2), `${label} +Host`);
      });
    }
  }

  it("skipBody vector: a server reads the Content-Length body that llhttp's harness skipped", () => {
    const v = REQUEST_VECTORS.find((x) => x.meta.skipBody)!;
    expect(v).toBeDefined();
    const log = parseLog(v);
    const hosted = withHost(v, log)!;
    // Only the first message is a message for a server; the second one is body bytes.
    const text = hosted.input.toString("latin1");
    const firstEnd = text.indexOf("\r\n\r\n") + 4;
    const conn = makeConn();
    const r = feed(conn, [hosted.input]);
    expect(r.events).toEqual([
      {
        type: "request",
        id: 0,
        method: "PUT",
        target: "/url",
        version: "1.1",
        headers: ["Host", "x", "Content-Length", "123"],
        keepAlive: true,
        upgrade: false,
        expectContinue: false,
        contentLength: 123,
        chunked: false,
      },
      { type: "data", id: 0, data: text.slice(firstEnd) },
    ]);
    expect(r.last).toBe("need-data");
  });

  it("upgrade vectors: a 101 hands over exactly the bytes after the message", () => {
    let checked = 0;
    for (const v of REQUEST_VECTORS) {
      const log = parseLog(v);
      if (log.upgradeAt < 0) continue;
      const hosted = withHost(v, log);
      const input = hosted?.input ?? inputBytes(v);
      const shift = hosted === null ? 0 : 9 * hosted.added.size;
      for (const chunks of [[input], byteByByte(input), splitAt(input, [3, 40, log.upgradeAt + shift + 1])]) {
        // All bytes arrive while the upgrade waits for its answer; then the 101 goes out.
        const conn = makeConn();
        const r = feed(conn, chunks);
        expect(r.last, v.name).toBe("paused");
        const req = r.events.find((e) => e.type === "request");
        expect(req?.type === "request" && req.upgrade, v.name).toBe(true);
        conn.writeHeaders(req!.id, { status: 101, headers: ["Upgrade", "x", "Connection", "upgrade"] });
        expect(conn.theirState, v.name).toBe("switched");
        const after = feed(conn, []);
        expect(after.events, v.name).toEqual([{ type: "upgrade", id: req!.id, trailingData: input.subarray(log.upgradeAt + shift).toString("latin1") }]);
        expect(latin1(conn.trailingData), v.name).toBe(input.subarray(log.upgradeAt + shift).toString("latin1"));
        expect(() => conn.receiveData(new Uint8Array([1]))).toThrow(/switched/);
      }
      checked++;
    }
    expect(checked).toBeGreaterThanOrEqual(5);
  });
});
