/**
 * The WebSocket demos of the demo application:
 *
 * - `/ws/echo`: echoes each message back, text as text and binary as
 *   binary; accepts permessage-deflate whenever it is offered, messages up
 *   to 64 MiB, and any origin (so that test suites such as Autobahn's can
 *   connect).
 * - `/chat` and `/chatsocket`: Tornado's websocket chat demo
 *   (`demos/websocket/chatdemo.py`): a page with the message list and an
 *   input box; every message is broadcast to every open page, and the last
 *   200 are shown to newcomers. Message bodies are HTML-escaped on the
 *   server.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { RequestHandler, WebSocketHandler, type WebSocketCompressionOptions } from "typhoon";

/** Largest message `/ws/echo` accepts: 64 MiB. */
export const ECHO_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;

/** `/ws/echo`: sends every message back as it came. */
export class EchoWebSocket extends WebSocketHandler {
  override checkOrigin(): boolean {
    return true;
  }

  override getCompressionOptions(): WebSocketCompressionOptions {
    return {};
  }

  override get maxMessageSize(): number {
    return ECHO_MAX_MESSAGE_SIZE;
  }

  override onMessage(message: string | Uint8Array): Promise<void> {
    // Returning the send's promise pauses reading while the client is slow
    // to read (a send refused because the connection is closing is no error).
    return this.writeMessage(message);
  }
}

/** Escapes text for HTML (Tornado's `xhtml_escape`). */
export function xhtmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "#39" }[c]};`);
}

/** One chat message, as the page receives it. */
export interface ChatMessage {
  readonly id: string;
  readonly body: string;
  /** The message as an HTML fragment, body escaped (Tornado renders `message.html`). */
  readonly html: string;
}

/** The chat's shared state: who listens, and the last messages (Tornado's class attributes). */
export class ChatRoom {
  /** Messages kept for newcomers. */
  readonly cacheSize: number;
  readonly waiters = new Set<ChatSocketHandler>();
  readonly cache: ChatMessage[] = [];

  constructor(cacheSize = 200) {
    this.cacheSize = cacheSize;
  }

  /** Keeps `message` for newcomers and sends it to everyone listening. */
  post(body: string): ChatMessage {
    const id = randomUUID();
    const message: ChatMessage = { id, body, html: `<div class="message" id="m${id}">${xhtmlEscape(body)}</div>\n` };
    this.cache.push(message);
    if (this.cache.length > this.cacheSize) this.cache.splice(0, this.cache.length - this.cacheSize);
    for (const waiter of this.waiters) {
      waiter.writeMessage({ ...message }).catch(() => {
        // Tornado logs "Error sending message"; the waiter is gone or going.
      });
    }
    return message;
  }
}

const CHAT_PAGE = readFileSync(new URL("./static/chat.html", import.meta.url), "utf8");

/** `/chat`: the page, with the cached messages in it. */
export class ChatPageHandler extends RequestHandler {
  room!: ChatRoom;

  override initialize(args: { room: ChatRoom }): void {
    this.room = args.room;
  }

  get(): void {
    this.write(CHAT_PAGE.replace("<!--messages-->", this.room.cache.map((m) => m.html).join("")));
  }
}

/** `/chatsocket`: one open chat page. */
export class ChatSocketHandler extends WebSocketHandler {
  room!: ChatRoom;

  override initialize(args: { room: ChatRoom }): void {
    this.room = args.room;
  }

  override getCompressionOptions(): WebSocketCompressionOptions {
    // Non-null enables compression (as in Tornado's demo).
    return {};
  }

  override open(): void {
    this.room.waiters.add(this);
  }

  override onClose(): void {
    this.room.waiters.delete(this);
  }

  override onMessage(message: string | Uint8Array): void {
    if (typeof message !== "string") return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch {
      return;
    }
    const body = (parsed as { body?: unknown } | null)?.body;
    if (typeof body !== "string" || body === "") return;
    this.room.post(body);
  }
}
