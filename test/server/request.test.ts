/**
 * HTTPServerRequest on its own: its times, and what it keeps once made
 * cheap to hold (a WebSocket keeps its request while it is open).
 */
import { describe, expect, it } from "vitest";
import { COMPACT_REQUEST, HTTPServerRequest, isSharedValue, type RequestConnection } from "../../src/server/request";

const info = { remoteIp: "203.0.113.7", remotePort: 40000, protocol: "http" as const };
const connection = {} as RequestConnection;

function request(headers: string[], startTime: number): HTTPServerRequest {
  return new HTTPServerRequest("GET", "/ws", "HTTP/1.1", headers, info, connection, startTime);
}

describe("HTTPServerRequest", () => {
  it("reads back its start time for any clock, and a finished request's time stays fixed", () => {
    const starts = [Date.now(), 0, 1_767_225_600_000, 1_767_225_600_000 - 86_400_000 * 40, 61.55, -5];
    for (const start of starts) {
      const r = request([], start);
      expect(r.startTime).toBeCloseTo(start, 6);
      expect(r.requestTime(start + 250)).toBeCloseTo(0.25, 6);
      r.markFinished(start + 1500);
      expect(r.requestTime(start + 99_000)).toBeCloseTo(1.5, 6);
    }
  });

  it("reads a finish before the start (a clock that stepped back) as no time, not as unfinished", () => {
    const r = request([], 1_000_000);
    r.markFinished(999_500);
    expect(r.requestTime(1_010_000)).toBe(0);
    expect(r.requestTime(2_000_000)).toBe(0);
  });

  it("shares the values of headers that repeat across clients, never keys, cookies or tokens", () => {
    const key = "dGhlIHNhbXBsZSBub25jZQ==";
    const headers = [
      "Host", "shared.example:8443",
      "Upgrade", "websocket",
      "User-Agent", "typhoon-test/1.0 (shared)",
      "Sec-WebSocket-Key", key,
      "Cookie", "session=secret-cookie-value",
      "Authorization", "Bearer secret-token-value",
      "X-Request-Id", "req-0f8e7d6c5b4a",
    ];
    const r = request([...headers], 1);
    r[COMPACT_REQUEST]();
    expect([...r.headers].flat()).toEqual(headers);
    expect(r.remoteIp).toBe("203.0.113.7");
    expect(["shared.example:8443", "websocket", "typhoon-test/1.0 (shared)", "203.0.113.7"].map(isSharedValue)).toEqual([true, true, true, true]);
    expect([key, "session=secret-cookie-value", "Bearer secret-token-value", "req-0f8e7d6c5b4a"].map(isSharedValue)).toEqual([false, false, false, false]);
  });
});
