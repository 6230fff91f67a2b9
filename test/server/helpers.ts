import { concatBytes, utf8Decode } from "../../src/core/bytes";
import type { Connection } from "../../src/core/transport";
import type { VirtualClock } from "../../src/core/clock";
import type { HTTPServer } from "../../src/server";
import { createPipe, flushMemory, type MemoryPipeOptions } from "../../src/transports/memory";

/** A raw client end of a memory pipe connected to a server, recording what it receives. */
export interface RawClient {
  readonly conn: Connection;
  /** Everything received so far, as text (latin1-safe for ASCII heads). */
  text(): string;
  readonly chunks: Uint8Array[];
  ended: boolean;
  closed: boolean;
  closeError: Error | undefined;
  drains: number;
  send(text: string | Uint8Array): boolean;
}

export function connect(server: HTTPServer, options: MemoryPipeOptions = {}): RawClient {
  const [client, serverEnd] = createPipe(options);
  const raw: RawClient = {
    conn: client,
    chunks: [],
    ended: false,
    closed: false,
    closeError: undefined,
    drains: 0,
    text: () => utf8Decode(concatBytes(raw.chunks)),
    send: (text) => client.write(typeof text === "string" ? new TextEncoder().encode(text) : text),
  };
  client.setHandler({
    data: (chunk) => raw.chunks.push(chunk),
    end: () => {
      // As real clients do: when the server closes, close too.
      raw.ended = true;
      client.end();
    },
    drain: () => {
      raw.drains++;
    },
    close: (error) => {
      raw.closed = true;
      raw.closeError = error;
    },
  });
  server.handleConnection(serverEnd);
  return raw;
}

/** Counts complete HTTP responses in a text stream by their status lines. */
export function statusLines(text: string): string[] {
  return text.match(/HTTP\/1\.1 \d{3} [^\r\n]*/g) ?? [];
}

export { flushMemory };

/** A promise and its settlers, for handlers that wait on the test. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Moves the virtual clock on by `ms` and lets the memory pipes deliver what follows. */
export async function advance(clock: VirtualClock, ms: number): Promise<void> {
  clock.advance(ms);
  await flushMemory();
}
