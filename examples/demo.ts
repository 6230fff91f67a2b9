/**
 * `npm start`: serves the demo application on PORT (8888) and HOST
 * (127.0.0.1) until SIGINT or SIGTERM, then closes gracefully.
 */
import { makeApp } from "./app";

const port = Number(process.env.PORT ?? 8888);
const host = process.env.HOST ?? "127.0.0.1";

const server = await makeApp({ debug: process.env.DEBUG === "1" }).listen(port, host);
const address = server.address!;
const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
console.log(`typhoon demo listening on http://${shown}:${address.port}/`);

let closing = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (closing) process.exit(1); // a second signal: stop now
    closing = true;
    console.log(`${signal}: closing`);
    server.close({ timeout: 10_000 }).then(
      () => process.exit(0),
      (err: unknown) => {
        console.error("Error while closing", err);
        process.exit(1);
      },
    );
  });
}
