import { Buffer } from "node:buffer";
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { makeApp } from "../../examples/app";
import { RecordingLogger, serveApp } from "./helpers";

describe("the demo application", () => {
  const t = () => serveApp(makeApp({ logger: new RecordingLogger() }));

  it("answers GET / with Hello, world", async () => {
    const res = await t().fetch("GET", "/");
    expect(res.status).toBe(200);
    expect(res.text).toBe("Hello, world");
  });

  it("echoes POST /echo bodies byte for byte, with the request's Content-Type", async () => {
    const body = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0d, 0x0a, 0x80]);
    const res = await t().fetch("POST", "/echo", { headers: { "Content-Type": "image/x-test" }, body });
    expect(res.status).toBe(200);
    expect(res.body).toEqual(body);
    expect(res.headers.get("Content-Type")).toBe("image/x-test");
    expect(res.headers.get("Content-Length")).toBe(String(body.byteLength));
  });

  it("echoes an empty body, and uses application/octet-stream without a Content-Type", async () => {
    const res = await t().fetch("POST", "/echo", { body: "" });
    expect(res.status).toBe(200);
    expect(res.body.byteLength).toBe(0);
    expect(res.headers.get("Content-Type")).toBe("application/octet-stream");
  });

  it("echoes a 1 MiB binary body over memory pipes", async () => {
    const body = randomBytes(1024 * 1024);
    const res = await t().fetch("POST", "/echo", { body });
    expect(res.status).toBe(200);
    expect(res.body.equals(body)).toBe(true);
  });

  it("echoes a 1 MiB binary body over a real socket", async () => {
    const server = await makeApp({ logger: new RecordingLogger() }).listen(0, "127.0.0.1");
    try {
      const body = randomBytes(1024 * 1024);
      const res = await fetch(`http://127.0.0.1:${server.address!.port}/echo`, { method: "POST", body });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("application/octet-stream");
      expect(Buffer.from(await res.arrayBuffer()).equals(body)).toBe(true);
      const hello = await fetch(`http://127.0.0.1:${server.address!.port}/`);
      expect(await hello.text()).toBe("Hello, world");
    } finally {
      await server.close();
    }
  });

  it("answers 405 to GET /echo and 404 elsewhere", async () => {
    const s = t();
    expect((await s.fetch("GET", "/echo")).status).toBe(405);
    expect((await s.fetch("GET", "/nowhere")).status).toBe(404);
  });
});
