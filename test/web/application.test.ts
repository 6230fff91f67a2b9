import { Buffer } from "node:buffer";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../src/core/log";
import { HTTPServer } from "../../src/server";
import { MemoryTransport } from "../../src/transports/memory";
import * as typhoon from "../../src";
import { VERSION } from "../../src/web";
import { parseResponses, rawExchange, request, RecordingLogger } from "./helpers";

describe("the DESIGN.md hello world", () => {
  it("compiles and answers Hello, world (over a real socket)", async () => {
    // The code of DESIGN.md, with "typhoon" as ../../src and port 0 instead of 8888.
    const { Application, RequestHandler } = typhoon;

    class MainHandler extends RequestHandler {
      get() { this.write("Hello, world"); }
    }

    const app = new Application([["/", MainHandler]]);
    const server = await app.listen(0, "127.0.0.1");
    try {
      const res = await fetch(`http://127.0.0.1:${server.address!.port}/`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("Hello, world");
      expect(res.headers.get("content-type")).toBe("text/html; charset=UTF-8");
      expect(res.headers.get("server")).toBe(`typhoon/${VERSION}`);
    } finally {
      await server.close();
    }
  });

  it("works as a delegate of a server built by hand, over memory pipes", async () => {
    class MainHandler extends typhoon.RequestHandler {
      get() { this.write("Hello, world"); }
    }
    const server = new HTTPServer(new typhoon.Application([["/", MainHandler]]), { logger: silentLogger });
    const data = await rawExchange(server, request("GET", "/"));
    const [res] = parseResponses(data, ["GET"]);
    expect(res!.text).toBe("Hello, world");
    expect(res!.headers.get("Content-Length")).toBe("12");
  });
});

describe("Application.listen", () => {
  class WhoAmI extends typhoon.RequestHandler {
    get() { this.write({ ip: this.request.remoteIp, protocol: this.request.protocol }); }
  }

  it("passes server options through (xheaders) and takes { host } in them", async () => {
    const app = new typhoon.Application([["/", WhoAmI]], { logger: silentLogger });
    const server = await app.listen(0, { host: "127.0.0.1", xheaders: true });
    try {
      expect(server).toBeInstanceOf(HTTPServer);
      expect(server.xheaders).toBe(true);
      const res = await fetch(`http://127.0.0.1:${server.address!.port}/`, {
        headers: { "X-Real-Ip": "10.1.2.3", "X-Forwarded-Proto": "https" },
      });
      expect(await res.json()).toEqual({ ip: "10.1.2.3", protocol: "https" });
    } finally {
      await server.close();
    }
  });

  it("listens on any transport, and the server logs through the application's logger", async () => {
    const logger = new RecordingLogger();
    const transport = new MemoryTransport();
    const app = new typhoon.Application([["/", WhoAmI]], { logger });
    const server = await app.listen(8080, { transport });
    expect(server.logger).toBe(logger);
    const client = await transport.connect({ port: 8080 });
    const chunks: Buffer[] = [];
    const closed = new Promise<void>((resolve) =>
      client.setHandler({ data: (c) => chunks.push(Buffer.from(c)), end: () => client.end(), drain() {}, close: () => resolve() }),
    );
    client.write(request("GET", "/"));
    client.end();
    await closed;
    const [res] = parseResponses(Buffer.concat(chunks), ["GET"]);
    expect(res!.status).toBe(200);
    expect(JSON.parse(res!.text).protocol).toBe("http");
    await server.close();
  });

  it("rejects when the address is taken", async () => {
    const transport = new MemoryTransport();
    const app = new typhoon.Application([], { logger: silentLogger });
    const first = await app.listen(9000, { transport });
    await expect(app.listen(9000, { transport })).rejects.toThrow();
    await first.close();
  });
});

describe("the public entry point", () => {
  it("exports the web API and the most used names of the layers below", () => {
    for (const name of [
      "Application", "RequestHandler", "ErrorHandler", "RedirectHandler", "HTTPError", "Finish",
      "MissingArgumentError", "URLSpec", "url", "HTTPServer", "HTTPServerRequest", "HTTPHeaders",
      "LocalProtocolError", "RemoteProtocolError", "consoleLogger", "silentLogger",
    ]) {
      expect(typhoon, name).toHaveProperty(name);
    }
  });

  it("VERSION is package.json's version", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    expect(VERSION).toBe(pkg.version);
  });
});
