"""Fetches URLs from a typhoon server with Tornado's AsyncHTTPClient and
prints one JSON line per response: what a real Tornado client sees."""
import asyncio
import json
import sys

from tornado.httpclient import AsyncHTTPClient, HTTPRequest


async def main(base: str) -> None:
    client = AsyncHTTPClient()
    results = []
    get = await client.fetch(base + "/hello")
    results.append({"status": get.code, "body": get.body.decode(), "ctype": get.headers.get("Content-Type")})
    body = bytes(range(256)) * 1000
    post = await client.fetch(HTTPRequest(base + "/echo", method="POST", body=body))
    results.append({"status": post.code, "same": post.body == body, "length": len(post.body)})
    head = await client.fetch(HTTPRequest(base + "/hello", method="HEAD"))
    results.append({"status": head.code, "body": head.body.decode(), "length": head.headers.get("Content-Length")})
    chunked = await client.fetch(base + "/chunked")
    results.append({"status": chunked.code, "body": chunked.body.decode(), "te": chunked.headers.get("Transfer-Encoding")})
    missing = await client.fetch(base + "/missing", raise_error=False)
    results.append({"status": missing.code})
    many = await asyncio.gather(*(client.fetch(f"{base}/hello?i={i}") for i in range(20)))
    results.append({"statuses": sorted({r.code for r in many})})
    print(json.dumps(results))


asyncio.run(main(sys.argv[1]))
