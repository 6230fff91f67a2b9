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
 *
 * `BENCH_PROCESSES=n` (n > 1) makes a server fork n workers with typhoon's
 * `forkProcesses` before it listens ({@link forkIfAsked}); the primary
 * passes SIGTERM on to them, and they exit with the runner as any server.
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

/**
 * With `BENCH_PROCESSES=n` (n > 1), forks n workers with typhoon's
 * `forkProcesses` and returns in each of them (the primary stays inside,
 * supervising, and exits once the workers have); otherwise returns at once.
 * Call it first, before {@link exitWithRunner}.
 */
export async function forkIfAsked(): Promise<void> {
  const raw = process.env.BENCH_PROCESSES;
  if (raw === undefined || raw === "" || raw === "1") return;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`Cannot start the benchmark server: BENCH_PROCESSES=${JSON.stringify(raw)} is not a positive whole number`);
    process.exit(2);
  }
  const { forkProcesses } = await import("../../src/server/process");
  await forkProcesses(n);
}

/** What a server reports after a full collection (bytes, from `process.memoryUsage()`). */
export interface GcReport {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /**
   * Bytes of V8's young generation (`new_space`) in memory: empty after a
   * full collection, but its pages stay resident at the size V8 last grew
   * it to (up to 16 MiB per semispace). 0 where V8's spaces are not known.
   */
  youngGeneration: number;
}

/** The resident size of V8's `new_space`, or 0 where `node:v8` does not tell it (Bun). */
async function youngGenerationBytes(): Promise<number> {
  try {
    const v8 = await import("node:v8");
    const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
    return space?.physical_space_size ?? 0;
  } catch {
    return 0;
  }
}

/**
 * With `BENCH_GC=1`: a line `gc` on stdin runs a full collection (a few
 * times, with turns of the event loop between them so that finalizers run)
 * and prints `gc {"rss":...,"heapUsed":...}` on stdout. Needs
 * `node --expose-gc` (or Bun, whose `Bun.gc(true)` is used). A line
 * `snapshot <file>` (Node) collects the same way, writes a heap snapshot to
 * `<file>` and prints `snapshot <file>`.
 */
export function gcOnRequest(): void {
  if (process.env.BENCH_GC !== "1") return;
  const g = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
  const collect = g.gc ?? (g.Bun !== undefined ? () => g.Bun!.gc(true) : undefined);
  if (collect === undefined) {
    console.error("Cannot answer gc requests: run Node with --expose-gc");
    process.exit(2);
  }
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  onStdinLines((raw) => {
    const line = raw.trim();
    const snapshot = line.startsWith("snapshot ") ? line.slice(9).trim() : null;
    if (line !== "gc" && snapshot === null) return;
    void (async () => {
      for (let i = 0; i < 4; i++) {
        collect();
        await turn();
      }
      if (snapshot !== null) {
        const v8 = await import("node:v8");
        v8.writeHeapSnapshot(snapshot);
        process.stdout.write(`snapshot ${snapshot}\n`);
        return;
      }
      const m = process.memoryUsage();
      const report: GcReport = {
        rss: m.rss,
        heapTotal: m.heapTotal,
        heapUsed: m.heapUsed,
        external: m.external,
        arrayBuffers: m.arrayBuffers,
        youngGeneration: await youngGenerationBytes(),
      };
      process.stdout.write(`gc ${JSON.stringify(report)}\n`);
    })();
  });
}

/** Calls `onLine` with each line that arrives on stdin (without its newline), in order. */
export function onStdinLines(onLine: (line: string) => void): void {
  let partial = "";
  process.stdin.setEncoding("latin1");
  process.stdin.on("data", (text: string) => {
    partial += text;
    let nl: number;
    while ((nl = partial.indexOf("\n")) !== -1) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      onLine(line);
    }
  });
  process.stdin.resume();
}
