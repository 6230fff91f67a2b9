/**
 * The logger that servers and applications report through, with Tornado's
 * three channels folded into levels: access lines (`info`), warnings (4xx
 * and protocol errors, `warn`) and failures (`error`).
 *
 * @module
 */

/** Where typhoon reports what happens. */
export interface Logger {
  debug(message: string, ...details: unknown[]): void;
  info(message: string, ...details: unknown[]): void;
  warn(message: string, ...details: unknown[]): void;
  error(message: string, ...details: unknown[]): void;
}

/**
 * Writes warnings and errors to the console; `debug` and `info` are dropped
 * unless `verbose` is set.
 *
 * @example
 * ```ts
 * const log = consoleLogger({ verbose: true });
 * log.info("200 GET / (127.0.0.1) 0.52ms");
 * ```
 */
export function consoleLogger(options: { verbose?: boolean } = {}): Logger {
  const verbose = options.verbose ?? false;
  return {
    debug: (m, ...d) => { if (verbose) console.debug(m, ...d); },
    info: (m, ...d) => { if (verbose) console.info(m, ...d); },
    warn: (m, ...d) => console.warn(m, ...d),
    error: (m, ...d) => console.error(m, ...d),
  };
}

/** A logger that drops everything (for tests of failures that are expected). */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};
