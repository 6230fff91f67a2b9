/**
 * The exceptions of the web layer, after `tornado.web`: {@link HTTPError}
 * (turns into an error response), {@link Finish} (ends the request without
 * an error page) and {@link MissingArgumentError} (a 400 for a required
 * argument that is absent).
 *
 * @module
 */
import { reasonPhrase } from "../protocols/http1";

/** Options of {@link HTTPError}. */
export interface HTTPErrorOptions {
  /**
   * The reason phrase of the response's status line. Normally derived from
   * the status; give it for a non-standard status.
   */
  reason?: string;
  cause?: unknown;
}

/**
 * An error that turns into an HTTP error response (Tornado's `HTTPError`).
 * Throw it from a handler method, `prepare` or `initialize`: the handler's
 * `sendError(status)` answers it, and `writeError` makes the page.
 *
 * `logMessage` goes to the log (as a warning) and is never shown to the
 * client.
 *
 * @example
 * ```ts
 * class ItemHandler extends RequestHandler {
 *   get(id: string) {
 *     const item = items.get(id);
 *     if (item === undefined) throw new HTTPError(404, `No item ${id}`);
 *     this.write(item);
 *   }
 * }
 * ```
 */
export class HTTPError extends Error {
  override name = "HTTPError";
  /** The HTTP status of the response. */
  readonly statusCode: number;
  /** What the log says about this error (not sent to the client). */
  readonly logMessage: string | undefined;
  /** The reason phrase to send, if it is not the standard one. */
  readonly reason: string | undefined;

  constructor(statusCode = 500, logMessage?: string, options: HTTPErrorOptions = {}) {
    const reason = options.reason;
    const head = `HTTP ${statusCode}: ${reason ?? reasonPhrase(statusCode)}`;
    super(logMessage ? `${head} (${logMessage})` : head, options.cause === undefined ? undefined : { cause: options.cause });
    this.statusCode = statusCode;
    this.logMessage = logMessage;
    this.reason = reason;
  }
}

/**
 * Ends the request without an error response (Tornado's `Finish`). The
 * response written so far is sent as it is (with `chunk` added, if given),
 * and `writeError` is not called.
 *
 * @example
 * ```ts
 * override prepare() {
 *   if (!this.request.headers.has("Authorization")) {
 *     this.setStatus(401);
 *     this.setHeader("WWW-Authenticate", 'Basic realm="app"');
 *     throw new Finish();
 *   }
 * }
 * ```
 */
export class Finish extends Error {
  override name = "Finish";
  /** Passed to `finish()`, if given. */
  readonly chunk: string | Uint8Array | Record<string, unknown> | undefined;

  constructor(chunk?: string | Uint8Array | Record<string, unknown>) {
    super("Finish");
    this.chunk = chunk;
  }
}

/**
 * A required argument is missing: `getArgument(name)` without a default
 * throws it, and it answers 400 (Tornado's `MissingArgumentError`).
 *
 * @example
 * ```ts
 * try { this.getArgument("q") } catch (e) {
 *   if (e instanceof MissingArgumentError) console.log(e.argName); // "q"
 * }
 * ```
 */
export class MissingArgumentError extends HTTPError {
  override name = "MissingArgumentError";
  /** The name of the missing argument. */
  readonly argName: string;

  constructor(argName: string) {
    super(400, `Missing argument ${argName}`);
    this.argName = argName;
  }
}
