/**
 * Several processes serving one port, and shutting down on signals: Tornado's
 * `tornado.process.fork_processes` and the graceful stop every deployment
 * needs.
 *
 * How this works: the first process (the primary) forks `n` workers with
 * Node's `cluster` (Bun implements it too) and never returns from
 * {@link forkProcesses}; it restarts a worker that dies unexpectedly, and on
 * SIGTERM/SIGINT passes SIGTERM on to the workers and exits once they have.
 * Each worker runs the program again from the top; there `forkProcesses`
 * resolves with the worker's task id (0 to n-1), and the program goes on to
 * listen. Listening sockets are shared: the workers' listens on the same
 * port are served from one socket that the kernel balances between them.
 *
 * @module
 */
import cluster, { type Worker } from "node:cluster";
import { availableParallelism } from "node:os";
import { consoleLogger, type Logger } from "../core/log";

/** Options of {@link forkProcesses}. */
export interface ForkOptions {
  /**
   * Restarts of crashed workers allowed in all, after which the primary
   * gives up and exits with an error (Tornado's `max_restarts`).
   * @default 100
   */
  maxRestarts?: number;
  /** Where the primary reports starts, exits and restarts. @default consoleLogger() */
  logger?: Logger;
  /** Signals that make the primary stop the workers and exit. @default ["SIGTERM", "SIGINT"] */
  signals?: NodeJS.Signals[];
}

const TASK_ENV = "TYPHOON_TASK_ID";

/** The task id of this process (0 to n-1) when it is a forked worker, otherwise null. */
export function taskId(): number | null {
  const value = process.env[TASK_ENV];
  return cluster.isWorker && value !== undefined ? Number(value) : null;
}

/**
 * Forks `n` worker processes (`0` or less: one per CPU) and returns, in each
 * worker, its task id. In the primary it never resolves: the primary
 * supervises the workers, restarts those that crash, and exits when they are
 * all gone: with 0, or with 1 if a worker exited with an error while
 * stopping. On SIGTERM or SIGINT it passes SIGTERM on to the workers; on a
 * second signal it kills them (SIGKILL) and exits with 1.
 *
 * @example
 * ```ts
 * const id = await forkProcesses(2);
 * const server = new HTTPServer(handler);
 * await server.listen(8888);          // both workers share port 8888
 * shutdownOnSignals([server]);         // finish in-flight requests on SIGTERM
 * ```
 */
