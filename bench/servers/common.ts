/**
 * What every benchmark server shares: where to listen, how to report that it
 * is ready, and how to go away cleanly.
 *
 * The contract between the runner and a server (any runtime, any language):
 *
 * - listen on `$HOST:$PORT` (the runner picks a free port; HOST is 127.0.0.1);
 * - answer `GET /` with `200`, `Content-Type: text/plain`, body `Hello, world`,
 *   keep-alive, pipelining allowed;
 * - exit on SIGTERM or SIGINT (with status 0, so that `--cpu-prof` writes its
 *   profile), and when its stdin closes if `BENCH_EXIT_WITH_STDIN=1` (the
 *   runner sets it, so that a server never outlives a runner that died).
 *
 * The runner waits until the port accepts and checks one answer itself; a
 * server prints nothing it must parse.
 */
import process from "node:process";

/** The port to listen on, from `$PORT`. */
export function benchPort(): number {
  const port = Number(process.env.PORT);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    console.error(`Cannot start the benchmark server: PORT=${JSON.stringify(process.env.PORT ?? "")} is not a port number`);
    process.exit(2);
  }
  return port;
}

/** The address to bind, from `$HOST`. */
export const BENCH_HOST = process.env.HOST ?? "127.0.0.1";

/** Exits with status 0 on SIGTERM/SIGINT, and when the runner goes away. */
export function exitWithRunner(name: string): void {
  const bye = (): void => process.exit(0);
  process.on("SIGTERM", bye);
  process.on("SIGINT", bye);
  if (process.env.BENCH_EXIT_WITH_STDIN === "1") {
    process.stdin.on("end", bye);
    process.stdin.on("error", bye);
    process.stdin.resume();
  }
  process.on("uncaughtException", (error) => {
    console.error(`${name}: uncaught exception`, error);
    process.exit(1);
  });
}
