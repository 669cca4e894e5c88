"""A record left open (an SSE stream without its end) in a file nobody writes any more is cut off once.

Before, an open stream in a plain file was held until the file was rotated, so `ingest` of an
archived transcript stored 3 of its 4 streams on every run, and `watch` never re-read an unchanged
file to cut it off. Now a file whose mtime is `open_record_timeout` old (600 s: OpenAI's SDKs give up
on a response after that long without data) has its open stream counted as interrupted, once.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES, ingest_files, tt_sql
from test_parallel import BAD, ROW, _big
from test_rotation_copies import Passes, stored

from ingest import parallel
from ingest.pipeline import IngestOptions

CUT = "chatcmpl-sse0004"  # the fixture's last stream: one chunk, then the file ends


def streams(tmp_path: Path, age: float = 0.0) -> Path:
    """A copy of the fixture (3 whole streams and a cut-off one), its mtime `age` seconds old."""
    f = tmp_path / "logs" / "streams.sse"
    f.parent.mkdir(exist_ok=True)
    shutil.copyfile(FIXTURES / "sse" / "streams.sse", f)
    age_by(f, age)
    return f


def age_by(f: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(f, (when, when))


def append(f: Path, *events: dict[str, Any] | str) -> None:
    with f.open("a") as fh:
        fh.write("".join(f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events))


def rows(wh: Path, call_id: str, view: str = "calls_all") -> list[dict[str, Any]]:
    return tt_sql(wh, f"SELECT * FROM {view} WHERE call_id = '{call_id}'").to_arrow_table().to_pylist()


def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None,
          call_id: str = CUT) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "created": 1741510800, "model": "gpt-4o-2024-08-06", "id": call_id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": usage}


# -- ingest ------------------------------------------------------------------------------------------


def test_a_stream_cut_off_in_an_old_file_is_stored_once_as_interrupted(tmp_path: Path, wh_path: Path) -> None:
    f = streams(tmp_path, age=3600)
    s = ingest_files(wh_path, f)
    assert s.total("calls") == 4 and s.files[0].held_bytes == 0 and not s.files[0].held_record
    [cut] = rows(wh_path, CUT)
    assert "stream_interrupted" in cut["estimate_flags"] and cut["output_tokens"] == 3
    again = ingest_files(wh_path, f)
    assert again.total("calls") == 0 and again.total("lines") == 0
    assert set(stored(wh_path).values()) == {1} and len(stored(wh_path)) == 4


def test_a_fresh_open_stream_is_held_until_its_file_is_old_enough(tmp_path: Path, wh_path: Path) -> None:
    f = streams(tmp_path)
    s = ingest_files(wh_path, f)
    assert s.total("calls") == 3 and s.files[0].held_record and s.files[0].held_bytes == 311
    assert rows(wh_path, CUT) == []
    age_by(f, 540)  # not yet 600 s old (a minute's margin for the run)
    assert ingest_files(wh_path, f).total("calls") == 0
    age_by(f, 601)
    s = ingest_files(wh_path, f)
    assert s.total("calls") == 1 and not s.files[0].held_record and s.files[0].held_bytes == 0
    assert "stream_interrupted" in rows(wh_path, CUT)[0]["estimate_flags"]
    assert ingest_files(wh_path, f).total("calls") == 0
    assert set(stored(wh_path).values()) == {1} and len(stored(wh_path)) == 4


def test_the_timeout_is_an_option(tmp_path: Path, wh_path: Path) -> None:
    f = streams(tmp_path, age=10)
    assert ingest_files(wh_path, f, open_record_timeout=300).total("calls") == 3
    assert ingest_files(wh_path, f, open_record_timeout=5).total("calls") == 1


def test_a_partial_last_line_is_not_called_an_open_record(tmp_path: Path, wh_path: Path) -> None:
    f = tmp_path / "s.sse"
    text = (FIXTURES / "sse" / "streams.sse").read_text()
    f.write_text(text[: text.index("data: [DONE]") + len("data: [DO")])  # the first stream's end, half written
    age_by(f, -3600)  # a last line unchanged for 2 s is taken as whole: this one stays fresh however slow the run
    s = ingest_files(wh_path, f)
    assert s.files[0].held_bytes > 0 and s.files[0].held_record  # the stream it would end is open too
    g = tmp_path / "app.log"
    g.write_text('{"a": 1')
    age_by(g, -3600)
    s = ingest_files(wh_path, g)
    assert s.files[0].held_bytes == 7 and not s.files[0].held_record


def test_two_workers_say_held_record_too(tmp_path: Path, wh_path: Path) -> None:
    f = streams(tmp_path)
    (tmp_path / "logs" / "b.sse").write_text((FIXTURES / "sse" / "streams.sse").read_text().replace("sse000", "bse000"))
    s = ingest_files(wh_path, f.parent, jobs=2)
    assert [x.held_record for x in s.files] == [True, True] and s.total("calls") == 6


@pytest.mark.parametrize("fixture", ["cri/container.log", "docker/json-file.log"])
def test_an_old_big_file_read_in_ranges_cuts_off_no_record_at_a_range_end(fixture: str, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A record straddling a range's end (a container runtime's partial lines) is read on by the next
    range, not cut off there however old the file is: the rows are a single reader's."""
    monkeypatch.setattr(parallel, "RANGE_BYTES", 1500)
    big = _big(tmp_path, fixture, 60)
    age_by(big, 3600)
    one, two = tmp_path / "wh-one", tmp_path / "wh-two"
    s1, s2 = ingest_files(one, big, jobs=1), ingest_files(two, big, jobs=2)
    assert s1.total("calls") > 0 and s1.total("calls") == s2.total("calls")
    assert tt_sql(one, ROW).fetchall() == tt_sql(two, ROW).fetchall()
    assert tt_sql(one, BAD).fetchall() == tt_sql(two, BAD).fetchall()


