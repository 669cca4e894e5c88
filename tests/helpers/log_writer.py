"""A log-writing process for the fault-injection tests: appends calls at a steady rate and
rotates its log in all three styles (rename+create, copytruncate, rename then gzip).

    python log_writer.py DIR TOTAL RATE SEED [PREFIX [PAUSE]]

Every id is recorded in DIR/../written[-PREFIX].txt once its line is written (the writer is never
killed). PREFIX keeps the ids of several writers apart. PAUSE (seconds, default 0) is the most a
rotation waits between its two steps (copy, then truncate; compress, then delete the original), as
logrotate does while it copies or compresses a big file: for that while both files hold the same
calls, and a watcher pass that lands there must read them once.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path


def line(i: int, prefix: str = "") -> bytes:
    return (json.dumps({
        "timestamp": "2025-03-03T10:00:00Z", "route": "/fault", "request_id": f"req_{i}",
        "response": {"id": f"chatcmpl-{prefix}{i:08d}", "object": "chat.completion", "created": 1741000000, "model": "gpt-4o-mini",
                     "choices": [], "usage": {"prompt_tokens": 10 + i % 7, "completion_tokens": 5, "total_tokens": 15 + i % 7}},
    }) + "\n").encode()


def main() -> None:
    d, total, rate, seed = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    prefix = sys.argv[5] if len(sys.argv) > 5 else ""
    pause = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    rnd = random.Random(seed)
    record = open(d.parent / (f"written-{prefix}.txt" if prefix else "written.txt"), "w")  # noqa: SIM115
    log = d / "app.log"
    fh = open(log, "ab")  # noqa: SIM115
    generation = 0
    next_rotation = rnd.randint(150, 400)
    for i in range(total):
        fh.write(line(i, prefix))
        fh.flush()
        record.write(f"chatcmpl-{prefix}{i:08d}\n")
        if i == next_rotation:
            generation += 1
            style = rnd.choice(("rename", "copytruncate", "gzip"))
            if style == "copytruncate":
                shutil.copyfile(log, d / f"app.log.{generation}")
                time.sleep(rnd.uniform(0, pause))
                fh.truncate(0)
                fh.seek(0)
            else:
                fh.close()
                rotated = d / f"app.log.{generation}"
                os.rename(log, rotated)
                fh = open(log, "ab")  # noqa: SIM115
                if style == "gzip":
                    with open(rotated, "rb") as src, gzip.open(str(rotated) + ".gz", "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    time.sleep(rnd.uniform(0, pause))
                    rotated.unlink()
            next_rotation = i + rnd.randint(150, 400)
        time.sleep(rnd.expovariate(rate))
    fh.close()
    record.close()
    (d.parent / (f"writer-{prefix}.done" if prefix else "writer.done")).write_text(str(total))


if __name__ == "__main__":
    main()
