/**
 * The request object handed to applications: what Tornado's
 * `HTTPServerRequest` has, built lazily from the engine's flat data.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { EMPTY_BYTES, type BytesLike } from "../core/bytes";
import { HTTPHeaders, type FlatHeaders, type HeadersInit } from "../core/headers";
import type { Connection } from "../core/transport";
import { nameIs } from "../protocols/http1";

/** @internal The request method that makes a request cheap to keep (see `HTTPServerRequest`). */
export const COMPACT_REQUEST: unique symbol = Symbol("typhoon.compactRequest");

/**
 * One string per header name, and per header value, seen on long-lived
 * requests; each bounded. Connections that stay open (WebSockets) mostly
 * carry the same values (the Host, `Upgrade: websocket`, the version, the
 * user agent), and behind a proxy the same remote address: 10,000 open
 * connections keep one copy of each instead of 10,000. Tables keep what
 * they hold for the life of the process, and the first values seen take
 * the room: 512 names and 1,024 values are far more than the distinct
 * ones a server's clients send in these headers.
 */
const SHARED_NAMES = new Map<string, string>();
const MAX_SHARED_NAMES = 512;
const SHARED_VALUES = new Map<string, string>();
const MAX_SHARED_VALUES = 1024;
/** Values longer than this are kept as they are (rarely repeated, and costly to hash). */
const MAX_SHARED_VALUE_LENGTH = 256;
/**
 * The headers whose values are shared: those that repeat across clients.
 * Values that differ per connection (a WebSocket key, cookies, tokens,
 * request ids) would only fill the table, and secrets must not outlive
 * their connection in it.
 */
const SHARED_VALUE_HEADERS = new Set([
  "host",
  "connection",
  "upgrade",
  "origin",
  "user-agent",
  "sec-websocket-version",
  "sec-websocket-extensions",
  "accept",
  "accept-encoding",
  "accept-language",
  "cache-control",
  "pragma",
]);

/** One copy of `text` per distinct text in `table`, while it has room; else a copy of its own. */
function shared(table: Map<string, string>, max: number, text: string): string {
  const found = table.get(text);
  if (found !== undefined) return found;
  const own = ownString(text);
  if (table.size < max) table.set(own, own);
  return own;
}

function sharedName(name: string): string {
  return shared(SHARED_NAMES, MAX_SHARED_NAMES, name);
}

/** @internal For tests: whether the shared table holds `value`. */
export function isSharedValue(value: string): boolean {
  return SHARED_VALUES.has(value);
}

function sharedValue(value: string): string {
  return value.length > MAX_SHARED_VALUE_LENGTH ? ownString(value) : shared(SHARED_VALUES, MAX_SHARED_VALUES, value);
}

/**
 * A copy of `text` that holds its own characters. V8 cuts substrings of 13
 * characters or more as views of the string they came from; the parser's
 * come from the decoded head, which a view keeps alive as long as it lives.
 */
const LATIN1 = /^[\x00-\xff]*$/;

function ownString(text: string): string {
  // Only latin1 text round-trips through latin1 bytes; the parser's always is.
  return text.length < 13 || !LATIN1.test(text) ? text : Buffer.from(text, "latin1").toString("latin1");
}

/**
 * The first whole-millisecond start time seen. Requests keep a whole start
 * time as an offset from it: a timestamp such as `Date.now()` is too large
 * for V8's small integers, so each object would hold it in a heap number
 * of its own (16 bytes more on every open WebSocket); an offset within
 * about 24 days is held in the object itself. A start time with a fraction
 * (a clock such as `performance.now()`) is kept as it is, so that it reads
 * back exactly; a kept offset is always whole, which tells them apart.
 */
let timeOrigin = 0;
let timeOriginSet = false;

/** What a request keeps of its start time (see timeOrigin). */
function startOffset(startTime: number): number {
  if (!Number.isInteger(startTime)) return startTime;
  if (!timeOriginSet) {
    timeOrigin = startTime;
    timeOriginSet = true;
  }
  return smallIfIntegral(startTime - timeOrigin);
}

/** `n` as a value V8 can keep as a small integer when it is one (arithmetic on large numbers yields doubles). */
function smallIfIntegral(n: number): number {
  return n === (n | 0) ? n | 0 : n;
}

