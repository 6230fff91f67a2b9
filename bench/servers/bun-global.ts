/**
 * The few parts of Bun's API the benchmark servers and the WebSocket load
 * generator use, declared here (the project has no `@types/bun`), and the
 * one place that reads the `Bun` global.
 */

/** A `Bun.listen` socket. */
export interface BunTcpSocket<Data> {
  data: Data;
  /** Bytes the kernel took (0 or fewer than asked when its buffer is full, -1 once closed). */
  write(data: Uint8Array, byteOffset?: number, byteLength?: number): number;
  setNoDelay?(noDelay?: boolean): boolean;
}

/** `Bun.listen` callbacks. */
export interface BunSocketHandler<Data> {
  open?(socket: BunTcpSocket<Data>): void;
  data?(socket: BunTcpSocket<Data>, chunk: Uint8Array): void;
  drain?(socket: BunTcpSocket<Data>): void;
  close?(socket: BunTcpSocket<Data>): void;
  error?(socket: BunTcpSocket<Data>, error: Error): void;
}

/** A `Bun.serve` WebSocket. */
export interface BunServerWebSocket {
  send(data: string | Uint8Array | ArrayBuffer, compress?: boolean): number;
}

/** `Bun.serve` options (the subset used here). */
export interface BunServeOptions {
  hostname?: string;
  port?: number;
  fetch(request: Request, server: { upgrade(request: Request): boolean }): Response | undefined | Promise<Response | undefined>;
  websocket?: {
    perMessageDeflate?: boolean;
    maxPayloadLength?: number;
    message(ws: BunServerWebSocket, message: string | Uint8Array): void;
  };
}

/** The `Bun` global, as far as the benchmark uses it. */
export interface BunGlobal {
  readonly version: string;
  serve(options: BunServeOptions): unknown;
  listen<Data>(options: { hostname: string; port: number; data?: Data; socket: BunSocketHandler<Data> }): unknown;
  gc(force: boolean): void;
}

/** The `Bun` global; exits with a clear message when not running under Bun. */
export function bunGlobal(who: string): BunGlobal {
  const bun = (globalThis as { Bun?: BunGlobal }).Bun;
  if (bun === undefined) {
    console.error(`Cannot start ${who}: it needs Bun (run it with \`npx bun ${process.argv[1] ?? ""}\`)`);
    process.exit(2);
  }
  return bun;
}
