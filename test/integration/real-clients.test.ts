/**
 * The bare HTTP server over real sockets with real clients: Node's fetch,
 * curl, and Python's Tornado AsyncHTTPClient (Debian's python3-tornado,
 * installed by `npm run setup`). The same scenarios run over memory pipes
 * with the TestClient at the end, so that both paths are held to one answer.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../src/core/log";
import { HTTPServer, type HTTPServerRequest } from "../../src/server";
import { TestClient } from "../../src/testing";

const run = promisify(execFile);

async function app(req: HTTPServerRequest): Promise<void> {
  const c = req.connection;
  switch (req.path) {
    case "/hello":
      return c.respond(200, { "Content-Type": "text/plain; charset=utf-8" }, "Hello, world");
    case "/echo":
      return c.respond(200, { "Content-Type": "application/octet-stream" }, req.body);
    case "/chunked":
      c.writeHeaders(200, { "Content-Type": "text/plain" });
      await c.write("one,");
      await c.write("two,");
      return c.finish();
    case "/info":
      return c.respond(200, { "Content-Type": "application/json" }, JSON.stringify({ method: req.method, version: req.version, length: req.body.length }));
    default:
      return c.respond(404, { "Content-Type": "text/plain" }, "Not Found");
  }
}

let server: HTTPServer;
let base: string;

beforeAll(async () => {
  server = new HTTPServer(app, { logger: silentLogger });
  const address = await server.listen(0, "127.0.0.1");
  base = `http://127.0.0.1:${address.port}`;
});

afterAll(async () => {
  await server.close({ timeout: 2000 });
});

describe("Node's fetch", () => {
  it("gets, posts binary bodies, streams chunked responses and keeps the connection", async () => {
    const hello = await fetch(`${base}/hello`);
    expect(hello.status).toBe(200);
    expect(await hello.text()).toBe("Hello, world");
    const body = new Uint8Array(1 << 20).map((_, i) => (i * 7) & 0xff);
    const echo = await fetch(`${base}/echo`, { method: "POST", body });
    expect(new Uint8Array(await echo.arrayBuffer())).toEqual(body);
    const chunked = await fetch(`${base}/chunked`);
    expect(chunked.headers.get("transfer-encoding")).toBe("chunked");
    expect(await chunked.text()).toBe("one,two,");
    const missing = await fetch(`${base}/nope`);
    expect(missing.status).toBe(404);
    await missing.text();
    const all = await Promise.all(Array.from({ length: 50 }, (_, i) => fetch(`${base}/hello?i=${i}`).then((r) => r.text())));
    expect(new Set(all)).toEqual(new Set(["Hello, world"]));
  });
});

describe("curl", () => {
  it("fetches several URLs over one kept-alive connection", async () => {
    const { stdout, stderr } = await run("curl", ["-sv", `${base}/hello`, `${base}/info`, `${base}/hello`], { encoding: "utf8" });
    expect(stdout).toBe(`Hello, world${JSON.stringify({ method: "GET", version: "HTTP/1.1", length: 0 })}Hello, world`);
    expect(stderr).toMatch(/Re-using existing connection|Reusing existing connection/);
    expect(stderr.match(/Connected to/g)).toHaveLength(1);
  });

  it("speaks HTTP/1.0 and sends chunked uploads", async () => {
    const old = await run("curl", ["-s", "--http1.0", "-i", `${base}/hello`], { encoding: "utf8" });
    expect(old.stdout).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(old.stdout).toContain("Hello, world");
    const up = await run("sh", ["-c", `printf 'abcdef' | curl -s -H 'Transfer-Encoding: chunked' --data-binary @- ${base}/info`], { encoding: "utf8" });
    expect(JSON.parse(up.stdout)).toEqual({ method: "POST", version: "HTTP/1.1", length: 6 });
  });
});

describe("Python's Tornado AsyncHTTPClient", () => {
  it("sees what a Tornado client expects", async () => {
    const script = fileURLToPath(new URL("./tornado_client.py", import.meta.url));
    const { stdout } = await run("/usr/bin/python3", [script, base], { encoding: "utf8", timeout: 20_000 });
    const results = JSON.parse(stdout);
    expect(results[0]).toEqual({ status: 200, body: "Hello, world", ctype: "text/plain; charset=utf-8" });
    expect(results[1]).toEqual({ status: 200, same: true, length: 256_000 });
    expect(results[2]).toEqual({ status: 200, body: "", length: "12" });
    expect(results[3]).toEqual({ status: 200, body: "one,two,", te: "chunked" });
    expect(results[4]).toEqual({ status: 404 });
    expect(results[5]).toEqual({ statuses: [200] });
  });
});

describe("the same scenarios over memory pipes", () => {
  it("answers the TestClient as it answers the real clients", async () => {
    const client = new TestClient(new HTTPServer(app, { logger: silentLogger }), { pipe: { split: 3 } });
    const hello = await client.fetch("/hello");
    expect([hello.status, hello.text(), hello.headers.get("content-type")]).toEqual([200, "Hello, world", "text/plain; charset=utf-8"]);
    const body = new Uint8Array(256_000).map((_, i) => i & 0xff);
    const echo = await client.fetch("/echo", { method: "POST", body });
    expect(Buffer.from(echo.body).equals(Buffer.from(body))).toBe(true);
    const head = await client.fetch("/hello", { method: "HEAD" });
    expect([head.status, head.body.length, head.headers.get("content-length")]).toEqual([200, 0, "12"]);
    const chunked = await client.fetch("/chunked");
    expect([chunked.text(), chunked.headers.get("transfer-encoding")]).toEqual(["one,two,", "chunked"]);
    expect((await client.fetch("/missing")).status).toBe(404);
    const info = await client.fetch("/info", { method: "POST", body: "abcdef" });
    expect(info.json()).toEqual({ method: "POST", version: "HTTP/1.1", length: 6 });
    client.close();
  });
});
