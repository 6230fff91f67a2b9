// What the request says of the connection it came on, over real sockets.
import { once } from "node:events";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../src/core/log";
import { HTTPServer, type HTTPServerRequest } from "../../src/server";

async function ask(connect: () => net.Socket): Promise<string> {
  const socket = connect();
  socket.end("GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  await once(socket, "close");
  return Buffer.concat(chunks).toString("latin1");
}

describe("the request's connection info", () => {
  it("on a Unix socket the remote IP is 0.0.0.0, as in Tornado", async () => {
    let seen: HTTPServerRequest | null = null;
    const server = new HTTPServer((req) => {
      seen = req;
      return req.connection.respond(200, {}, req.remoteIp);
    }, { logger: silentLogger });
    const path = join(tmpdir(), `typhoon-info-${process.pid}-${Date.now()}.sock`);
    await server.listen({ path });
    try {
      const answer = await ask(() => net.connect(path));
      expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(answer.endsWith("\r\n\r\n0.0.0.0")).toBe(true);
      expect(seen!.remoteIp).toBe("0.0.0.0");
      expect(seen!.protocol).toBe("http");
    } finally {
      await server.close();
    }
  });

  it("on TCP the remote IP and port are the client's", async () => {
    let seen: HTTPServerRequest | null = null;
    let clientPort = -1;
    const server = new HTTPServer((req) => {
      seen = req;
      return req.connection.respond(200, {}, "ok");
    }, { logger: silentLogger });
    await server.listen(0, "127.0.0.1");
    try {
      const answer = await ask(() => {
        const s = net.connect(server.address!.port, "127.0.0.1");
        s.once("connect", () => {
          clientPort = s.localPort!;
        });
        return s;
      });
      expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(seen!.remoteIp).toBe("127.0.0.1");
      expect(clientPort).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
  });
});
