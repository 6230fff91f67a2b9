/**
 * typhoon/transports/node: the Transport contract on `node:net` and
 * `node:tls` (TCP over IPv4 and IPv6, Unix domain sockets, TLS).
 *
 * @module
 */
export { NodeConnection, type NodeSocketKind } from "./connection";
export { NodeTransport, nodeTransport, type NodeConnectOptions, type NodeTransportOptions } from "./transport";
