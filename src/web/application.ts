/**
 * `Application`, after `tornado.web.Application`: a list of routes and the
 * settings they share, served by an {@link HTTPServer}.
 *
 * How a request is routed: the application is the server's
 * `HTTPServerConnectionDelegate`. For each request head it matches the path
 * once (a `Map` lookup for literal paths, then the regex rules in order; see
 * `routing.ts`) and returns a small delegate that buffers the body. When the
 * body is complete the delegate builds the handler and runs it; a handler
 * that does not return a promise is run to the end synchronously.
 *
 * @module
 */
import { concatBytes } from "../core";
import { consoleLogger, type Logger } from "../core";
import {
  HTTPServer,
  type HTTPMessageDelegate,
  type HTTPServerConnectionDelegate,
  type HTTPServerOptions,
  type ListenTarget,
} from "../server";
import type { HTTPServerRequest } from "../server";
import { ErrorHandler, EXECUTE, RequestHandler } from "./request-handler";
import { toURLSpec, type InitArgs, type RequestHandlerClass, type Route, type URLSpec } from "./routing";

/**
 * Settings of an {@link Application} (Tornado's `**settings`). Any other key
 * may be set and read back by handlers through `this.settings`.
 */
export interface ApplicationSettings {
  /**
   * Development mode. For now it turns `serveTraceback` on (error pages show
   * the stack of the error).
   * @default false
   */
  debug?: boolean;
  /**
   * Error pages of thrown errors show their stack, as text/plain.
   * @default the value of `debug`
   */
  serveTraceback?: boolean;
  /** The handler for paths that no route matches. @default ErrorHandler with 404 */
  defaultHandlerClass?: RequestHandlerClass;
  /** `initialize` arguments of `defaultHandlerClass`. @default {} */
  defaultHandlerArgs?: InitArgs;
  /** Where requests and errors are logged. @default consoleLogger() */
  logger?: Logger;
  /**
   * Logs each finished request instead of `Application.logRequest`
   * (Tornado's `log_function`).
   */
  logFunction?: (handler: RequestHandler) => void;
  /**
   * Log requests answered below 400 (at `info`; Tornado's access log). Off by
   * default, which saves building a line per request; 4xx answers are
   * always logged as warnings and 5xx as errors.
   * @default false
   */
  accessLog?: boolean;
  [setting: string]: unknown;
}

/** Options of {@link Application.listen}: the server's options and a host. */
export interface ApplicationListenOptions extends HTTPServerOptions {
  /** The address to bind. @default the transport's (Node: every interface) */
  host?: string;
}

const NOT_FOUND_ARGS: InitArgs = Object.freeze({ statusCode: 404 });
const NO_INIT_ARGS: InitArgs = Object.freeze({});

/**
 * A web application: routes, settings, and the server delegate that runs
 * them (Tornado's `Application`).
 *
 * Routes are `[pattern, Handler, initArgs?, name?]` tuples or `url(...)`
 * specs, tried in order; the first whose pattern matches the whole path
 * wins. The pattern's groups are the handler method's arguments.
 *
 * @example
 * ```ts
 * class MainHandler extends RequestHandler {
 *   get() { this.write("Hello, world"); }
 * }
 *
 * const app = new Application([["/", MainHandler]]);
 * await app.listen(8888);
 * ```
 */
export class Application implements HTTPServerConnectionDelegate {
  /** The settings, with defaults filled in. */
  readonly settings: ApplicationSettings;
  /** Where requests and errors are logged. */
  readonly logger: Logger;
  readonly #specs: URLSpec[] = [];
  /** Literal path -> index in #specs of the first literal rule for it. */
  readonly #literals = new Map<string, number>();
  /** Regex rules in order, and their indices in #specs. */
  readonly #patterns: URLSpec[] = [];
  readonly #patternIndices: number[] = [];
  readonly #named = new Map<string, URLSpec>();

  constructor(handlers: readonly Route[] = [], settings: ApplicationSettings = {}) {
    this.settings = { ...settings };
    if (this.settings.debug) this.settings.serveTraceback ??= true;
    this.logger = settings.logger ?? consoleLogger();
    if (settings.defaultHandlerClass !== undefined) checkHandlerClass(settings.defaultHandlerClass, "defaultHandlerClass");
    this.addRules(handlers);
  }

