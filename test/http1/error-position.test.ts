// llhttp's error position is counted from the first byte the connection
// received, whatever the chunks were.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { RemoteProtocolError } from "../../src/core/errors";
import { ClientConnection, ServerConnection } from "../../src/protocols/http1";
import { byteByByte, splitAt } from "./helpers";

const enc = new TextEncoder();

function serverError(chunks: Uint8Array[]): RemoteProtocolError | null {
  const conn = new ServerConnection();
  for (const chunk of chunks) {
    conn.receiveData(chunk);
    for (let ev = conn.nextEvent(); ev.type !== "need-data" && ev.type !== "paused"; ev = conn.nextEvent()) {
      if (ev.type === "end") conn.writeResponse(ev.id, { status: 200, headers: [] }, "ok");
      if (ev.type === "error") return ev.error as RemoteProtocolError;
    }
  }
  return null;
}

describe("error positions", () => {
  // The first request is fine; the second has a space before a header's colon.
  const good = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
  const bad = "GET /b HTTP/1.1\r\nHost: x\r\nBad : y\r\n\r\n";
  const stream = enc.encode(good + bad);
  const expected = good.length + bad.indexOf("Bad ") + 3;

  it("points at the offending byte in the whole stream when fed whole", () => {
    const error = serverError([stream]);
    expect(error?.status).toBe(400);
    expect(error?.position).toBe(expected);
    expect(String.fromCharCode(stream[error!.position!]!)).toBe(" ");
  });

  it("is the same for every split of the input", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(stream.length), { maxLength: 6 }), (cuts) => {
        expect(serverError(splitAt(stream, cuts))?.position).toBe(expected);
      }),
    );
  });

  it("is the same byte by byte", () => {
    expect(serverError(byteByByte(stream))?.position).toBe(expected);
  });

  it("counts from the first byte of the connection on the client side too", () => {
    const okResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    const badResponse = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok";
    const bytes = enc.encode(okResponse + badResponse);
    const positions = new Set<number | undefined>();
    for (const chunks of [[bytes], splitAt(bytes, [5]), splitAt(bytes, [okResponse.length + 3, okResponse.length + 40]), byteByByte(bytes)]) {
      const client = new ClientConnection();
      client.sendRequest({ method: "GET", target: "/", headers: ["Host", "x"] }, "");
      client.sendRequest({ method: "GET", target: "/", headers: ["Host", "x"] }, "");
      let error: RemoteProtocolError | null = null;
      for (const chunk of chunks) {
        client.receiveData(chunk);
        for (let ev = client.nextEvent(); ev.type !== "need-data"; ev = client.nextEvent()) {
          if (ev.type === "error") error = ev.error as RemoteProtocolError;
          if (ev.type === "error" || ev.type === "paused") break;
        }
        if (error !== null) break;
      }
      expect(error).not.toBeNull();
      positions.add(error!.position);
    }
    expect(positions.size).toBe(1);
    const [position] = [...positions];
    expect(position).toBeGreaterThan(okResponse.length);
    expect(position).toBeLessThanOrEqual(bytes.length);
  });
});
