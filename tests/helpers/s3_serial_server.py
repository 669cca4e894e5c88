"""moto's S3 server with its requests handled one at a time: `python s3_serial_server.py HOST PORT`.

Delta Lake's commit protocol on S3 relies on a conditional put (`If-None-Match: *`) being atomic:
of two writers creating the same log entry, one must fail. AWS S3 guarantees it (as do MinIO and
R2). moto checks the condition and stores the object in two steps with no lock between them, and
its server handles requests on many threads: six concurrent conditional puts of one key had more
than one winner in 2 of 200 trials, so two Delta commits could both "succeed" and the later one
silently replace the earlier (a lost `_sources` commit made a rotated `.gz` unrecognisable and
read again: 206 calls twice in the three-hosts test). Holding one lock per request restores the
guarantee the real service gives; connections are still accepted concurrently.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class OneAtATime:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            return list(self.app(environ, start_response))  # the whole response, under the lock


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(host, port, OneAtATime(DomainDispatcherApplication(create_backend_app)), threaded=True,
               request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
