/**
 * typhoon/client: clients over the transports. Tornado's `TCPClient`, with
 * Happy Eyeballs for dual-stack names.
 *
 * @module
 */
export {
  defaultResolver,
  INITIAL_CONNECT_TIMEOUT,
  TCPClient,
  type ResolvedAddress,
  type Resolver,
  type TCPClientOptions,
  type TCPConnectOptions,
} from "./tcp-client";
export {
  websocketConnect,
  WebSocketClientConnection,
  WebSocketHandshakeError,
  WebSocketClosedError,
  DEFAULT_WEBSOCKET_CONNECT_TIMEOUT,
  type WebSocketConnectOptions,
  type WebSocketClientCompressionOptions,
} from "./websocket";
