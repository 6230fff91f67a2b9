/**
 * The transport a server or client uses when none is given.
 *
 * @module
 */
import type { Transport } from "../core/transport";
import { nodeTransport } from "../transports/node";

/**
 * The runtime's own sockets.
 *
 * @example
 * ```ts
 * const server = new HTTPServer(handler, { transport: defaultTransport() });
 * ```
 */
export function defaultTransport(): Transport {
  return nodeTransport;
}
