/**
 * `RequestHandler`, after `tornado.web.RequestHandler`: one instance per
 * request, with Tornado's lifecycle and output methods.
 *
 * How a request runs: the {@link Application} routes it, buffers its body,
 * builds the handler (`new Handler(application, request, initArgs)`), then
 * runs it: `setDefaultHeaders()`, `initialize(initArgs)`, `prepare()`, the
 * method named after the HTTP method (`get`, `post`, ...) with the route's
 * arguments, and `finish()` unless the handler turned `autoFinish` off or
 * finished already. `prepare` and the method may return promises; when they
 * do not, nothing is awaited and no promise is made. An error thrown on the
 * way becomes an error page through `sendError` and `writeError`.
 *
 * The response stays in the handler until `flush()` or `finish()`: headers
 * in one flat list (`[name, value, ...]`, handed to the server as it is) and
 * the body as the chunks written. `finish()` without an earlier flush sends
 * everything with one call, with `Content-Length` (and an `Etag` for GET and
 * HEAD); after a flush the body is chunked.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import * as crypto from "node:crypto";
import { EMPTY_BYTES, utf8Decode } from "../core";
import { STATUS_REASONS } from "../protocols/http1";
import { isValidHeaderName, isValidHeaderValue, nameIs } from "../protocols/http1";
import { parseQueryString, type HTTPServerRequest } from "../server";
import type { Application, ApplicationSettings } from "./application";
import { Finish, HTTPError, MissingArgumentError } from "./errors";
import { urlUnquote, type InitArgs } from "./routing";
import { VERSION } from "./version";

/** What `write` and `finish` accept: text (UTF-8), bytes, or a plain object sent as JSON. */
export type Chunk = string | Uint8Array | Record<string, unknown>;

/** A header value: strings as they are, numbers as decimals, dates in HTTP format. */
export type HeaderValue = string | number | Date;

/** Options of {@link RequestHandler.sendError} and {@link RequestHandler.writeError}. */
export interface ErrorOptions {
  /** The error that caused the response (Tornado's `exc_info`). */
  error?: unknown;
  /** A reason phrase instead of the standard one. */
  reason?: string;
}

/** @internal Runs a handler (called by the Application; not part of the public API). */
export const EXECUTE: unique symbol = Symbol("typhoon.web.execute");

const RESOLVED: Promise<void> = Promise.resolve();
const NO_ARGS: ReadonlyArray<string | undefined> = Object.freeze([]);
const NO_KWARGS: Readonly<Record<string, string | undefined>> = Object.freeze({});
const NO_ARGUMENTS: Readonly<Record<string, string[]>> = Object.freeze(Object.create(null));
const SERVER = `typhoon/${VERSION}`;
const HTML = "text/html; charset=UTF-8";

/** A fresh header list (a literal: copying a frozen array is ~100x slower in V8). */
function defaultHeaders(): string[] {
  return ["Server", SERVER, "Content-Type", HTML];
}

/** The default headers, shared, for reading and sending only (never changed). */
const DEFAULT_HEADERS_VIEW: string[] = defaultHeaders();

/** Bodies up to this size get a 64-bit tag hashed in JavaScript; larger ones a SHA-1, as Tornado. */
const SMALL_BODY = 1024;
/** Tornado's `_remove_control_chars_regex`: control characters but tab, LF, VT, FF, CR. */
const CONTROL_CHAR = /[\x00-\x08\x0e-\x1f]/;
const CONTROL_CHARS = /[\x00-\x08\x0e-\x1f]/g;
/** An entity-tag or `*` in `If-None-Match` (RFC 9110 §8.8.3). */
const ETAG_LIST = /\*|(?:W\/)?"[^"]*"/g;

const sha1Hex: (data: string | Uint8Array) => string =
  typeof (crypto as { hash?: unknown }).hash === "function"
    ? (data) => crypto.hash("sha1", data, "hex")
    : (data) => crypto.createHash("sha1").update(data).digest("hex");

/**
 * Base class of request handlers (Tornado's `RequestHandler`).
 *
 * Define a method per HTTP method you answer: `get`, `head`, `post`, `put`,
 * `delete`, `patch`, `options`. They are not declared here (so that a
 * subclass defines them without `override`); a method that is missing is
 * answered `405 Method Not Allowed`, with an `Allow` header listing the
 * methods the handler has (Tornado sends none; RFC 9110 §15.5.6 asks for
 * it). As in Tornado, `head` is not derived from `get`.
 *
 * Groups of the route's pattern are the method's arguments, percent-decoded
 * as UTF-8 (a group that did not match is `undefined`). Named groups are
 * passed the same way, in order, and are also in `pathKwargs` by name
 * (Tornado passes them as keyword arguments).
 *
 * Hooks to override: `initialize`, `prepare`, `onFinish`,
 * `onConnectionClose`, `setDefaultHeaders`, `writeError`, `computeEtag`,
 * `logException`, `decodeArgument`. They are called by the application
 * after the constructor has run, so that a subclass's fields are in place.
 *
 * @example
 * ```ts
 * class UserHandler extends RequestHandler {
 *   db!: Map<string, { name: string }>;
 *   override initialize(args: { db: Map<string, { name: string }> }) { this.db = args.db; }
 *   get(id: string) {
 *     const user = this.db.get(id);
 *     if (user === undefined) throw new HTTPError(404);
 *     this.write(user); // JSON
 *   }
 * }
 * new Application([["/user/([0-9]+)", UserHandler, { db }]]);
 * ```
 */