  /**
   * Appends routes (after the existing ones).
   *
   * @example
   * ```ts
   * app.addRules([["/health", HealthHandler]]);
   * ```
   */
  addRules(handlers: readonly Route[]): void {
    for (const route of handlers) {
      const spec = toURLSpec(route);
      checkHandlerClass(spec.handlerClass, `the route ${JSON.stringify(spec.pattern)}`);
      const index = this.#specs.length;
      this.#specs.push(spec);
      if (spec.literal !== null) {
        if (!this.#literals.has(spec.literal)) this.#literals.set(spec.literal, index);
      } else {
        this.#patterns.push(spec);
        this.#patternIndices.push(index);
      }
      if (spec.name !== undefined) {
        if (this.#named.has(spec.name)) this.logger.warn(`Multiple handlers named ${spec.name}; replacing previous value`);
        this.#named.set(spec.name, spec);
      }
    }
  }

  /**
   * Makes the delegate that serves one request (the server calls it when a
   * request head arrives).
   *
   * @example
   * ```ts
   * const server = new HTTPServer(app); // calls app.startRequest(request) per request
   * ```
   */
  startRequest(request: HTTPServerRequest): HTTPMessageDelegate {
    const path = request.path;
    const literal = this.#literals.get(path);
    const limit = literal === undefined ? Infinity : literal;
    const patterns = this.#patterns;
    const indices = this.#patternIndices;
    for (let i = 0; i < patterns.length && indices[i]! < limit; i++) {
      const spec = patterns[i]!;
      const match = spec.regex.exec(path);
      if (match !== null) return new HandlerDelegate(this, request, spec.handlerClass, spec.initArgs, match, spec.namedGroups);
    }
    if (literal !== undefined) {
      const spec = this.#specs[literal]!;
      return new HandlerDelegate(this, request, spec.handlerClass, spec.initArgs, null, false);
    }
    const fallback = this.settings.defaultHandlerClass;
    if (fallback !== undefined) {
      return new HandlerDelegate(this, request, fallback, this.settings.defaultHandlerArgs ?? NO_INIT_ARGS, null, false);
    }
    return new HandlerDelegate(this, request, ErrorHandler, NOT_FOUND_ARGS, null, false);
  }

  /**
   * The path of the route named `name`, with `args` (percent-encoded) in
   * place of its groups. Throws if there is no such route.
   *
   * @example
   * ```ts
   * const app = new Application([url("/user/([0-9]+)", UserHandler, { name: "user" })]);
   * app.reverseUrl("user", 42); // "/user/42"
   * ```
   */
  reverseUrl(name: string, ...args: Array<string | number | boolean>): string {
    const spec = this.#named.get(name);
    if (spec === undefined) throw new Error(`Cannot reverse the url ${JSON.stringify(name)}: no route has this name`);
    return spec.reverse(...args);
  }

  /**
   * Starts an {@link HTTPServer} for this application and resolves with it
   * once it listens. `options` go to the server (transport, xheaders,
   * limits, timeouts, ...); its logger defaults to the application's.
   *
   * @example
   * ```ts
   * const server = await app.listen(8888, "127.0.0.1");
   * const other = await app.listen(0, { host: "::1", xheaders: true });
   * console.log(other.address?.port);
   * await server.close();
   * ```
   */
  async listen(target: ListenTarget, hostOrOptions?: string | ApplicationListenOptions): Promise<HTTPServer> {
    const { host, ...options }: ApplicationListenOptions =
      typeof hostOrOptions === "string" ? { host: hostOrOptions } : { ...hostOrOptions };
    options.logger ??= this.logger;
    options.debug ??= this.settings.debug === true;
    const server = new HTTPServer(this, options);
    await server.listen(target, host);
    return server;
  }

  /**
   * Logs a finished request (Tornado's `log_request`): through the
   * `logFunction` setting if there is one; else 5xx as errors, 4xx as
   * warnings, the rest at `info` when the `accessLog` setting is on.
   *
   * @example
   * ```ts
   * new Application(routes, { logFunction: (h) => console.log(h.getStatus(), h.request.uri) });
   * ```
   */
  logRequest(handler: RequestHandler): void {
    const logFunction = this.settings.logFunction;
    if (logFunction !== undefined) {
      logFunction(handler);
      return;
    }
    const status = handler.getStatus();
    if (status < 400 && this.settings.accessLog !== true) return;
    const line = `${status} ${handler.requestSummary()} ${(handler.request.requestTime() * 1000).toFixed(2)}ms`;
    if (status < 400) this.logger.info(line);
    else if (status < 500) this.logger.warn(line);
    else this.logger.error(line);
  }
}

function checkHandlerClass(handlerClass: RequestHandlerClass, what: string): void {
  if (!(handlerClass.prototype instanceof RequestHandler) && handlerClass !== (RequestHandler as RequestHandlerClass)) {
    throw new TypeError(`Cannot use ${handlerClass.name || "this class"} for ${what}: it does not extend RequestHandler`);
  }
}

/**
 * Serves one request (Tornado's `_HandlerDelegate`): buffers the body, then
 * builds and runs the handler.
 */
class HandlerDelegate implements HTTPMessageDelegate {
  readonly application: Application;
  readonly request: HTTPServerRequest;
  readonly handlerClass: RequestHandlerClass;
  readonly initArgs: InitArgs;
  readonly match: RegExpExecArray | null;
  readonly named: boolean;
  chunks: Uint8Array[] | null = null;
  length = 0;
  handler: RequestHandler | null = null;

  constructor(
    application: Application,
    request: HTTPServerRequest,
    handlerClass: RequestHandlerClass,
    initArgs: InitArgs,
    match: RegExpExecArray | null,
    named: boolean,
  ) {
    this.application = application;
    this.request = request;
    this.handlerClass = handlerClass;
    this.initArgs = initArgs;
    this.match = match;
    this.named = named;
  }

  headersReceived(): void {}

  dataReceived(chunk: Uint8Array): void {
    if (this.chunks === null) this.chunks = [chunk];
    else this.chunks.push(chunk);
    this.length += chunk.byteLength;
  }

  finish(): void | Promise<void> {
    if (this.chunks !== null) {
      this.request.body = concatBytes(this.chunks, this.length);
      this.chunks = null;
    }
    const handler = new this.handlerClass(this.application, this.request, this.initArgs);
    this.handler = handler;
    return handler[EXECUTE](this.match, this.named);
  }

  onConnectionClose(): void {
    this.chunks = null;
    const handler = this.handler;
    if (handler !== null && !handler.finished) handler.onConnectionClose();
  }
}
