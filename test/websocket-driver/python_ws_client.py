"""Talks to a WebSocket echo server with Python's `websockets` (Debian's 10.4)
and prints what happened as one JSON object, for interop.test.ts.

Usage: python_ws_client.py URL none|deflate
"""
import asyncio
import json
import sys

import websockets


async def main(url: str, compression: str) -> None:
    result = {}
    async with websockets.connect(
        url,
        compression=None if compression == "none" else "deflate",
        max_size=8 * 1024 * 1024,
    ) as ws:
        result["extensions"] = ws.response_headers.get("Sec-WebSocket-Extensions")
        await ws.send("Hello, typhoon")
        result["text"] = await ws.recv()
        await ws.send(bytes(range(256)))
        echoed = await ws.recv()
        result["binary"] = isinstance(echoed, bytes) and echoed == bytes(range(256))
        big = "0123456789abcdef" * 65536  # 1 MiB, compressible
        await ws.send(big)
        result["big"] = (await ws.recv()) == big
        pong = await ws.ping(b"py-ping")
        await asyncio.wait_for(pong, 5)
        result["pong"] = True
        await ws.close(code=4001, reason="python done")
        result["close_code"] = ws.close_code
        result["close_reason"] = ws.close_reason
    print(json.dumps(result))


asyncio.run(main(sys.argv[1], sys.argv[2]))