/** How a response is written for one request (Tornado's `request.connection`). */
export interface RequestConnection {
  /**
   * Starts the response. Without `Content-Length` the body is chunked
   * (HTTP/1.1) or ends with the connection (HTTP/1.0).
   */
  writeHeaders(status: number, headers?: HeadersInit, chunk?: BytesLike, reason?: string): void;
  /** Sends a piece of body; resolves when the bytes are handed to the transport. */
  write(chunk: BytesLike): Promise<void>;
  /** Ends the response (with trailers if chunked); resolves when flushed. */
  finish(trailers?: HeadersInit): Promise<void>;
  /** Sends a whole response at once; `Content-Length` is added if missing. */
  respond(status: number, headers?: HeadersInit, body?: BytesLike, reason?: string): Promise<void>;
  /** Sends an informational response such as `103 Early Hints`. */
  sendInformational(status: number, headers?: HeadersInit): void;
  /** Raises or lowers the body limit of this request (call before its body is read). */
  setMaxBodyBytes(maxBodyBytes: number): void;
  /** True once the response head has been written. */
  readonly headersWritten: boolean;
  /** True once the response is finished. */
  readonly finished: boolean;
  /** True once the client's connection is gone. */
  readonly closed: boolean;
  /**
   * After `writeHeaders(101, ...)`: takes the transport connection away from
   * the HTTP server, with the bytes that followed the request head. The
   * caller must set its own handler on the connection at once. `onShutdown`
   * is called when the server closes gracefully (close the connection there,
   * e.g. a WebSocket with 1001).
   */
  detach(options?: { onShutdown?: () => void | Promise<void> }): {
    connection: Connection;
    trailingData: Uint8Array;
    /** Call when the connection closes, so that the server stops waiting for it at shutdown. */
    release: () => void;
  };
  /**
   * Once detached: the same as the `release` that `detach` returned (the
   * request's connection is then the server's record of the hand-over).
   * Absent before.
   */
  release?(): void;
}

/** What the server knows of the connection a request came on. */
export interface ConnectionInfo {
  readonly remoteIp: string;
  readonly remotePort: number;
  readonly protocol: "http" | "https";
}

/**
 * One HTTP request, as Tornado's `HTTPServerRequest`.
 *
 * @example
 * ```ts
 * const server = new HTTPServer(async (req) => {
 *   await req.connection.respond(200, { "Content-Type": "text/plain" }, `You asked for ${req.path}\n`);
 * });
 * ```
 */
export class HTTPServerRequest {
  /** `GET`, `POST`, ... */
  readonly method: string;
  /** The request target as sent: `/path?query`. */
  readonly uri: string;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  readonly version: string;
  /**
   * The client's IP (from `X-Real-Ip`/`X-Forwarded-For` when `xheaders` is
   * on); `0.0.0.0` on a connection without one, such as a Unix socket (as
   * Tornado).
   */
  remoteIp: string;
  /** `http` or `https` (from `X-Forwarded-Proto`/`X-Scheme` when `xheaders` is on). */
  protocol: "http" | "https";
  /** The buffered body (empty until it is complete, and for streamed requests). */
  body: Uint8Array = EMPTY_BYTES;
  /** Trailer fields of a chunked request body. */
  trailers: HTTPHeaders | null = null;
  /** How to answer this request. */
  readonly connection: RequestConnection;
  #flatHeaders: FlatHeaders;
  #headers: HTTPHeaders | null = null;
  /** startTime less timeOrigin when whole, else startTime (see timeOrigin). */
  #start: number;
  /** Milliseconds from start to finish, -1 until finished (a difference, for the same reason). */
  #elapsed = -1;

  constructor(
    method: string,
    uri: string,
    version: string,
    headers: FlatHeaders,
    info: ConnectionInfo,
    connection: RequestConnection,
    startTime: number,
  ) {
    this.method = method;
    this.uri = uri;
    this.version = version;
    this.#flatHeaders = headers;
    this.remoteIp = info.remoteIp;
    this.protocol = info.protocol;
    this.connection = connection;
    this.#start = startOffset(startTime);
  }

  /**
   * @internal Makes the request cheap to keep for a long time (an upgraded
   * connection keeps its request while it is open): header names, values
   * and the remote IP become one shared string per distinct text (up to a
   * bound), and the rest stop sharing the string the whole head was decoded
   * into, which they would otherwise keep alive. The request reads the same
   * as before.
   */
  [COMPACT_REQUEST](): void {
    const flat = this.#flatHeaders;
    const compact: string[] = new Array<string>(flat.length);
    for (let i = 0; i < flat.length; i += 2) {
      const name = sharedName(flat[i]!);
      compact[i] = name;
      const value = flat[i + 1]!;
      compact[i + 1] = SHARED_VALUE_HEADERS.has(name.toLowerCase()) ? sharedValue(value) : ownString(value);
    }
    this.#flatHeaders = compact;
    this.#headers = null;
    (this as { uri: string }).uri = ownString(this.uri);
    this.remoteIp = sharedValue(this.remoteIp);
  }

