// The seed's example, exactly as shared/DESIGN.md writes it, imported from
// "typhoon" (the package name, as users import it).
import { afterAll, expect, it } from "vitest";
import { Application, RequestHandler } from "typhoon";
import type { HTTPServer } from "typhoon/server";

class MainHandler extends RequestHandler {
  get() { this.write("Hello, world"); }
}

let server: HTTPServer | undefined;
afterAll(async () => {
  await server?.close({ timeout: 1000 });
});

it("runs DESIGN.md's hello world as written", async () => {
  const app = new Application([["/", MainHandler]]);
  server = await app.listen(0);
  const res = await fetch(`http://127.0.0.1:${server.address!.port}/`);
  expect(res.status).toBe(200);
  expect(await res.text()).toBe("Hello, world");
  expect(res.headers.get("content-type")).toBe("text/html; charset=UTF-8");
});
