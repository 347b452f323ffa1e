"""The client of the latency benchmark's lossy-link phase, run inside a network namespace
(`ip netns exec NS python bench/netns_lookups.py ...`); prints JSON on its last line.

    netns_lookups.py info ADDR,ADDR,...
        every node's id, successors, predecessor and fingers, as [id, address] pairs
        (an "error" entry for a node that did not answer);
    netns_lookups.py lookups ADDR,ADDR,... SEED SECONDS
        connects to every node and warms each channel with one lookup, prints "ready",
        waits for a line on stdin, then looks random keys up through random nodes, one
        after another, for SECONDS: [key, owner address or None, start (time.monotonic,
        the machine's clock, the same in every namespace), seconds taken, hops, timeouts,
        seconds the node spent, error or None] each.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any

from chordshare.chord.messages import NodeRef
from chordshare.transport.client import NodeClient

CALL_DEADLINE = 2.5  # per call of the client, as the benchmark's own clients have it
LOOKUP_DEADLINE = 5.0  # a lookup not answered by then failed


def pair(ref: NodeRef | None) -> list[Any] | None:
    return None if ref is None else [ref.id, ref.address]


async def info(addresses: list[str]) -> list[dict[str, Any]]:
    async def one(address: str) -> dict[str, Any]:
        try:
            client = await NodeClient.connect(address, CALL_DEADLINE)
            try:
                got = await client.info()
            finally:
                await client.close()
        except Exception as err:
            return {"address": address, "error": repr(err)}
        return {
            "address": address,
            "id": got.node.id,
            "successors": [pair(s) for s in got.successors],
            "predecessor": pair(got.predecessor),
            "fingers": [pair(f.node) for f in got.fingers],
        }

    return list(await asyncio.gather(*(one(a) for a in addresses)))


async def lookups(addresses: list[str], seed: int, seconds: float) -> list[list[Any]]:
    rng = random.Random(seed)
    clients = [await NodeClient.connect(a, CALL_DEADLINE) for a in addresses]
    size = clients[0].space.size
    for client in clients:
        await client.lookup(rng.randrange(size))
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    out: list[list[Any]] = []
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        client = rng.choice(clients)
        key = rng.randrange(size)
        started = time.monotonic()
        try:
            answer = await asyncio.wait_for(client.lookup(key), LOOKUP_DEADLINE)
            took = time.monotonic() - started
            owner, hops, timeouts = answer.owner.address, answer.hops, answer.timeouts
            out.append([key, owner, started, took, hops, timeouts, answer.seconds, None])
        except Exception as err:
            out.append([key, None, started, time.monotonic() - started, 0, 0, 0.0, repr(err)])
    for client in clients:
        await client.close()
    return out


def main() -> None:
    command, addresses = sys.argv[1], sys.argv[2].split(",")
    if command == "info":
        result: Any = asyncio.run(info(addresses))
    else:
        result = asyncio.run(lookups(addresses, int(sys.argv[3]), float(sys.argv[4])))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
