/**
 * typhoon's bare `HTTPServer` hello world: a request callback that answers
 * with `respond` (no web layer).
 *
 * `BENCH_ASYNC=1` makes the callback `async` and awaits `respond`, as the
 * example in the HTTPServer docs does (one promise per request more).
 */
import { HTTPServer, type HTTPServerRequest } from "../../src/server";
import { BENCH_HOST, benchPort, exitWithRunner, forkIfAsked } from "./common";

await forkIfAsked();
exitWithRunner("typhoon-bare");

const callback =
  process.env.BENCH_ASYNC === "1"
    ? async (req: HTTPServerRequest): Promise<void> => {
        await req.connection.respond(200, { "Content-Type": "text/plain" }, "Hello, world");
      }
    : (req: HTTPServerRequest): void => {
        void req.connection.respond(200, { "Content-Type": "text/plain" }, "Hello, world");
      };

const server = new HTTPServer(callback, { noDelay: process.env.BENCH_NODELAY !== "0" });
await server.listen(benchPort(), BENCH_HOST);
