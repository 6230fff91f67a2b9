/**
 * A line-based chat server on {@link TCPServer}: each client is asked for a
 * name, then every line it sends goes to all the other clients, prefixed
 * with that name. `/quit` leaves; `/who` lists who is here.
 *
 * Run it with `npx tsx examples/tcp-chat.ts` (PORT, default 8890; HOST,
 * default 127.0.0.1), then join from a few terminals with
 * `nc 127.0.0.1 8890`.
 *
 * @example
 * ```ts
 * import { ChatServer } from "./tcp-chat";
 * const server = new ChatServer();
 * await server.listen(8890, "127.0.0.1");
 * ```
 *
 * @module
 */
import { pathToFileURL } from "node:url";
import { utf8Decode } from "../src/core/bytes";
import { type IOStream, StreamClosedError, UnsatisfiableReadError } from "../src/core/iostream";
import { TCPServer, type TCPServerOptions } from "../src/server/tcp-server";

/** The longest line accepted from a client. */
export const MAX_LINE_BYTES = 4096;
/**
 * Output that may wait for one client: a client that reads slower than the
 * others talk is disconnected rather than buffered without end.
 */
export const MAX_PENDING_OUTPUT = 1024 * 1024;

async function readLine(stream: IOStream): Promise<string> {
  const line = utf8Decode(await stream.readUntil("\n", { maxBytes: MAX_LINE_BYTES }));
  return line.replace(/\r?\n$/, "");
}

/**
 * The chat room: one member per connection, named when it joins.
 *
 * @example
 * ```ts
 * const server = new ChatServer({ logger: silentLogger });
 * await server.listen(0, "127.0.0.1");
 * console.log(server.members); // []
 * ```
 */
export class ChatServer extends TCPServer {
  readonly #members = new Map<IOStream, string>();
  #guests = 0;

  constructor(options: TCPServerOptions = {}) {
    super({ maxWriteBufferSize: MAX_PENDING_OUTPUT, ...options });
  }

  /** Names of the members in the room, in the order they joined. */
  get members(): string[] {
    return [...this.#members.values()];
  }

  override async handleStream(stream: IOStream): Promise<void> {
    let name: string;
    try {
      await stream.write("Welcome! What is your name?\n");
      name = this.#uniqueName((await readLine(stream)).trim());
    } catch (error) {
      if (error instanceof StreamClosedError || error instanceof UnsatisfiableReadError) return;
      throw error;
    }
    const others = this.members;
    this.#members.set(stream, name);
    this.#broadcast(`* ${name} joined\n`, stream);
    try {
      await stream.write(
        `Hello ${name}! ${others.length === 0 ? "Nobody else is here" : `Here: ${others.join(", ")}`}. Type /quit to leave.\n`,
      );
      for (;;) {
        const line = await readLine(stream);
        if (line === "/quit") {
          await stream.write("Bye!\n");
          stream.close();
          return;
        }
        if (line === "/who") await stream.write(`Here: ${this.members.join(", ")}\n`);
        else if (line.trim() !== "") this.#broadcast(`${name}: ${line}\n`, stream);
      }
    } catch (error) {
      if (!(error instanceof StreamClosedError || error instanceof UnsatisfiableReadError)) throw error;
    } finally {
      this.#members.delete(stream);
      this.#broadcast(`* ${name} left\n`, stream);
    }
  }

  /** Sends a message to every member but `except`, dropping those that cannot keep up. */
  #broadcast(message: string, except: IOStream): void {
    for (const member of this.#members.keys()) {
      if (member === except) continue;
      // Not awaited: one slow member must not hold up the others. Its
      // output is bounded by maxWriteBufferSize; beyond it, it is dropped.
      member.write(message).catch(() => member.close());
    }
  }

  #uniqueName(wanted: string): string {
    const base = wanted === "" ? `guest${++this.#guests}` : wanted.slice(0, 32);
    const taken = new Set(this.#members.values());
    let name = base;
    for (let i = 2; taken.has(name); i++) name = `${base}${i}`;
    return name;
  }
}

async function main(): Promise<void> {
  const port = Number(process.env.PORT ?? 8890);
  const host = process.env.HOST ?? "127.0.0.1";
  const server = new ChatServer();
  const address = await server.listen(port, host);
  console.log(`Chat server listening on ${address.address}:${address.port}`);
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
