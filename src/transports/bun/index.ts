/**
 * typhoon/transports/bun: the Transport contract on `Bun.listen` and
 * `Bun.connect` (TCP over IPv4 and IPv6, Unix domain sockets, TLS). Safe to
 * import anywhere; it touches `Bun` only when used, and throws a clear error
 * when used outside Bun.
 *
 * @module
 */
export { isBun } from "./bun-api";
export { BunConnection, type BunSocketKind } from "./connection";
export { type BunConnectOptions, BunTransport, bunTransport, type BunTransportOptions } from "./transport";
