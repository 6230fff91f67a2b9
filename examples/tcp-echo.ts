/**
 * Tornado's TCP echo server (`demos/tcpecho/server.py`): every line a client
 * sends comes back to it.
 *
 * Run it with `npx tsx examples/tcp-echo.ts` (PORT, default 8889; HOST,
 * default 127.0.0.1), then talk to it with `nc 127.0.0.1 8889`.
 *
 * @example
 * ```ts
 * import { EchoServer } from "./tcp-echo";
 * const server = new EchoServer();
 * await server.listen(8889, "127.0.0.1");
 * ```
 *
 * @module
 */
import { pathToFileURL } from "node:url";
import { utf8Decode } from "../src/core/bytes";
import { type IOStream, StreamClosedError, UnsatisfiableReadError } from "../src/core/iostream";
import type { SocketAddress } from "../src/core/transport";
import { TCPServer } from "../src/server/tcp-server";

/** The longest line echoed; a longer one closes the connection. */
export const MAX_LINE_BYTES = 64 * 1024;

/**
 * Reads lines and writes each back, until the client goes away.
 *
 * @example
 * ```ts
 * const server = new EchoServer({ logger: consoleLogger({ verbose: true }) });
 * await server.listen(0, "127.0.0.1");
 * ```
 */
export class EchoServer extends TCPServer {
  override async handleStream(stream: IOStream, address: SocketAddress | null): Promise<void> {
    const peer = address === null ? "unknown" : address.address;
    for (;;) {
      let data: Uint8Array;
      try {
        data = await stream.readUntil("\n", { maxBytes: MAX_LINE_BYTES });
        this.logger.info(`Received bytes: ${JSON.stringify(utf8Decode(data))}`);
        await stream.write(data);
      } catch (error) {
        if (error instanceof StreamClosedError) {
          this.logger.info(`Lost client at host ${peer}`);
          return;
        }
        if (error instanceof UnsatisfiableReadError) {
          this.logger.warn(`Line longer than ${MAX_LINE_BYTES} bytes from ${peer}; closed`);
          return;
        }
        throw error;
      }
    }
  }
}

async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? 8889);
  const host = process.env.HOST ?? "127.0.0.1";
  const server = new EchoServer();
  const address = await server.listen(port, host);
  console.log(`Listening on TCP port ${address.port}`);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      server.close().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
