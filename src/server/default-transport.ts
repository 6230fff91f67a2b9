/**
 * The transport a server or client uses when none is given.
 *
 * @module
 */
import type { Transport } from "../core/transport";
import { bunTransport, isBun } from "../transports/bun";
import { nodeTransport } from "../transports/node";

/**
 * The runtime's own sockets: `Bun.listen`/`Bun.connect` under Bun, `node:net`
 * and `node:tls` under Node. Both transports are imported; each touches its
 * runtime only when used.
 *
 * @example
 * ```ts
 * const server = new HTTPServer(handler, { transport: defaultTransport() });
 * ```
 */
export function defaultTransport(): Transport {
  return isBun() ? bunTransport : nodeTransport;
}
