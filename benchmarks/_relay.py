"""A bare pyzmq relay in its own process: the service's shape with no work in it.

PULL from the acquisition side, PUB to subscribers, every message forwarded as it
came (zero-copy, no decoding): two loopback hops and a process in between, which is
what any relay of frames pays on this machine before it does anything. The service
runs the same way (its own process, PULL in, PUB out), so "relay" rows are the floor
for its latency and throughput.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

import zmq


@contextmanager
def relay_process(input_endpoint: str, start_timeout_s: float = 60.0) -> Iterator[str]:
    """Relay ``input_endpoint`` (a PUSH to connect to) until the block exits; yields the
    relay's PUB endpoint. Forwarding starts once a subscriber has subscribed, so no
    frame is lost to a late joiner."""
    spawn = multiprocessing.get_context("spawn")
    ours, theirs = spawn.Pipe()
    child = spawn.Process(
        target=_relay, args=(input_endpoint, theirs), name="deepdenoise-relay", daemon=True
    )
    child.start()
    try:
        if not ours.poll(start_timeout_s):
            raise TimeoutError(f"the relay process did not start within {start_timeout_s} s")
        yield ours.recv()
    finally:
        if child.is_alive():
            ours.send("stop")
        child.join(10)
        if child.is_alive():
            child.terminate()
            child.join(5)
        ours.close()


def _relay(input_endpoint: str, conn: Connection) -> None:
    """Child process: forward PULL -> XPUB until told to stop over ``conn``."""
    with zmq.Context() as ctx, ctx.socket(zmq.PULL) as pull, ctx.socket(zmq.XPUB) as pub:
        pull.setsockopt(zmq.RCVHWM, 0)
        pub.setsockopt(zmq.XPUB_NODROP, 1)  # lossless like the raw pairs: block, not drop
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        conn.send(f"tcp://127.0.0.1:{port}")
        while not pub.poll(100):  # the subscription message: someone is listening
            if conn.poll():
                return
        pub.recv()
        pull.connect(input_endpoint)
        _forward(pull, pub, conn)


def _forward(pull: zmq.Socket[Any], pub: zmq.Socket[Any], conn: Connection) -> None:
    poller = zmq.Poller()
    poller.register(pull, zmq.POLLIN)
    while True:
        if not poller.poll(100):
            if conn.poll():
                return
            continue
        pub.send_multipart(pull.recv_multipart(copy=False), copy=False)