export class RequestHandler {
  /** Methods this handler class may answer; others get 405. */
  static SUPPORTED_METHODS: readonly string[] = ["GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS"];

  /** The application that routed the request here. */
  readonly application: Application;
  /** The request being answered. */
  readonly request: HTTPServerRequest;
  /** The route's groups, decoded (Tornado's `path_args`). */
  pathArgs: ReadonlyArray<string | undefined> = NO_ARGS;
  /** The route's named groups by name, decoded (Tornado's `path_kwargs`). */
  pathKwargs: Readonly<Record<string, string | undefined>> = NO_KWARGS;
  /**
   * Finish the response when the HTTP method returns (or its promise
   * settles). Turn it off to finish later yourself (Tornado's `_auto_finish`).
   */
  protected autoFinish = true;

  readonly #initArgs: InitArgs;
  /** The response headers as a flat list; null while they are the defaults (copied on first change). */
  #headers: string[] | null = null;
  #status = 200;
  #reason: string | undefined = undefined;
  /** The first chunk written and not yet flushed. */
  #chunk: string | Uint8Array | null = null;
  /** Further chunks, when there are several. */
  #chunks: Array<string | Uint8Array> | null = null;
  #headersWritten = false;
  #finished = false;
  #queryArguments: Record<string, string[]> | null = null;
  #bodyArguments: Record<string, string[]> | null = null;

  /**
   * Made by the application for each request. Do the setup in
   * `initialize`, which gets `initArgs`, rather than in a constructor.
   *
   * @example
   * ```ts
   * const handler = new MainHandler(app, request); // what the application does
   * ```
   */
  constructor(application: Application, request: HTTPServerRequest, initArgs: InitArgs = NO_KWARGS) {
    this.application = application;
    this.request = request;
    this.#initArgs = initArgs;
  }

  // ---------------------------------------------------------------- hooks

  /**
   * Called once per request with the route's third element, before
   * `prepare` (Tornado passes it as keyword arguments).
   *
   * @example
   * ```ts
   * override initialize(args: { db: Database }) { this.db = args.db; }
   * ```
   */
  initialize(initArgs: InitArgs): void {}

  /**
   * Called before the HTTP method. May return a promise; the method waits
   * for it. If it finishes the response, the method is not called.
   *
   * @example
   * ```ts
   * override async prepare() { this.user = await loadUser(this.request); }
   * ```
   */
  prepare(): void | Promise<void> {}

  /**
   * Called after the response is finished, for cleanup and logging. It may
   * not write anything.
   *
   * @example
   * ```ts
   * override onFinish() { metrics.count(this.getStatus()); }
   * ```
   */
  onFinish(): void {}

  /**
   * Called if the client's connection closes before the response is
   * finished (during asynchronous processing).
   *
   * @example
   * ```ts
   * override onConnectionClose() { this.subscription.cancel(); }
   * ```
   */
  onConnectionClose(): void {}

  /**
   * Sets headers at the start of each response (and again before an error
   * page, since `sendError` clears the headers).
   *
   * @example
   * ```ts
   * override setDefaultHeaders() { this.setHeader("Server", "MyServer"); }
   * ```
   */
  setDefaultHeaders(): void {}

  // ------------------------------------------------------------ accessors

  /** The application's settings. @example `if (this.settings.debug) ...` */
  get settings(): ApplicationSettings {
    return this.application.settings;
  }

  /** True once the response head was sent (by `flush` or `finish`). @example `if (!this.headersWritten) this.setHeader("X", "1")` */
  get headersWritten(): boolean {
    return this.#headersWritten;
  }

  /** True once `finish` was called. @example `if (!this.finished) this.finish()` */
  get finished(): boolean {
    return this.#finished;
  }

  /** The reason phrase that goes with the status. @example `this.reason // "Not Found"` */
  get reason(): string {
    return this.#reason ?? STATUS_REASONS[this.#status] ?? "Unknown";
  }

  /**
   * Throws unless the application has the setting `name` (truthy).
   *
   * @example
   * ```ts
   * this.requireSetting("loginUrl", "authentication");
   * ```
   */
  requireSetting(name: string, feature = "this feature"): void {
    if (!this.application.settings[name]) {
      throw new Error(`Cannot use ${feature}: the application has no "${name}" setting`);
    }
  }

  /**
   * The URL path of a named route (an alias of `Application.reverseUrl`).
   *
   * @example
   * ```ts
   * this.redirect(this.reverseUrl("user", 42));
   * ```
   */
  reverseUrl(name: string, ...args: Array<string | number | boolean>): string {
    return this.application.reverseUrl(name, ...args);
  }

  // --------------------------------------------------------- status, headers

