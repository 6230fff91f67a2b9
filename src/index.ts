/**
 * typhoon: Tornado for TypeScript. This entry point has the web framework
 * and the names most programs need from the layers below; each layer also
 * has its own entry point (`typhoon/core`, `typhoon/server`, ...).
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
export * from "./web";
export {
  HTTPServer,
  type HTTPServerOptions,
  type HTTPMessageDelegate,
  type HTTPServerConnectionDelegate,
  type RequestCallback,
  type CloseOptions,
  type ListenTarget,
} from "./server/http-server";
export {
  HTTPServerRequest,
  parseQueryString,
  type RequestConnection,
  type ConnectionInfo,
} from "./server/request";
export { HTTPHeaders, flattenHeaders, type FlatHeaders, type HeadersInit } from "./core/headers";
export { ProtocolError, LocalProtocolError, RemoteProtocolError, type ProtocolErrorOptions } from "./core/errors";
export { consoleLogger, silentLogger, type Logger } from "./core/log";
export { toBytes, utf8Decode, type BytesLike } from "./core/bytes";
export type { Transport, Connection, SocketAddress, ListenOptions } from "./core/transport";
export { websocketConnect, WebSocketClientConnection, WebSocketHandshakeError, TCPClient, type WebSocketConnectOptions } from "./client";
export { TCPServer, forkProcesses, shutdownOnSignals, WebSocketClosedError } from "./server";
export { IOStream, StreamClosedError, VirtualClock, systemClock, type Clock } from "./core";
