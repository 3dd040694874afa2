"""malfam_client against the fake daemon: framing, streaming, every failure mode."""

import io
import json
import os
import time

import pytest

import malfam_client as mc
from fakedaemon import count_calls
from runner import CapeCalls, LazyCalls, MeasuredError, load_report, lazy_results

SLACK = 0.5   # scheduling slack allowed on top of a timeout


def procs_of(report, kind=LazyCalls):
    return lazy_results(report, kind)["behavior"]["processes"]


def test_write_behavior_iterates_lazy_calls_once_and_never_measures_them():
    report = load_report("cuckoo207_benign_cmdkey.json")
    procs = procs_of(report)
    out = io.BytesIO()
    nbytes, ncalls = mc.write_behavior(procs, out)
    assert [p["calls"].passes for p in procs] == [1, 1]
    assert nbytes == len(out.getvalue())
    doc = json.loads(out.getvalue().decode("ascii"))
    assert ncalls == count_calls(doc) == 33
    assert [p.get("process_name") for p in doc["processes"]] == ["lsass.exe", "cmdkey.exe"]
    first = doc["processes"][1]["calls"][0]
    assert set(first) <= set(mc.CALL_KEYS) and "arguments" not in first


def test_lazy_double_really_catches_measuring():
    calls = LazyCalls([{"api": "NtClose"}])
    with pytest.raises(MeasuredError):
        len(calls)
    with pytest.raises(MeasuredError):
        bool(calls)


def test_write_behavior_cape_layout_keeps_repeated_and_non_ascii():
    procs = [{"process_id": 1, "process_name": u"\u0410\u043d\u043d\u0430.exe",
              "calls": CapeCalls([{"api": "NtClose", "repeated": 3, "thread_id": "12",
                                   "arguments": [{"name": "h", "value": b"\xff"}]}])}]
    out = io.BytesIO()
    _, ncalls = mc.write_behavior(procs, out)
    doc = json.loads(out.getvalue().decode("ascii"))
    assert ncalls == 1
    assert doc["processes"][0]["process_name"] == u"\u0410\u043d\u043d\u0430.exe"
    assert doc["processes"][0]["calls"] == [{"api": "NtClose", "repeated": 3,
                                             "thread_id": "12"}]


def test_write_behavior_rejects_a_call_that_is_not_a_mapping():
    with pytest.raises(mc.MalfamError) as e:
        mc.write_behavior([{"calls": ["NtClose"]}], io.BytesIO())
    assert e.value.code == mc.E_INPUT


def test_classify_sends_absolute_path_and_options(fake, tmp_path):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(load_report("cuckoo207_benign_cmdkey.json")))
    os.chdir(str(tmp_path))
    answer = mc.Client(fake.path, 2).classify("report.json", write_back=False, top=2,
                                              task_id="71")
    req = fake.requests[-1]
    assert req["op"] == "classify" and req["path"] == str(path)
    assert req["write_back"] is False and req["top"] == 2 and req["task_id"] == 71
    assert answer["calls"] == 33 and len(answer["families"]) == 2


def test_classify_stream_sends_exact_byte_count(fake):
    report = load_report("cuckoo207_benign_cmdkey.json")
    answer = mc.Client(fake.path, 2).classify_stream(procs_of(report), top=3, task_id=71)
    req = fake.requests[-1]
    assert req["op"] == "classify_stream" and req["bytes"] == len(fake.bodies[-1])
    assert answer["calls"] == 33 == answer["sent_calls"]


def test_ping_and_stats(fake):
    c = mc.Client(fake.path, 2)
    assert c.ping()["ok"] is True
    assert c.stats()["model"] == "fake-1"


def test_missing_socket_is_unavailable_at_once(sockdir):
    t = time.time()
    with pytest.raises(mc.MalfamError) as e:
        mc.Client(os.path.join(sockdir, "absent.sock"), 3).ping()
    assert e.value.code == mc.E_UNAVAILABLE and "is malfamd running" in e.value.message
    assert time.time() - t < 0.5