  /**
   * Sets the response status. Without `reason`, the standard phrase is used,
   * or `Unknown` for a code that has none (Tornado 5+; older versions threw).
   * Throws for a status that is not an integer from 100 to 999 and for a
   * reason with control characters or `<`.
   *
   * @example
   * ```ts
   * this.setStatus(201);
   * this.setStatus(599, "Network Timeout");
   * ```
   */
  setStatus(statusCode: number, reason?: string): void {
    if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 999) {
      throw new RangeError(`Cannot set status ${String(statusCode)}: it must be an integer from 100 to 999`);
    }
    if (reason !== undefined && (reason.includes("<") || !/^[\t\x20-\x7e\x80-\xff]*$/.test(reason))) {
      throw new TypeError(`Cannot set the reason phrase ${JSON.stringify(reason)}: it has a control character or "<"`);
    }
    this.#status = statusCode;
    this.#reason = reason;
  }

  /** The response status. @example `this.getStatus() // 200` */
  getStatus(): number {
    return this.#status;
  }

  /**
   * Sets a response header, replacing every earlier value of it. Numbers
   * are sent as decimals, dates in HTTP date format. Throws if the name is
   * not a token or the value has a control character (or a character above
   * U+00FF), which could split the response.
   *
   * @example
   * ```ts
   * this.setHeader("Cache-Control", "no-store");
   * this.setHeader("Last-Modified", new Date(mtime));
   * ```
   */
  setHeader(name: string, value: HeaderValue): void {
    const v = headerValue(name, value);
    const headers = (this.#headers ??= defaultHeaders());
    const lower = lowerName(name);
    let found = false;
    for (let i = 0; i < headers.length; i += 2) {
      if (sameName(headers[i]!, name, lower)) {
        if (found) {
          headers.splice(i, 2);
          i -= 2;
        } else {
          headers[i] = name;
          headers[i + 1] = v;
          found = true;
        }
      }
    }
    if (!found) headers.push(name, v);
  }

  /**
   * Adds a response header, keeping earlier values (for `Set-Cookie`, `Link`, ...).
   *
   * @example
   * ```ts
   * this.addHeader("Link", "</a.css>; rel=preload");
   * this.addHeader("Link", "</b.js>; rel=preload");
   * ```
   */
  addHeader(name: string, value: HeaderValue): void {
    const v = headerValue(name, value);
    (this.#headers ??= defaultHeaders()).push(name, v);
  }

  /**
   * Removes every value of a response header.
   *
   * @example
   * ```ts
   * this.clearHeader("Server");
   * ```
   */
  clearHeader(name: string): void {
    const headers = (this.#headers ??= defaultHeaders());
    const lower = name.toLowerCase();
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      if (sameName(headers[i]!, name, lower)) headers.splice(i, 2);
    }
  }

  /**
   * The response header `name` as it will be sent (values joined with
   * `", "`), or undefined.
   *
   * @example
   * ```ts
   * this.getHeader("content-type") // "text/html; charset=UTF-8"
   * ```
   */
  getHeader(name: string): string | undefined {
    const headers = this.#headers ?? DEFAULT_HEADERS_VIEW;
    const lower = name.toLowerCase();
    let out: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      if (sameName(headers[i]!, name, lower)) out = out === undefined ? headers[i + 1]! : `${out}, ${headers[i + 1]!}`;
    }
    return out;
  }

  /**
   * Resets the headers (to `Server`, `Content-Type: text/html; charset=UTF-8`
   * and what `setDefaultHeaders` adds), the status (200) and the unflushed
   * body. `Date` is added by the server when the response is sent.
   *
   * @example
   * ```ts
   * this.clear(); // start the response over
   * ```
   */
  clear(): void {
    this.#headers = null;
    this.setDefaultHeaders();
    this.#chunk = null;
    this.#chunks = null;
    this.#status = 200;
    this.#reason = undefined;
  }

  // ----------------------------------------------------------------- output

  /**
   * Adds to the response body (nothing is sent before `flush` or `finish`).
   * A string is sent as UTF-8; bytes as they are (not copied: do not change
   * them until the response is flushed); a plain object as JSON, with
   * `Content-Type: application/json; charset=UTF-8` (set another type after
   * the call if you need one).
   *
   * Arrays are refused, as in Tornado: a JSON array at the top of a response
   * could be read across sites by old browsers ("JSON hijacking"). Wrap it in
   * an object.
   *
   * @example
   * ```ts
   * this.write("Hello, ");
   * this.write(Buffer.from("world"));
   * this.write({ items: [1, 2, 3] });
   * ```
   */
  write(chunk: Chunk): void {
    if (this.#finished) throw new Error("Cannot write: the response is already finished");
    let data: string | Uint8Array;
    if (typeof chunk === "string" || chunk instanceof Uint8Array) {
      data = chunk;
    } else if (isPlainObject(chunk)) {
      data = jsonEncode(chunk);
      this.setHeader("Content-Type", "application/json; charset=UTF-8");
    } else if (Array.isArray(chunk)) {
      throw new TypeError(
        "Cannot write an array: top-level JSON arrays are refused for security reasons (JSON hijacking); wrap it in an object",
      );
    } else {
      throw new TypeError(`Cannot write ${describe(chunk)}: write() accepts a string, a Uint8Array or a plain object`);
    }
    if (data.length === 0) return;
    if (this.#chunk === null) this.#chunk = data;
    else (this.#chunks ??= []).push(data);
  }

  /**
   * Sends what was written so far: the first flush sends the head too (the
   * body is then chunked, unless a `Content-Length` header was set). The
   * promise resolves when the bytes are handed to the connection (at once,
   * unless it is over its high-water mark). If the client has gone, the
   * data is dropped and the promise resolves; check
   * `this.request.connection.closed` in long streams.
   *
   * @example
   * ```ts
   * for (const row of rows) {
   *   this.write(`${row}\n`);
   *   await this.flush();
   * }
   * ```
   */
  flush(): Promise<void> {
    if (this.#finished) throw new Error("Cannot flush: the response is already finished");
    const connection = this.request.connection;
    const body = this.#takeBody();
    if (connection.closed) {
      this.#headersWritten = true;
      return RESOLVED;
    }
    if (!this.#headersWritten) {
      connection.writeHeaders(this.#status, this.#headers ?? DEFAULT_HEADERS_VIEW, body, this.#reason);
      this.#headersWritten = true;
      return connection.write(EMPTY_BYTES);
    }
    return connection.write(body ?? EMPTY_BYTES);
  }

  /**
   * Ends the response, with `chunk` written first if given. Without an
   * earlier flush: for a 200 answer to GET or HEAD an `Etag` is computed
   * (`computeEtag`) and a matching `If-None-Match` turns the answer into 304;
   * a 204 or 304 must have no body and loses its representation headers;
   * `Content-Length` is set. Then `onFinish` runs. The promise resolves when
   * the response is handed to the connection.
   *
   * @example
   * ```ts
   * this.finish({ ok: true });
   * ```
   */
  finish(chunk?: Chunk): Promise<void> {
    if (this.#finished) throw new Error("Cannot finish: the response is already finished");
    if (chunk !== undefined) this.write(chunk);
    const connection = this.request.connection;
    let done = RESOLVED;
    if (!this.#headersWritten) {
      if (this.#status === 200) {
        const method = this.request.method;
        if ((method === "GET" || method === "HEAD") && this.#indexOf("etag") === -1) {
          if (this.#etagNotModified()) {
            this.#chunk = null;
            this.#chunks = null;
            this.#status = 304;
            this.#reason = undefined;
          }
        }
      }
      const status = this.#status;
      if (status === 204 || status === 304 || (status >= 100 && status < 200)) {
        if (this.#chunk !== null) throw new Error(`Cannot send a body with status ${status}`);
        this.#clearRepresentationHeaders(status !== 304);
      }
      const body = this.#takeBody();
      // The server adds Content-Length (the body's length) unless one was set.
      if (!connection.closed) done = connection.respond(status, this.#headers ?? DEFAULT_HEADERS_VIEW, body, this.#reason);
      this.#headersWritten = true;
    } else {
      const body = this.#takeBody();
      if (!connection.closed) {
        if (body !== undefined) void connection.write(body);
        done = connection.finish();
      }
    }
    this.#finished = true;
    this.application.logRequest(this);
    this.onFinish();
    return done;
  }

  /**
   * Redirects to `url`: 302, or 301 when `permanent`, or the given 3xx
   * `status`; then finishes. Characters outside ASCII in the URL are
   * percent-encoded.
   *
   * @example
   * ```ts
   * this.redirect("/login?next=" + encodeURIComponent(this.request.uri));
   * ```
   */
  redirect(url: string, permanent = false, status?: number): void {
    if (this.#headersWritten) throw new Error("Cannot redirect: the headers were already sent");
    let code: number;
    if (status === undefined) code = permanent ? 301 : 302;
    else if (Number.isInteger(status) && status >= 300 && status <= 399) code = status;
    else throw new RangeError(`Cannot redirect with status ${String(status)}: it must be from 300 to 399`);
    this.setStatus(code);
    this.setHeader("Location", /[^\x00-\x7f]/.test(url) ? url.replace(/[^\x00-\x7f]+/g, encodeURI) : url);
    this.finish();
  }

  // ----------------------------------------------------------------- errors

  /**
   * Sends an error response: clears what was written (not flushed), sets
   * the status and lets `writeError` make the page. If the head was already
   * sent, it can only log and end the response.
   *
   * @example
   * ```ts
   * if (!allowed) { this.sendError(403); return; }
   * ```
   */
  sendError(statusCode = 500, options: ErrorOptions = {}): void {
    if (this.#headersWritten) {
      this.application.logger.error(`Cannot send error response ${statusCode} for ${this.requestSummary()}: the headers were already sent`);
      if (!this.#finished) {
        try {
          void this.finish();
        } catch (err) {
          this.application.logger.error("Failed to flush partial response", err);
        }
      }
      return;
    }
    this.clear();
    const error = options.error;
    let reason = options.reason;
    if (error instanceof HTTPError && error.reason !== undefined) reason = error.reason;
    this.setStatus(statusCode, reason);
    // RFC 9110 §15.5.6: a 405 MUST list the methods the resource allows (an empty list is valid).
    if (statusCode === 405) this.setHeader("Allow", this.#allowedMethods());
    try {
      this.writeError(statusCode, options);
    } catch (err) {
      this.application.logger.error("Uncaught exception in writeError", err);
    }
    if (!this.#finished) void this.finish();
  }

  /**
   * Writes the error page; override it for custom pages. By default:
   * `<html><title>404: Not Found</title><body>404: Not Found</body></html>`,
   * or, when the `serveTraceback` setting is on (it is with `debug`) and an
   * error was thrown, its stack as text/plain.
   *
   * @example
   * ```ts
   * override writeError(status: number) {
   *   this.finish({ error: status, message: this.reason });
   * }
   * ```
   */
  writeError(statusCode: number, options: ErrorOptions = {}): void {
    if (this.settings.serveTraceback && options.error !== undefined) {
      this.setHeader("Content-Type", "text/plain; charset=UTF-8");
      const error = options.error;
      this.finish(error instanceof Error && error.stack ? `${error.stack}\n` : `${String(error)}\n`);
      return;
    }
    const message = this.reason;
    this.finish(`<html><title>${statusCode}: ${message}</title><body>${statusCode}: ${message}</body></html>`);
  }

  /**
   * Logs an error thrown by the handler: an {@link HTTPError} as a warning
   * (only if it has a log message), anything else as an error with its stack.
   *
   * @example
   * ```ts
   * override logException(error: unknown) { sentry.capture(error); super.logException(error); }
   * ```
   */
  logException(error: unknown): void {
    if (error instanceof HTTPError) {
      if (error.logMessage) {
        this.application.logger.warn(`${error.statusCode} ${this.requestSummary()}: ${error.logMessage}`);
      }
    } else {
      this.application.logger.error(`Uncaught exception ${this.requestSummary()}`, error);
    }
  }

  /** `GET /path?q (1.2.3.4)`, for logs. @example `this.requestSummary() // "GET / (127.0.0.1)"` */
  requestSummary(): string {
    return `${this.request.method} ${this.request.uri} (${this.request.remoteIp})`;
  }

  // ------------------------------------------------------------------- etag

  /**
   * The entity-tag of the response, from the body written so far. Tornado
   * uses a SHA-1 of the body; typhoon does for bodies over 1 KiB and, for
   * smaller ASCII or binary bodies, a 64-bit hash computed in JavaScript
   * with the length (`"12-1f0e..."`), which is far cheaper per request. Return
   * null to send no `Etag`.
   *
   * @example
   * ```ts
   * override computeEtag() { return `"${this.article.version}"`; }
   * ```
   */
  computeEtag(): string | null {
    const first = this.#chunk;
    if (first === null) return EMPTY_ETAG;
    const rest = this.#chunks;
    if (rest === null) {
      if (first.length <= SMALL_BODY) {
        // Handlers often answer the same short text again and again.
        if (typeof first === "string" && first === lastEtagBody) return lastEtag;
        const tag = smallEtag(first);
        if (tag !== null) {
          if (typeof first === "string") {
            lastEtagBody = first;
            lastEtag = tag;
          }
          return tag;
        }
      }
      return `"${sha1Hex(first)}"`;
    }
    const hash = crypto.createHash("sha1");
    hash.update(first);
    for (const part of rest) hash.update(part);
    return `"${hash.digest("hex")}"`;
  }

  /**
   * Sets `Etag` from `computeEtag()` (unless it returns null). Called by
   * `finish` for 200 answers to GET and HEAD.
   *
   * @example
   * ```ts
   * this.setEtagHeader();
   * if (this.checkEtagHeader()) { this.setStatus(304); return; }
   * ```
   */
  setEtagHeader(): void {
    const etag = this.computeEtag();
    if (etag !== null) this.#putEtag(etag);
  }

  /**
   * Sets `Etag`: added to headers that have none (the engine checks the
   * value when it sends it; no need to do it twice), else replaced.
   */
  #putEtag(etag: string): void {
    if (this.#indexOf("etag") !== -1) this.setHeader("Etag", etag);
    else if (this.#headers === null) this.#headers = ["Server", SERVER, "Content-Type", HTML, "Etag", etag];
    else this.#headers.push("Etag", etag);
  }

  /**
   * What `finish` does for a 200 answer to GET or HEAD without an `Etag`:
   * `setEtagHeader`, then true if `checkEtagHeader` says the client has it.
   * When neither is overridden, the same in one step (the headers are
   * searched once, not three times).
   */
  #etagNotModified(): boolean {
    if (this.setEtagHeader !== BASE_SET_ETAG_HEADER || this.checkEtagHeader !== BASE_CHECK_ETAG_HEADER) {
      this.setEtagHeader();
      return this.checkEtagHeader();
    }
    const etag = this.computeEtag();
    if (etag === null) return false;
    // An overridden computeEtag may have set one itself: #putEtag replaces it.
    this.#putEtag(etag);
    return etagMatches(etag, this.request.header("if-none-match"));
  }

  /**
   * True if the request's `If-None-Match` matches the response's `Etag`
   * (weak comparison, RFC 9110 §13.1.2), so that a 304 can be sent.
   *
   * @example
   * ```ts
   * this.setHeader("Etag", '"v7"');
   * if (this.checkEtagHeader()) { this.setStatus(304); return; }
   * ```
   */
  checkEtagHeader(): boolean {
    const i = this.#indexOf("etag");
    if (i === -1) return false;
    return etagMatches(this.#headers![i + 1]!, this.request.header("if-none-match"));
  }

  // -------------------------------------------------------------- arguments

  /**
   * The last value of the query or body argument `name`, stripped of
   * surrounding whitespace (unless `strip` is false). Without a default, a
   * missing argument throws {@link MissingArgumentError} (a 400).
   *
   * @example
   * ```ts
   * const q = this.getArgument("q");             // required
   * const page = this.getArgument("page", "1");  // optional
   * ```
   */
  getArgument(name: string): string;
  getArgument<T>(name: string, defaultValue: T, strip?: boolean): string | T;
  getArgument(name: string, ...rest: unknown[]): unknown {
    return pickLast(name, this.getArguments(name, rest.length > 1 ? rest[1] !== false : true), rest);
  }

  /**
   * Every value of the query and body argument `name` (query first).
   *
   * @example
   * ```ts
   * this.getArguments("tag") // ["a", "b"] for ?tag=a&tag=b
   * ```
   */
  getArguments(name: string, strip = true): string[] {
    const query = this.#query()[name];
    const body = this.#body()[name];
    const values = query === undefined ? body ?? [] : body === undefined ? query : query.concat(body);
    return cleanValues(values, strip);
  }

  /**
   * The last value of the query argument `name`; see {@link getArgument}.
   *
   * @example
   * ```ts
   * this.getQueryArgument("page", "1")
   * ```
   */
  getQueryArgument(name: string): string;
  getQueryArgument<T>(name: string, defaultValue: T, strip?: boolean): string | T;
  getQueryArgument(name: string, ...rest: unknown[]): unknown {
    return pickLast(name, this.getQueryArguments(name, rest.length > 1 ? rest[1] !== false : true), rest);
  }

  /** Every value of the query argument `name`. @example `this.getQueryArguments("id") // ["1", "2"]` */
  getQueryArguments(name: string, strip = true): string[] {
    return cleanValues(this.#query()[name] ?? [], strip);
  }

  /**
   * The last value of the body argument `name` (from an
   * `application/x-www-form-urlencoded` body); see {@link getArgument}.
   *
   * @example
   * ```ts
   * const password = this.getBodyArgument("password", "", false);
   * ```
   */
  getBodyArgument(name: string): string;
  getBodyArgument<T>(name: string, defaultValue: T, strip?: boolean): string | T;
  getBodyArgument(name: string, ...rest: unknown[]): unknown {
    return pickLast(name, this.getBodyArguments(name, rest.length > 1 ? rest[1] !== false : true), rest);
  }

  /** Every value of the body argument `name`. @example `this.getBodyArguments("item") // ["a", "b"]` */
  getBodyArguments(name: string, strip = true): string[] {
    return cleanValues(this.#body()[name] ?? [], strip);
  }

  /**
   * Decodes one path argument (a group of the route's pattern): percent
   * escapes as UTF-8, `+` kept. Bytes that are not UTF-8 answer 400. Override
   * it to decode differently.
   *
   * @example
   * ```ts
   * override decodeArgument(value: string) { return value; } // raw, undecoded
   * ```
   */
  decodeArgument(value: string, name?: string): string {
    const decoded = urlUnquote(value);
    if (decoded === null) throw new HTTPError(400, `Invalid unicode in ${name ?? "url"}: ${JSON.stringify(value.slice(0, 40))}`);
    return decoded;
  }

  #query(): Record<string, string[]> {
    return (this.#queryArguments ??= parseQueryString(this.request.query));
  }

  #body(): Record<string, string[]> {
    if (this.#bodyArguments !== null) return this.#bodyArguments;
    let out = NO_ARGUMENTS as Record<string, string[]>;
    const request = this.request;
    if (request.body.byteLength > 0) {
      const type = request.headers.get("Content-Type");
      if (type !== undefined && type.trimStart().toLowerCase().startsWith("application/x-www-form-urlencoded")) {
        const encoding = request.headers.get("Content-Encoding");
        if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity") {
          this.application.logger.warn(`Unsupported Content-Encoding: ${encoding}`);
        } else {
          out = parseQueryString(utf8Decode(request.body));
        }
      }
    }
    return (this.#bodyArguments = out);
  }

  // ------------------------------------------------------------- internals

  /** @internal Runs the lifecycle; returns a promise only if something was asynchronous. */
  [EXECUTE](match: RegExpExecArray | null, named: boolean): void | Promise<void> {
    try {
      this.setDefaultHeaders();
      this.initialize(this.#initArgs);
      const method = this.request.method;
      if (!(this.constructor as typeof RequestHandler).SUPPORTED_METHODS.includes(method)) throw new HTTPError(405);
      if (match !== null && match.length > 1) this.#decodePathArgs(match, named);
      const prepared = this.prepare();
      if (isPromiseLike(prepared)) return this.#continue(prepared, true);
      if (this.#finished) return;
      const result = this.#callMethod();
      if (isPromiseLike(result)) return this.#continue(result, false);
      if (this.autoFinish && !this.#finished) void this.finish();
    } catch (err) {
      if (this.#handleRequestException(err)) throw err;
    }
  }

  async #continue(pending: PromiseLike<unknown>, afterPrepare: boolean): Promise<void> {
    try {
      await pending;
      if (afterPrepare) {
        if (this.#finished) return;
        const result = this.#callMethod();
        if (isPromiseLike(result)) await result;
      }
      if (this.autoFinish && !this.#finished) void this.finish();
    } catch (err) {
      if (this.#handleRequestException(err)) throw err;
    }
  }

  #decodePathArgs(match: RegExpExecArray, named: boolean): void {
    const args: Array<string | undefined> = [];
    for (let i = 1; i < match.length; i++) {
      const raw = match[i];
      args.push(raw === undefined ? undefined : this.decodeArgument(raw));
    }
    this.pathArgs = args;
    const groups = match.groups;
    if (named && groups !== undefined) {
      const kwargs: Record<string, string | undefined> = {};
      for (const key of Object.keys(groups)) {
        const raw = groups[key];
        kwargs[key] = raw === undefined ? undefined : this.decodeArgument(raw, key);
      }
      this.pathKwargs = kwargs;
    }
  }

  #callMethod(): unknown {
    const fn = (this as unknown as Record<string, unknown>)[methodName(this.request.method)];
    if (typeof fn !== "function") throw new HTTPError(405);
    const args = this.pathArgs;
    return args.length === 0 ? fn.call(this) : fn.apply(this, args);
  }

  /**
   * Tornado's `_handle_request_exception`. Returns true when the error must
   * go to the server: the response had started (the server logs the error
   * and closes the connection, so that a truncated body never looks
   * complete), or no error page could be sent.
   */
  #handleRequestException(err: unknown): boolean {
    if (err instanceof Finish) {
      if (!this.#finished) {
        try {
          void this.finish(err.chunk);
        } catch (e) {
          this.application.logger.error("Exception in exception handler", e);
        }
      }
      return !this.#finished;
    }
    if (this.#headersWritten && !this.#finished) {
      this.#finished = true;
      return true;
    }
    try {
      this.logException(err);
    } catch (e) {
      this.application.logger.error("Error in exception logger", e);
    }
    if (this.#finished) return false;
    try {
      this.sendError(err instanceof HTTPError ? err.statusCode : 500, { error: err });
    } catch (e) {
      this.application.logger.error("Exception in exception handler", e);
    }
    return !this.#finished;
  }

  /** The methods this handler defines, for `Allow`. */
  #allowedMethods(): string {
    const self = this as unknown as Record<string, unknown>;
    const supported = (this.constructor as typeof RequestHandler).SUPPORTED_METHODS;
    return supported.filter((m) => typeof self[methodName(m)] === "function").join(", ");
  }

  #indexOf(lower: string): number {
    const headers = this.#headers ?? DEFAULT_HEADERS_VIEW;
    for (let i = 0; i < headers.length; i += 2) {
      const n = headers[i]!;
      if (nameIs(n, lower)) return i;
    }
    return -1;
  }

  /** RFC 9110 §15.4.5: a 304 carries no representation metadata; a 204 or 1xx no framing either. */
  #clearRepresentationHeaders(framing: boolean): void {
    this.clearHeader("Content-Encoding");
    this.clearHeader("Content-Language");
    this.clearHeader("Content-Type");
    if (framing) {
      this.clearHeader("Content-Length");
      this.clearHeader("Transfer-Encoding");
    }
  }

  /** Takes the unflushed body: one chunk as it is, several joined. */
  #takeBody(): string | Uint8Array | undefined {
    const first = this.#chunk;
    if (first === null) return undefined;
    this.#chunk = null;
    const rest = this.#chunks;
    if (rest === null) return first;
    this.#chunks = null;
    let allStrings = typeof first === "string";
    for (const part of rest) if (typeof part !== "string") allStrings = false;
    if (allStrings) return (first as string) + rest.join("");
    const buffers: Uint8Array[] = [typeof first === "string" ? Buffer.from(first, "utf8") : first];
    for (const part of rest) buffers.push(typeof part === "string" ? Buffer.from(part, "utf8") : part);
    return Buffer.concat(buffers);
  }
}

/**
 * Answers every request with an error status (Tornado's `ErrorHandler`); the
 * application uses it with 404 for paths that no route matches.
 *
 * @example
 * ```ts
 * new Application([["/gone", ErrorHandler, { statusCode: 410 }]]);
 * ```
 */
export class ErrorHandler extends RequestHandler {
  /** Takes `{ statusCode }`. @example `{ statusCode: 410 }` */
  override initialize(initArgs: { statusCode: number }): void {
    this.setStatus(initArgs.statusCode);
  }

  /** Answers every method with the status. @example `throw new HTTPError(410)` */
  override prepare(): void {
    throw new HTTPError(this.getStatus());
  }
}

/**
 * Redirects GET requests to a URL (Tornado's `RedirectHandler`). `{0}`,
 * `{1}`, ... in the URL are replaced by the route's groups; the query string
 * is carried over. Permanent (301) unless `permanent: false`.
 *
 * @example
 * ```ts
 * new Application([["/old/(.*)", RedirectHandler, { url: "/new/{0}" }]]);
 * ```
 */
export class RedirectHandler extends RequestHandler {
  #url = "";
  #permanent = true;

  /** Takes `{ url, permanent? }`. @example `{ url: "/new/{0}", permanent: false }` */
  override initialize(initArgs: { url: string; permanent?: boolean }): void {
    this.#url = initArgs.url;
    this.#permanent = initArgs.permanent ?? true;
  }

  /** Redirects, with the groups in place of `{0}`, `{1}`, ... @example `GET /old/a` → `301 Location: /new/a` */
  get(...args: Array<string | undefined>): void {
    let to = this.#url.replace(/\{(\d+)\}/g, (_, i: string) => args[Number(i)] ?? "");
    const query = this.request.query;
    if (query !== "") to += (to.includes("?") ? "&" : "?") + query;
    this.redirect(to, this.#permanent);
  }
}

// ------------------------------------------------------------------ helpers

function methodName(method: string): string {
  switch (method) {
    case "GET":
      return "get";
    case "POST":
      return "post";
    case "HEAD":
      return "head";
    case "PUT":
      return "put";
    case "DELETE":
      return "delete";
    case "PATCH":
      return "patch";
    case "OPTIONS":
      return "options";
    default:
      return method.toLowerCase();
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return value !== undefined && value !== null && typeof (value as PromiseLike<unknown>).then === "function";
}

function sameName(name: string, given: string, lower: string): boolean {
  return name === given || nameIs(name, lower);
}

/** Lowercased header names, memoized (a handler sets the same few again and again). */
const LOWER_NAMES = new Map<string, string>();
function lowerName(name: string): string {
  let lower = LOWER_NAMES.get(name);
  if (lower === undefined) {
    lower = name.toLowerCase();
    if (LOWER_NAMES.size < 1024) LOWER_NAMES.set(name, lower);
  }
  return lower;
}

/** The last header name and string value that passed the checks (handlers set the same ones again and again). */
let checkedName: string | null = null;
let checkedValue: string | null = null;

function headerValue(name: string, value: HeaderValue): string {
  let v: string;
  if (typeof value === "string") {
    if (value === checkedValue && name === checkedName) return value;
    v = value;
  } else if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`Cannot set header ${name}: ${value} is not a finite number`);
    return String(value);
  } else if (value instanceof Date) {
    return value.toUTCString();
  } else {
    throw new TypeError(`Cannot set header ${name}: ${describe(value)} is not a string, number or Date`);
  }
  if (!isValidHeaderName(name)) throw new TypeError(`Cannot set header ${JSON.stringify(name)}: the name is not a token`);
  if (!isValidHeaderValue(v)) {
    throw new TypeError(
      `Cannot set header ${name}: the value ${JSON.stringify(v)} has a character that is not allowed (a control character, or one above U+00FF)`,
    );
  }
  checkedName = name;
  checkedValue = v;
  return v;
}

/**
 * A quoted tag `"<length>-<16 hex digits>"` from two 32-bit FNV-1a lanes with
 * different primes, mixed at the end (murmur3's finalizer). Null for a string
 * with non-ASCII characters (its UTF-8 bytes are hashed with SHA-1 instead,
 * so that a tag depends on the bytes sent, not on how they were written).
 */
function smallEtag(data: string | Uint8Array): string | null {
  let h1 = 0x811c9dc5 | 0;
  let h2 = 0x050c5d1f | 0;
  const n = data.length;
  if (typeof data === "string") {
    for (let i = 0; i < n; i++) {
      const c = data.charCodeAt(i);
      if (c > 0x7f) return null;
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    }
  } else {
    for (let i = 0; i < n; i++) {
      const c = data[i]!;
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    }
  }
  h1 = fmix32(h1 ^ n);
  h2 = fmix32(h2 ^ h1);
  h1 = fmix32(h1 ^ h2);
  return `"${n}-${hex16(h1, h2)}"`;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Char codes of the hex digits (`Number#toString(16)` is slow in V8; one fromCharCode builds a flat string). */
const HEX_CODES: readonly number[] = [48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 97, 98, 99, 100, 101, 102];

function hex16(a: number, b: number): string {
  const c = HEX_CODES;
  return String.fromCharCode(
    c[a >>> 28]!, c[(a >>> 24) & 15]!, c[(a >>> 20) & 15]!, c[(a >>> 16) & 15]!,
    c[(a >>> 12) & 15]!, c[(a >>> 8) & 15]!, c[(a >>> 4) & 15]!, c[a & 15]!,
    c[b >>> 28]!, c[(b >>> 24) & 15]!, c[(b >>> 20) & 15]!, c[(b >>> 16) & 15]!,
    c[(b >>> 12) & 15]!, c[(b >>> 8) & 15]!, c[(b >>> 4) & 15]!, c[b & 15]!,
  );
}

const EMPTY_ETAG = smallEtag("")!;
/** The last short string body and its tag (a one-entry cache). */
let lastEtagBody = "";
let lastEtag = EMPTY_ETAG;

/** RequestHandler's own methods, to see whether a subclass overrides them. */
const BASE_SET_ETAG_HEADER = RequestHandler.prototype.setEtagHeader;
const BASE_CHECK_ETAG_HEADER = RequestHandler.prototype.checkEtagHeader;

/** True if `header` (If-None-Match) lists `computed` or `*` (weak comparison, RFC 9110 §13.1.2). */
function etagMatches(computed: string, header: string | undefined): boolean {
  if (computed === "" || header === undefined) return false;
  const etags = header.match(ETAG_LIST);
  if (etags === null) return false;
  if (etags[0] === "*") return true;
  const target = weak(computed);
  for (const etag of etags) if (weak(etag) === target) return true;
  return false;
}

function weak(etag: string): string {
  return etag.startsWith("W/") ? etag.slice(2) : etag;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Tornado's `json_encode`: JSON with `</` escaped, so that it can sit in a `<script>`. */
function jsonEncode(value: Record<string, unknown>): string {
  const text = JSON.stringify(value);
  return text.includes("</") ? text.replace(/<\//g, "<\\/") : text;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return `a ${(value as object).constructor?.name ?? "object"}`;
  return `a ${typeof value}`;
}

function cleanValues(values: readonly string[], strip: boolean): string[] {
  const out: string[] = [];
  for (let v of values) {
    if (CONTROL_CHAR.test(v)) v = v.replace(CONTROL_CHARS, " ");
    out.push(strip ? v.trim() : v);
  }
  return out;
}

function pickLast(name: string, values: string[], rest: unknown[]): unknown {
  if (values.length > 0) return values[values.length - 1];
  if (rest.length === 0) throw new MissingArgumentError(name);
  return rest[0];
}
