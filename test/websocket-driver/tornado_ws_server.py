"""A Tornado 6.2 WebSocket echo server for interop.test.ts.

Listens on 127.0.0.1 on a free port and prints "PORT <n>". Serves /ws (no
compression) and /ws-deflate (accepts permessage-deflate). Each handler
echoes text as text and binary as binary, closes with 4002 "tornado done"
when it reads "close please", and reports its close code to the next
connection that asks with "last close". Exits when stdin closes.
"""
import asyncio
import sys

import tornado.web
import tornado.websocket

closes = []


class Echo(tornado.websocket.WebSocketHandler):
    def check_origin(self, origin):
        return True

    def on_message(self, message):
        if message == "close please":
            self.close(4002, "tornado done")
        elif message == "last close":
            self.write_message(repr(closes[-1]) if closes else "none")
        elif message == "extensions":
            self.write_message(self.request.headers.get("Sec-WebSocket-Extensions", "none"))
        else:
            self.write_message(message, binary=isinstance(message, bytes))

    def on_close(self):
        closes.append((self.close_code, self.close_reason))


class DeflateEcho(Echo):
    def get_compression_options(self):
        return {}


async def main():
    app = tornado.web.Application([(r"/ws", Echo), (r"/ws-deflate", DeflateEcho)])
    server = app.listen(0, "127.0.0.1")
    port = next(iter(server._sockets.values())).getsockname()[1]
    print(f"PORT {port}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


asyncio.run(main())