def test_the_cli_says_an_unfinished_stream_not_a_partial_line(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("ingest", streams(tmp_path), "--warehouse", tmp_path / "wh")
    assert "holding 311 bytes of an unfinished stream (read as interrupted once the file is unchanged for 10 min" \
           in r.output
    assert "partial last line" not in r.output and ": ;" not in r.output


# -- the rest of a stream arriving after it was cut off -------------------------------------------------


def test_the_rest_of_a_cut_off_chat_stream_counts_once(tmp_path: Path, wh_path: Path) -> None:
    """The remainder begins without the stream's first chunk (`delta.role`) but carries the response id: it is
    stored, flagged `stream_remainder`, and `calls` folds it with the cut-off row, keeping that row (the first
    stored, both estimated): the call counts once, its tail's output is not added (a documented limit)."""
    f = streams(tmp_path, age=3600)
    ingest_files(wh_path, f)
    append(f, chunk({"content": " and the rest"}, finish="stop"), "[DONE]")
    s = ingest_files(wh_path, f)
    assert (s.total("lines"), s.total("calls"), s.total("quarantined")) == (4, 1, 0)
    flags = sorted(",".join(sorted(set(r["estimate_flags"].split(",")) & {"stream_interrupted", "stream_remainder"}))
                   for r in rows(wh_path, CUT))
    assert flags == ["stream_interrupted", "stream_remainder"]
    [cut] = rows(wh_path, CUT, view="calls")
    assert "stream_interrupted" in cut["estimate_flags"]
    # and a stream after the remainder is read as usual
    append(f, chunk({"role": "assistant", "content": "Next"}, call_id="chatcmpl-next"),
           chunk({}, finish="stop", call_id="chatcmpl-next"), "[DONE]")
    assert ingest_files(wh_path, f).total("calls") == 1
    assert len(stored(wh_path)) == 5 and stored(wh_path)[CUT] == 2 and set(stored(wh_path).values()) == {1, 2}


def test_the_rest_of_a_cut_off_stream_with_its_usage_supersedes_the_estimate(tmp_path: Path, wh_path: Path) -> None:
    """A remainder reporting usage is kept: `calls`/`usage` fold the two rows by response id, the reported
    counts winning (as for a call logged by an app and a proxy); `calls_all` keeps both."""
    f = streams(tmp_path, age=3600)
    ingest_files(wh_path, f)
    append(f, chunk({"content": " and the rest"}, finish="stop"),
           {**chunk({}), "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18}},
           "[DONE]")
    assert ingest_files(wh_path, f).total("calls") == 1
    assert len(rows(wh_path, CUT)) == 2
    [one] = rows(wh_path, CUT, view="calls")
    assert (one["token_source"], one["input_tokens"], one["output_tokens"]) == ("reported", 12, 6)


def test_a_stream_opened_by_a_chunk_without_choices_is_no_remainder(tmp_path: Path, wh_path: Path) -> None:
    """Azure's content-filter chunk (no choices) may open a stream whose chunks carry no role: counted."""
    f = tmp_path / "azure.sse"
    filt = {**chunk({}, call_id=""), "choices": [], "prompt_filter_results": []}
    append(f, filt, chunk({"content": "Hi"}, call_id="chatcmpl-az"), chunk({}, "stop", call_id="chatcmpl-az"),
           "[DONE]")
    assert ingest_files(wh_path, f).total("calls") == 1 and len(rows(wh_path, "chatcmpl-az")) == 1


RESPONSE = {"id": "resp_cut", "object": "response", "created_at": 1741510900, "status": "in_progress",
            "model": "gpt-4.1-2025-04-14", "output": []}


def test_the_rest_of_a_cut_off_responses_stream_is_dropped_unless_it_reports_usage(tmp_path: Path,
                                                                                     wh_path: Path) -> None:
    f = tmp_path / "r.sse"
    append(f, {"type": "response.created", "sequence_number": 0, "response": RESPONSE},
           {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "m", "delta": "Hello"})
    age_by(f, 3600)
    assert ingest_files(wh_path, f).total("calls") == 1
    append(f, {"type": "response.output_text.delta", "sequence_number": 2, "item_id": "m", "delta": " there"})
    age_by(f, 3600)  # cut off again: the remainder has no usage, it is no second call
    s = ingest_files(wh_path, f)
    assert (s.total("lines"), s.total("calls"), s.files[0].held_bytes) == (2, 0, 0)
    done = {**RESPONSE, "status": "completed", "usage": {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}}
    append(f, {"type": "response.output_text.delta", "sequence_number": 3, "item_id": "m", "delta": "!"},
           {"type": "response.completed", "sequence_number": 4, "response": done})
    assert ingest_files(wh_path, f).total("calls") == 1  # the end with its usage: the reported counts
    [one] = rows(wh_path, "resp_cut", view="calls")
    assert (one["token_source"], one["output_tokens"]) == ("reported", 3)


# -- watch -------------------------------------------------------------------------------------------


class TimedPasses(Passes):
    """A watcher advanced pass by pass, with a small open_record_timeout; counts reads per file name."""

    def __init__(self, logs: Path, wh: Path, timeout: float) -> None:
        super().__init__(logs, wh, ingest=IngestOptions(open_record_timeout=timeout))
        self.reads: dict[str, int] = {}
        read_file = self.watcher.run.read_file

        def counted(path: Path, *args: Any, **kwargs: Any) -> Any:
            self.reads[path.name] = self.reads.get(path.name, 0) + 1
            return read_file(path, *args, **kwargs)

        self.watcher.run.read_file = counted  # type: ignore[method-assign]


@pytest.fixture
def timed(logs: Path, wh_path: Path) -> Iterator[TimedPasses]:
    p = TimedPasses(logs, wh_path, timeout=60)
    yield p
    p.watcher.close()


def test_watch_cuts_off_a_stream_once_its_file_is_unchanged_for_the_timeout(timed: TimedPasses, tmp_path: Path,
                                                                            wh_path: Path) -> None:
    f = streams(tmp_path)
    whole = tmp_path / "logs" / "whole.sse"  # no open stream: never read again while unchanged
    whole.write_text((FIXTURES / "sse" / "streams.sse").read_text().replace("sse000", "wse000") + "data: [DONE]\n\n")
    timed.run()
    assert len(stored(wh_path)) == 7 and timed.reads == {"streams.sse": 1, "whole.sse": 1}
    timed.run(2)
    assert len(stored(wh_path)) == 7 and timed.reads == {"streams.sse": 1, "whole.sse": 1}
    age_by(f, 30)  # not yet the timeout (60 s): not read again
    age_by(whole, 3600)
    timed.run(2)
    assert rows(wh_path, CUT) == [] and timed.reads == {"streams.sse": 1, "whole.sse": 1}
    age_by(f, 61)
    timed.run()
    assert timed.reads == {"streams.sse": 2, "whole.sse": 1}
    [cut] = rows(wh_path, CUT)
    assert "stream_interrupted" in cut["estimate_flags"]
    timed.run(2)  # once per change: read no more
    assert timed.reads == {"streams.sse": 2, "whole.sse": 1}
    assert set(stored(wh_path).values()) == {1} and len(stored(wh_path)) == 8


def test_watch_reads_a_touched_file_once_per_change(timed: TimedPasses, tmp_path: Path, wh_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline decides by mtime; a re-read that did not cut (a clock that disagrees) is not repeated."""
    import ingest.pipeline

    f = streams(tmp_path)
    timed.run()
    age_by(f, 61)
    monkeypatch.setattr(ingest.pipeline, "_quiet", lambda *a, **k: False)
    timed.run(3)
    assert timed.reads == {"streams.sse": 2} and rows(wh_path, CUT) == []
    monkeypatch.undo()
    age_by(f, 62)  # changed (its mtime): tried again
    timed.run(2)
    assert timed.reads == {"streams.sse": 3} and len(rows(wh_path, CUT)) == 1


def test_watch_shutdown_cuts_off_only_a_stream_past_the_timeout(timed: TimedPasses, tmp_path: Path,
                                                                wh_path: Path) -> None:
    f = streams(tmp_path)
    timed.run()
    list(timed.watcher.drain_all())
    assert rows(wh_path, CUT) == []
    age_by(f, 61)
    list(timed.watcher.drain_all())
    assert len(rows(wh_path, CUT)) == 1 and len(stored(wh_path)) == 4


def test_watch_by_path_over_the_descriptor_cap_cuts_off_too(logs: Path, tmp_path: Path, wh_path: Path) -> None:
    p = TimedPasses(logs, wh_path, timeout=60)
    p.watcher.max_open = 0  # every file read by path
    try:
        f = streams(tmp_path)
        p.run(2)
        assert p.reads == {"streams.sse": 1} and rows(wh_path, CUT) == []
        age_by(f, 61)
        p.run(2)
        assert p.reads == {"streams.sse": 2} and len(rows(wh_path, CUT)) == 1
    finally:
        p.watcher.close()