  /** When the request head arrived (milliseconds, from the server's clock). */
  get startTime(): number {
    const start = this.#start;
    return Number.isInteger(start) ? timeOrigin + start : start;
  }

  /** Headers, case-insensitive and multi-valued. */
  get headers(): HTTPHeaders {
    return (this.#headers ??= HTTPHeaders.fromFlat(this.#flatHeaders));
  }

  /**
   * The value of the request header `name` (any case), joined with `", "`
   * when it came more than once; `undefined` when absent. Reads the header
   * list without building the index of {@link headers}: the cheaper way to
   * look up one or two headers per request.
   *
   * @example
   * ```ts
   * const tag = request.header("If-None-Match");
   * ```
   */
  header(name: string): string | undefined {
    const index = this.#headers;
    if (index !== null) return index.get(name);
    const lower = name.toLowerCase();
    const flat = this.#flatHeaders;
    let out: string | undefined;
    for (let i = 0; i < flat.length; i += 2) {
      if (nameIs(flat[i]!, lower)) out = out === undefined ? flat[i + 1]! : `${out}, ${flat[i + 1]!}`;
    }
    return out;
  }

  /** The path part of the URI, without the query. */
  get path(): string {
    const q = this.uri.indexOf("?");
    return q === -1 ? this.uri : this.uri.slice(0, q);
  }

  /** The query string, without the `?` (empty if none). */
  get query(): string {
    const q = this.uri.indexOf("?");
    return q === -1 ? "" : this.uri.slice(q + 1);
  }

  /** The `Host` header, or `127.0.0.1` when there is none (as Tornado). */
  get host(): string {
    return this.headers.get("Host") ?? "127.0.0.1";
  }

  /** The host without its port. */
  get hostName(): string {
    const host = this.host;
    if (host.startsWith("[")) {
      const end = host.indexOf("]");
      return end === -1 ? host : host.slice(1, end);
    }
    const colon = host.lastIndexOf(":");
    return colon === -1 ? host : host.slice(0, colon);
  }

  /** `protocol://host/uri`. */
  fullUrl(): string {
    return `${this.protocol}://${this.host}${this.uri}`;
  }

  /** Time taken so far, or to finish, in seconds (as Tornado's `request_time`). */
  requestTime(now: number = Date.now()): number {
    return (this.#elapsed >= 0 ? this.#elapsed : now - this.startTime) / 1000;
  }

  /** Called by the server when the response is finished. */
  markFinished(time: number): void {
    // A clock that stepped back reads as no time at all (and -1 means unfinished).
    this.#elapsed = Math.max(0, smallIfIntegral(time - this.startTime));
  }

  /** Query arguments, multi-valued (`?a=1&a=2` gives `{ a: ["1", "2"] }`). */
  get queryArguments(): Record<string, string[]> {
    return parseQueryString(this.query);
  }
}

/**
 * Parses `a=1&b=2&a=3` into lists of values, decoding `+` and `%XX` as UTF-8.
 * Blank values are kept (as empty strings).
 *
 * @example
 * ```ts
 * parseQueryString("a=1&a=2&b=x+y") // { a: ["1", "2"], b: ["x y"] }
 * ```
 */
export function parseQueryString(query: string): Record<string, string[]> {
  const out: Record<string, string[]> = Object.create(null);
  if (query === "") return out;
  for (const part of query.split(/[&;]/)) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const name = decodeQueryComponent(eq === -1 ? part : part.slice(0, eq));
    const value = eq === -1 ? "" : decodeQueryComponent(part.slice(eq + 1));
    (out[name] ??= []).push(value);
  }
  return out;
}

/** Decodes one `application/x-www-form-urlencoded` component; bad escapes are kept as they are. */
export function decodeQueryComponent(text: string): string {
  const plus = text.includes("+") ? text.replace(/\+/g, " ") : text;
  if (!plus.includes("%")) return plus;
  try {
    return decodeURIComponent(plus);
  } catch {
    return plus.replace(/(%[0-9A-Fa-f]{2})+/g, (m) => {
      try {
        return decodeURIComponent(m);
      } catch {
        return m;
      }
    });
  }
}
