/**
 * The demo application: one `Application` that every feature's demo adds
 * its routes to. `demo.ts` serves it; the tests use `makeApp()` directly.
 *
 * To add a demo: write its handlers below (or in a file next to this one)
 * and add their routes to `routes()`.
 */
import { Application, RequestHandler, type ApplicationSettings, type Route } from "typhoon";
import { ChatPageHandler, ChatRoom, ChatSocketHandler, EchoWebSocket } from "./websocket";

/** `GET /`: Tornado's hello world. */
export class MainHandler extends RequestHandler {
  get() {
    this.write("Hello, world");
  }
}

/**
 * `POST /echo`: answers the request body exactly as it came, with the
 * request's Content-Type (or application/octet-stream).
 */
export class EchoHandler extends RequestHandler {
  post() {
    this.setHeader("Content-Type", this.request.headers.get("Content-Type") ?? "application/octet-stream");
    this.write(this.request.body);
  }
}

/** The demo's routes, in order. Each call makes a new chat room. */
export function routes(): Route[] {
  const room = new ChatRoom();
  return [
    ["/", MainHandler],
    ["/echo", EchoHandler],
    // WebSocket demos (examples/websocket.ts).
    ["/ws/echo", EchoWebSocket],
    ["/chat", ChatPageHandler, { room }],
    ["/chatsocket", ChatSocketHandler, { room }],
  ];
}

/**
 * The demo application.
 *
 * @example
 * ```ts
 * const server = await makeApp().listen(8888);
 * ```
 */
export function makeApp(settings: ApplicationSettings = {}): Application {
  return new Application(routes(), settings);
}