def test_socket_file_without_listener_is_unavailable(fake):
    fake.close()
    open(fake.path, "w").close()        # a stale socket path left behind
    with pytest.raises(mc.MalfamError) as e:
        mc.Client(fake.path, 1).ping()
    assert e.value.code == mc.E_UNAVAILABLE


@pytest.mark.parametrize("mode,code", [("garbage", mc.E_PROTO), ("error", "MF_EJSON"),
                                       ("close", mc.E_IO)])
def test_bad_answers(fake, mode, code):
    fake.mode = mode
    with pytest.raises(mc.MalfamError) as e:
        mc.Client(fake.path, 2).ping()
    assert e.value.code == code


def test_slow_daemon_times_out_inside_the_timeout(fake):
    fake.mode, fake.delay = "slow", 5
    t = time.time()
    with pytest.raises(mc.MalfamError) as e:
        mc.Client(fake.path, 0.5).ping()
    assert e.value.code == mc.E_TIMEOUT
    assert time.time() - t < 0.5 + SLACK


def test_daemon_that_never_reads_times_out_while_we_send(fake):
    # Enough bytes to fill the socket buffers, so send() itself blocks.
    fake.mode = "silent"
    procs = [{"pid": 1, "calls": LazyCalls([{"api": "NtReadFile" + "x" * 200}] * 20000)}]
    t = time.time()
    with pytest.raises(mc.MalfamError) as e:
        mc.Client(fake.path, 0.5).classify_stream(procs)
    assert e.value.code == mc.E_TIMEOUT
    assert time.time() - t < 0.5 + SLACK + 1.0   # + spooling 20k calls


def test_answer_with_wrong_id_is_refused(fake, monkeypatch):
    c = mc.Client(fake.path, 2)
    monkeypatch.setattr(c, "_recv_line", lambda s, d: b'{"id":"other","ok":true}')
    with pytest.raises(mc.MalfamError) as e:
        c.ping()
    assert e.value.code == mc.E_PROTO


def test_option_reads_every_host_flavour():
    assert mc.option({"timeout": "2.5"}, "timeout", 5.0, float) == 2.5     # CAPE text
    assert mc.option({"timeout": 3}, "timeout", 5.0, float) == 3.0         # CAPE int
    assert mc.option({"write_back": "no"}, "write_back", True, bool) is False
    assert mc.option({"write_back": False}, "write_back", True, bool) is False
    assert mc.option({"top": "x"}, "top", 3, int) == 3
    assert mc.option({}, "socket", "/s", str) == "/s"
    assert mc.option(None, "top", 3, int) == 3


def test_top_family_respects_unknown_and_min_score():
    r = {"families": [{"family": "Trojan", "score": 0.41}], "unknown": False}
    assert mc.top_family(r, 0.4) == ("Trojan", 0.41)
    assert mc.top_family(r, 0.5) is None
    assert mc.top_family(dict(r, unknown=True), 0.1) is None
    assert mc.top_family({"error": "x"}, 0.0) is None
    # linear/fusion answers: the score is a decision value, novelty is a similarity
    r = {"families": [{"family": "Virus", "score": 1.3}], "unknown": False, "novelty": 0.31}
    assert mc.top_family(r, 0.3) == ("Virus", 1.3)
    assert mc.top_family(r, 0.5) is None
    assert mc.top_family(dict(r, novelty="bad"), 0.0) is None


def test_detection_text_shows_probability_when_there_is_one():
    """A badge reads 'p 83%' for a linear answer, never its negative decision value."""
    assert mc.detection_text({"families": [{"family": "X", "score": -0.12, "p": 0.834}]}) \
        == "p 83%"
    assert mc.detection_text({"families": [{"family": "X", "score": 0.41}]}) \
        == "raw score 0.41, not a probability"
    assert mc.detection_text({"families": [{"family": "X", "score": 0.41}], "mode": "knn"}) \
        == "raw knn score 0.41, not a probability"
    assert mc.detection_text({"families": []}) == "malfam"