export function forkProcesses(n: number, options: ForkOptions = {}): Promise<number> {
  const count = n <= 0 ? availableParallelism() : Math.floor(n);
  if (!Number.isFinite(count) || count < 1) throw new RangeError(`Cannot fork ${n} processes: give a positive number, or 0 for one per CPU`);
  if (cluster.isWorker) {
    const id = taskId();
    if (id === null) throw new Error(`Cannot find this worker's task id: ${TASK_ENV} is not set`);
    return Promise.resolve(id);
  }
  const logger = options.logger ?? consoleLogger();
  const maxRestarts = options.maxRestarts ?? 100;
  // Let the kernel balance connections between workers: the primary's
  // round-robin hand-off costs a hop per connection.
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  const byWorker = new Map<Worker, number>();
  let restarts = 0;
  let stopping = false;

  const start = (id: number): void => {
    const worker = cluster.fork({ [TASK_ENV]: String(id) });
    byWorker.set(worker, id);
  };

  cluster.on("exit", (worker, code, signal) => {
    const id = byWorker.get(worker);
    byWorker.delete(worker);
    if (id === undefined) return;
    if ((code === 0 && signal === null) || (stopping && signal === "SIGTERM")) {
      // Exiting on the SIGTERM passed on is a clean stop for a worker that
      // does not handle it (no shutdownOnSignals).
      logger.info(`Worker ${id} (pid ${worker.process.pid}) exited`);
    } else if (stopping) {
      // A worker that failed to stop cleanly makes the whole stop a failure.
      logger.warn(`Worker ${id} (pid ${worker.process.pid}) exited with ${signal ?? `exit code ${code}`} while stopping`);
      process.exitCode = 1;
    } else {
      logger.warn(`Worker ${id} (pid ${worker.process.pid}) died with ${signal ?? `exit code ${code}`}`);
      if (restarts >= maxRestarts) {
        logger.error(`Too many worker restarts (${restarts}); stopping`);
        stopping = true;
        for (const w of byWorker.keys()) w.process.kill("SIGTERM");
        process.exitCode = 1;
      } else {
        restarts++;
        start(id);
        return;
      }
    }
    if (byWorker.size === 0) process.exit(process.exitCode ?? 0);
  });

  for (const signal of options.signals ?? (["SIGTERM", "SIGINT"] as NodeJS.Signals[])) {
    process.on(signal, () => {
      if (stopping) {
        // A second signal (Ctrl-C twice): stop now. The workers leave this
        // to the primary (see shutdownOnSignals).
        logger.warn(`Received ${signal} again; killing the workers`);
        for (const worker of byWorker.keys()) worker.process.kill("SIGKILL");
        process.exit(1);
      }
      stopping = true;
      logger.info(`Received ${signal}; stopping ${byWorker.size} workers`);
      for (const worker of byWorker.keys()) worker.process.kill("SIGTERM");
      if (byWorker.size === 0) process.exit(0);
    });
  }

  for (let id = 0; id < count; id++) start(id);
  return new Promise<number>(() => {});
}

/** Something that closes gracefully (an `HTTPServer`, a `TCPServer`, an `Application`'s server). */
export interface Closable {
  close(options?: { timeout?: number }): Promise<void>;
}

/** Options of {@link shutdownOnSignals}. */
export interface ShutdownOptions {
  /** Signals to act on. @default ["SIGTERM", "SIGINT"] */
  signals?: NodeJS.Signals[];
  /** After this many ms, connections still open are destroyed. @default 30000 */
  timeout?: number;
  /** Exit the process once closed. @default true */
  exit?: boolean;
  /** Where the shutdown is reported. @default consoleLogger() */
  logger?: Logger;
}

/**
 * On SIGTERM or SIGINT: stop accepting, let requests in flight finish (their
 * responses carry `Connection: close`), close WebSockets with 1001, then
 * exit. A second signal exits at once; in a worker of {@link forkProcesses}
 * it is ignored, since a signal to the process group (Ctrl-C) reaches the
 * worker along with the SIGTERM that the primary passes on, and the primary
 * kills the workers on a second signal itself.
 *
 * @example
 * ```ts
 * const server = await app.listen(8888);
 * shutdownOnSignals([server], { timeout: 10_000 });
 * ```
 */
export function shutdownOnSignals(servers: Closable[], options: ShutdownOptions = {}): () => void {
  const logger = options.logger ?? consoleLogger();
  const timeout = options.timeout ?? 30_000;
  const exit = options.exit ?? true;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      // A worker of forkProcesses gets a signal sent to the process group
      // (a terminal's Ctrl-C) and the SIGTERM the primary passes on: that is
      // one request to stop. The primary kills the workers on a second one.
      if (taskId() !== null) return;
      logger.warn(`Received ${signal} again; exiting now`);
      process.exit(1);
    }
    stopping = true;
    logger.info(`Received ${signal}; closing gracefully`);
    Promise.all(servers.map((s) => s.close({ timeout }))).then(
      () => {
        if (exit) process.exit(0);
      },
      (err: unknown) => {
        logger.error("Error while closing", err);
        if (exit) process.exit(1);
      },
    );
  };
  const signals = options.signals ?? (["SIGTERM", "SIGINT"] as NodeJS.Signals[]);
  for (const s of signals) process.on(s, onSignal);
  return () => {
    for (const s of signals) process.off(s, onSignal);
  };
}
