#!/usr/bin/env python3
"""A TCP delay line: listens on 127.0.0.1:LISTEN, forwards to 127.0.0.1:TARGET, and holds
every byte DELAY_MS/2 in each direction, so a request and its response take DELAY_MS more
round-trip time, as a far object store does. Bandwidth is not limited: bytes are queued with
a due time, not sent one chunk per sleep.

benches/object_storage.sh uses it where the kernel has no netem qdisc (`tc qdisc ... netem`
needs CONFIG_NET_SCH_NETEM). Usage: delay_proxy.py LISTEN TARGET DELAY_MS
"""

import asyncio
import sys


async def pipe(reader, writer, delay):
    loop = asyncio.get_running_loop()
    line: asyncio.Queue = asyncio.Queue()

    async def take():
        while True:
            data = await reader.read(1 << 16)
            line.put_nowait((loop.time() + delay, data))
            if not data:
                return

    async def give():
        while True:
            due, data = await line.get()
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(take(), give())
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main(listen: int, target: int, delay_ms: float):
    half = delay_ms / 2000.0

    async def serve(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w, half), pipe(server_r, client_w, half))

    server = await asyncio.start_server(serve, "127.0.0.1", listen, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
