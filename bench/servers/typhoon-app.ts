/**
 * typhoon's `Application` hello world: Tornado's `MainHandler`. The only
 * addition is the Content-Type, so that every server answers `text/plain`
 * (the Application's default is `text/html; charset=UTF-8`); it also sends
 * `Server` and `Etag` headers, as Tornado does.
 */
import { BENCH_HOST, benchPort, exitWithRunner, forkIfAsked } from "./common";

await forkIfAsked();
exitWithRunner("typhoon-app");

// Imported at run time so that a missing or half-written web layer is
// reported as such, not as a syntax error of this file.
const web = (await import("../../src/web/index")) as typeof import("../../src/web/index");
if (typeof web.Application !== "function" || typeof web.RequestHandler !== "function") {
  console.error("Cannot start typhoon-app: src/web/index.ts does not export Application and RequestHandler yet");
  process.exit(3);
}
const { Application, RequestHandler } = web;

class MainHandler extends RequestHandler {
  get(): void {
    this.setHeader("Content-Type", "text/plain");
    this.write("Hello, world");
  }
}

const app = new Application([["/", MainHandler]]);
await app.listen(benchPort(), BENCH_HOST);
