"""The S3-compatible server the object-storage tests run against keeps the one promise Delta's S3
commits rest on: of several writers creating the same key with `If-None-Match: *`, exactly one wins.
moto's own server checks and stores in two steps on many threads (2 of 200 six-writer races had two
winners on a loaded machine), so the tests run it one request at a time (helpers/s3_serial_server.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from helpers.s3_serial_server import OneAtATime
from s3server import BUCKET, s3_server


class Gauge:
    """How many requests are inside an app at once, and the most seen."""

    def __init__(self) -> None:
        self.inside = self.most = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)

    def leave(self) -> None:
        with self._lock:
            self.inside -= 1


def eager_app(gauge: Gauge) -> Callable[..., Iterable[bytes]]:
    """Does its work before it returns its body."""
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        gauge.enter()
        time.sleep(0.02)
        gauge.leave()
        start_response("200 OK", [])
        return [b"one ", environ["id"].encode()]
    return app


def streamed_app(gauge: Gauge) -> Callable[..., Iterable[bytes]]:
    """Does its work while its body is iterated (PEP 3333 allows a generator)."""
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        gauge.enter()
        try:
            start_response("200 OK", [])
            for part in (b"one ", environ["id"].encode()):
                time.sleep(0.01)
                yield part
        finally:
            gauge.leave()
    return app


@pytest.mark.parametrize("make_app", [eager_app, streamed_app], ids=["eager body", "streamed body"])
def test_the_server_wrapper_handles_one_request_at_a_time(make_app: Callable[[Gauge], Any]) -> None:
    """Deterministic: an app called from 8 threads at once never runs twice at the same time, and each
    caller gets its own whole response. A streamed body is produced inside the lock too (kills
    `OneAtATime` returning the app's iterable instead of the list of it: iterated after the lock was let
    go, its work ran for several requests at once, the race the wrapper exists to stop)."""
    gauge = Gauge()
    wrapped = OneAtATime(make_app(gauge))
    bodies: dict[int, bytes] = {}
    barrier = threading.Barrier(8)

    def call(i: int) -> None:
        barrier.wait()
        bodies[i] = b"".join(wrapped({"id": str(i)}, lambda *a: None))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gauge.most == 1
    assert bodies == {i: f"one {i}".encode() for i in range(8)}


def race(clients: list[Any], key: str) -> tuple[list[int], list[str]]:
    """All writers put `key` at once, each only if it does not exist: (who won, unexpected errors)."""
    from botocore.exceptions import ClientError

    won: list[int] = []
    errors: list[str] = []
    barrier = threading.Barrier(len(clients))

    def put(i: int) -> None:
        barrier.wait()
        try:
            clients[i].put_object(Bucket=BUCKET, Key=key, Body=str(i).encode() * 512, IfNoneMatch="*")
            won.append(i)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("PreconditionFailed", "ConditionalRequestConflict"):
                errors.append(str(exc))

    threads = [threading.Thread(target=put, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won, errors


@pytest.mark.slow
def test_a_conditional_put_has_exactly_one_winner_among_concurrent_writers() -> None:
    import boto3
    from botocore.config import Config

    with s3_server() as env:
        clients = [boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                                aws_secret_access_key="testing", region_name="us-east-1",
                                config=Config(retries={"max_attempts": 1})) for _ in range(6)]
        outcomes = [race(clients, f"_delta_log/{trial:020d}.json") for trial in range(150)]
    assert [o for o in outcomes if len(o[0]) != 1 or o[1]] == []
