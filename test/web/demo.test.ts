import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
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

describe("npm start", () => {
  const root = fileURLToPath(new URL("../../", import.meta.url));

  it("serves the demo on PORT and HOST: GET / says Hello, world, POST /echo echoes; SIGTERM closes it", async () => {
    // What `npm start` runs, taken from package.json, with the package's own
    // tsx. (Under `bun --bun`, `node` on the PATH is Bun.)
    const pkg = JSON.parse(readFileSync(`${root}package.json`, "utf8")) as { scripts: Record<string, string> };
    const [bin, ...args] = pkg.scripts.start!.split(" ");
    expect(bin).toBe("tsx");
    const child = spawn("node", [`${root}node_modules/tsx/dist/cli.mjs`, ...args], {
      cwd: root,
      env: { ...process.env, PORT: "0", HOST: "127.0.0.1", DEBUG: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines: string[] = [];
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      // The demo says where it listens once it does: wait for that line (or its early death).
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).on("line", (line) => {
          lines.push(line);
          const m = /^typhoon demo listening on (http:\/\/127\.0\.0\.1:(\d+)\/)$/.exec(line);
          if (m !== null && Number(m[2]) > 0) resolve(m[1]!);
        });
        void exited.then((code) => reject(new Error(`The demo exited with ${code} before listening: ${stderr}`)));
      });
      const hello = await fetch(url);
      expect(hello.status).toBe(200);
      expect(await hello.text()).toBe("Hello, world");
      const body = randomBytes(200_000);
      const echo = await fetch(`${url}echo`, { method: "POST", body, headers: { "Content-Type": "application/x-demo" } });
      expect(echo.status).toBe(200);
      expect(echo.headers.get("content-type")).toBe("application/x-demo");
      expect(Buffer.from(await echo.arrayBuffer()).equals(body)).toBe(true);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(lines).toContain("SIGTERM: closing");
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
  });
});
