/**
 * typhoon/web: Tornado's `tornado.web` in TypeScript. An {@link Application}
 * routes requests to {@link RequestHandler} subclasses.
 *
 * @example
 * ```ts
 * import { Application, RequestHandler } from "typhoon";
 *
 * class MainHandler extends RequestHandler {
 *   get() { this.write("Hello, world"); }
 * }
 *
 * const app = new Application([["/", MainHandler]]);
 * await app.listen(8888);
 * ```
 *
 * @module
 */
export { Application, type ApplicationSettings, type ApplicationListenOptions } from "./application";
export {
  RequestHandler,
  ErrorHandler,
  RedirectHandler,
  type Chunk,
  type ErrorOptions,
  type HeaderValue,
} from "./request-handler";
export { HTTPError, Finish, MissingArgumentError, type HTTPErrorOptions } from "./errors";
export {
  URLSpec,
  url,
  urlQuote,
  urlUnquote,
  type InitArgs,
  type RequestHandlerClass,
  type Route,
  type RouteTuple,
  type URLSpecOptions,
} from "./routing";
export { VERSION } from "./version";
export { WebSocketHandler, WebSocketClosedError, DEFAULT_WEBSOCKET_MAX_MESSAGE_SIZE, type WebSocketCompressionOptions, type WebSocketMessage, type WriteMessageOptions } from "./websocket";
