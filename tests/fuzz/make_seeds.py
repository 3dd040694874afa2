#!/usr/bin/env python3
"""make_seeds.py - (re)generate the committed seed corpora under tests/fuzz/corpus/<target>/.

    python3 tests/fuzz/make_seeds.py [MF_DATA]

Deterministic: generated reports (../shared/tools/gen_report.py, fixed rows and seeds), small
slices of the real reports in MF_DATA/reports (a few calls per process, other sections
dropped), and hand-made hostile cases. Files named x-<name> start with a control byte
(>= 0x80, see fuzz_extract.c) so the seed also picks a mode and a chunking. Keep it small:
the whole corpus stays well under 2 MB. Model seeds are trained by $MALFAM (default
build/malfam, `make` it first) on a few generated reports with tiny settings.
"""
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "MF_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data"))
GEN = os.path.join(DATA, "..", "tools", "gen_report.py")


def out(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gen(row, calls, fmt, seed=1):
    return subprocess.check_output([sys.executable, GEN, "--row", str(row), "--calls",
                                    str(calls), "--format", fmt, "--seed", str(seed)])


def real_slice(name, ncalls=3, nproc=3):
    path = os.path.join(DATA, "reports", name)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rb") as f:
        rep = json.load(f)
    procs = []
    for p in rep.get("behavior", {}).get("processes", [])[:nproc]:
        q = {k: v for k, v in p.items() if k in ("pid", "process_id", "process_name",
                                                  "parent_id", "ppid", "first_seen")}
        q["calls"] = p.get("calls", [])[:ncalls]
        procs.append(q)
    info = rep.get("info", {})
    return json.dumps({"info": {"id": info.get("id"), "version": info.get("version")},
                       "behavior": {"processes": procs}}, ensure_ascii=False)


def call(api, rep=None, **kw):
    c = {"api": api, "category": "x"}
    if rep is not None:
        c["repeated"] = rep
    c.update(kw)
    return c


def report(*procs, info_id=7):
    return json.dumps({"info": {"id": info_id}, "behavior": {"processes": list(procs)}})


def extract():
    t = "fuzz_extract"
    # generated, both layouts; x-* carry a control byte: bits 0-1 repeat, 2 grow, 3 stop, 4-7 k
    out(t, "gen_cuckoo2_r3_c20.json", gen(3, 20, "cuckoo2"))
    out(t, "gen_cape_r7_c12.json", gen(7, 12, "cape", 2))
    out(t, "x-gen_cape_expand_k1.json", b"\x91" + gen(11, 6, "cape", 3))
    out(t, "x-gen_cuckoo2_fold_grow_k3.json", b"\xb6" + gen(5, 8, "cuckoo2", 4))
    out(t, "x-gen_cape_asis_k7.json", b"\xf0" + gen(9, 6, "cape", 5))
    # real slices: Cuckoo 1.2 (process_id, argument lists), CAPE 2.2, Cuckoo 2.0.7
    out(t, "real_cuckoo12.json", real_slice("cuckoo12_drewboardman1.json.gz"))
    out(t, "real_cape22.json", real_slice("cape22_55dcd387.json"))
    out(t, "x-real_cuckoo207_stop.json", b"\x88" + real_slice("cuckoo207_benign_cmdkey.json")
        .encode())
    # small valid shapes
    out(t, "bare_processes.json", json.dumps({"processes": [
        {"process_id": 4, "process_name": "a.exe", "calls": [call("NtOpenFile"), call("x")]}]}))
    out(t, "no_behavior.json", '{"info": {"id": 1}, "target": {"file": {"name": "x"}}}')
    out(t, "empty_calls.json", report({"pid": 1, "process_name": "p", "calls": []}))
    out(t, "x-expand_big.json", b"\x81" + report({"pid": 1, "calls": [
        call("LdrLoadDll", 4294967295), call("ntreadfile", 1048576), call("a", 0)]}).encode())
    out(t, "x-fold_runs.json", b"\x86" + report({"pid": 2, "calls": [
        call("A"), call("a"), call("A", 3), call("b"), call("a")]}).encode())
    out(t, "keys_any_order.json", '{"behavior":{"processes":[{"calls":[{"repeated":2,'
        '"api":"NtClose"}],"process_name":"late.exe","pid":99}]},"info":{"id":3}}')
    out(t, "duplicate_keys.json", '{"behavior":{"processes":[{"pid":1,"pid":2,"calls":'
        '[{"api":"a","api":"b"}],"calls":[{"api":"c"}]}]},"behavior":{"processes":[]}}')
    # hostile: nesting, numbers, types, strings, truncation
    out(t, "deep_array.json", "[" * 300 + "]" * 300)
    out(t, "deep_in_call.json", '{"behavior":{"processes":[{"calls":[{"arguments":'
        + '{"a":[' * 70 + "1" + "]}" * 70 + ',"api":"deep"}]}]}}')
    out(t, "deep_unclosed.json", '{"a":' * 200)
    out(t, "huge_numbers.json", report({"pid": 1e999, "calls": [
        call("a", 0)]}).replace("Infinity", "1e999").replace('"repeated": 0',
        '"repeated": 99999999999999999999999999') + " ")
    out(t, "negative_repeated.json", report({"pid": -9223372036854775808,
                                             "calls": [call("a", -1)]}))
    out(t, "float_repeated.json", report({"pid": 1.5, "calls": [call("a", 2.5)]}))
    out(t, "info_id_types.json", '{"info":{"id":"12"},"behavior":{"processes":[]}}')
    out(t, "info_id_huge.json", '{"info":{"id":123456789012345678901234567890}}')
    for name, body in [("api_number", '{"api":5}'), ("api_null", '{"api":null}'),
                       ("api_object", '{"api":{"x":1}}'), ("api_empty", '{"api":""}'),
                       ("api_array", '{"api":["a"]}'), ("call_scalar", "3"),
                       ("repeated_string", '{"api":"a","repeated":"2"}'),
                       ("repeated_bool", '{"api":"a","repeated":true}')]:
        out(t, "type_" + name + ".json",
            '{"behavior":{"processes":[{"pid":1,"calls":[' + body + ']}]}}')
    for name, body in [("calls_object", '{"pid":1,"calls":{}}'), ("proc_string", '"p"'),
                       ("calls_null", '{"calls":null}'), ("pid_string", '{"pid":"1"}'),
                       ("name_number", '{"process_name":5}')]:
        out(t, "type_" + name + ".json", '{"behavior":{"processes":[' + body + ']}}')
    out(t, "type_processes_string.json", '{"behavior":{"processes":"x"}}')
    out(t, "type_behavior_array.json", '{"behavior":[1,2]}')
    out(t, "type_top_array.json", '[{"behavior":{"processes":[]}}]')
    out(t, "api_255.json", report({"calls": [call("a" * 255)]}))
    out(t, "api_256.json", report({"calls": [call("b" * 256)]}))
    out(t, "name_300.json", report({"process_name": "n" * 300, "calls": [call("a")]}))
    out(t, "utf8_bad_api.json", b'{"behavior":{"processes":[{"calls":[{"api":"Nt\xff\xfeX"},'
        b'{"api":"\xc0\xaf"},{"api":"\xed\xa0\x80"},{"api":"ok\xe2\x82"}]}]}}')
    out(t, "escapes_api.json", '{"behavior":{"processes":[{"calls":[{"api":"\\u0000nul"},'
        '{"api":"\\ud800"},{"api":"\\u00C9T\\u00e9"},{"api":"Ab\\"c\\\\"},{"api":"\\uDBFF\\uDFFF"}'
        ']}]}}')
    out(t, "utf8_bad_key.json", b'{"beh\xffavior":{"processes":[]},"\xf5":1}')
    full = gen(2, 5, "cape", 6)
    out(t, "truncated_half.json", full[:len(full) // 2])
    out(t, "truncated_in_string.json", b'{"behavior":{"processes":[{"calls":[{"api":"Ldr')
    out(t, "truncated_in_escape.json", b'{"behavior":{"processes":[{"calls":[{"api":"a\\u00')
    out(t, "trailing_garbage.json", '{"behavior":{"processes":[]}} {"x":1}')
    out(t, "comment.json", '/* c */ {"behavior":{"processes":[]}}')
    for name, data in [("empty", ""), ("space", "   \n"), ("null", "null"), ("number", "-0.5e3"),
                       ("string", '"x"'), ("open", "{"), ("nul_byte", '{"a"\x00:1}')]:
        out(t, "tiny_" + name + ".json", data)


def request():
    t = "fuzz_request"
    lines = [
        '{"op":"ping"}', '{"op":"stats","id":1}', '{"op":"reload","id":"r-1"}',
        '{"op":"classify","id":42,"path":"/srv/cuckoo/storage/analyses/7/reports/report.json",'
        '"mode":"knn","top":3,"write_back":true,"task_id":7}',
        '{"op":"classify_stream","id":{"a":[1,2]},"bytes":1048576,"task_id":12}\r',
        '{"id":null,"op":"classify","path":"rel/path.json","write_back":false,"x":[{"y":{}}]}',
        '{"op":"classify","path":"a\\u0000b"}', '{"op":"classify","path":""}',
        '{"op":"classify_stream","bytes":-1}', '{"op":"classify_stream","bytes":1e30}',
        '{"op":"classify_stream","bytes":99999999999999999999}', '{"op":"classify","top":0.5}',
        '{"op":"ping","op":"stats"}', '{"op":5}', '{"op":"PING"}', '{"op":"nope"}', '{}', '[]',
        '"ping"', '{"op":"ping"', '{"op":"ping"}{"op":"ping"}', '{"op":"ping"}   x',
        '{"op":"ping","id":"' + "i" * 300 + '"}',
        '{"op":"classify","path":"/' + "p" * 4100 + '"}',
        '{"op":"classify","mode":"' + "m" * 40 + '","path":"/x"}',
        '{"op":"ping","deep":' + "[" * 20 + "]" * 20 + "}",
        '{"op":"ping","id":"\\ud800\\u00e9"}', '{"op":"ping","id":1.5e-300}',
        '{"op":"classify","path":"/x","top":-3}', '{"op":"classify","path":"/x","top":"3"}',
        '{"op":"classify","path":["/x"]}', '{"op":"classify","path":"/x","write_back":1}',
    ]
    for i, line in enumerate(lines):
        out(t, "line_%02d.txt" % i, line)
    out(t, "bad_utf8.txt", b'{"op":"classify","path":"/a\xff\xfe\xc0\xaf"}')
    out(t, "empty.txt", "")
    out(t, "crlf.txt", '{"op":"stats"}\r\n')


def config():
    t = "fuzz_config"
    out(t, "full.ini", """; every key
[malfamd]
socket = /run/malfam/malfamd.sock
socket_mode = 0660
socket_group = cuckoo
model = /var/lib/malfam/malfam.model
allowed_roots = /tmp
allowed_roots = /
mode = knn
top = 3
unknown_threshold = 0.25
repeat = fold
max_report_bytes = 512M
max_jobs = 4
max_queue = 256
max_clients = 1024
idle_timeout = 60000
shutdown_timeout = 10000
max_request = 64K
log = syslog
log_level = debug
""")
    cases = {
        "empty.ini": "", "no_section.ini": "top = 3\n", "unknown_key.ini": "[malfamd]\nx = 1\n",
        "unknown_section.ini": "[other]\ntop = 3\n",
        "bad_numbers.ini": "[malfamd]\ntop = -1\nmax_jobs = 99999999999999999999\n"
                           "max_report_bytes = 18446744073709551615G\nunknown_threshold = nan\n",
        "sizes.ini": "[malfamd]\nmax_report_bytes = 1k\nmax_request = 0\nmax_queue = 0x10\n",
        "long_values.ini": "[malfamd]\nsocket = /" + "s" * 200 + "\nmode = " + "m" * 40 +
                           "\nsocket_group = " + "g" * 80 + "\n",
        "many_roots.ini": "[malfamd]\n" + "allowed_roots = /tmp\n" * 40,
        "continuation.ini": "[malfamd]\nmodel = /a\n  /continued\n;c\n#c\nrepeat=expand ; c\n",
        "no_equals.ini": "[malfamd]\njust a line\n[\n=\n",
        "crlf.ini": "[malfamd]\r\ntop = 2\r\nlog_level = warn\r\n",
        "nul_and_utf8.ini": b"[malfamd]\nsocket_group = a\x00b\nmode = \xff\xfe\n",
        "long_line.ini": "[malfamd]\nmodel = /" + "x" * 5000 + "\n",
        "socket_mode.ini": "[malfamd]\nsocket_mode = 0999\nsocket_mode = 77777777777\n",
        "log.ini": "[malfamd]\nlog = file\nlog_level = 9\n",
    }
    for name, data in cases.items():
        out(t, name, data)


def model():
    t = "fuzz_model"
    malfam = os.environ.get("MALFAM", os.path.join(HERE, "..", "..", "build", "malfam"))
    tiny = ["--epochs", "1", "--embed", "2", "--dense", "2", "--bptt", "4", "--batch", "2",
            "--threads", "1", "--quiet"]
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        reps = []
        for row in (1, 2, 3, 4):
            path = os.path.join(tmp, "r%d.json" % row)
            with open(path, "wb") as f:
                f.write(gen(row, 30, "cuckoo2" if row % 2 else "cape"))
            reps.append(path)
        for name, fams, extra in [("one_family", ["a", "a"], ["--hidden", "3", "--no-fold"]),
                                  ("two_families", ["fa", "fa", "fb", "fb"], ["--hidden", "4"]),
                                  ("three_families", ["a", "b", "c"],
                                   ["--hidden", "2", "--max-len", "6", "--gen-len", "5"]),
                                  # pattern after epoch 1 of 2: the file holds a SNAP section
                                  ("snapshot", ["fa", "fa", "fb", "fb"],
                                   ["--hidden", "3", "--epochs", "2", "--gen-epoch", "1"])]:
            lst = os.path.join(tmp, name + ".csv")
            with open(lst, "w") as f:
                for rep, fam in zip(reps, fams):
                    f.write("%s,%s\n" % (rep, fam))
            out_path = os.path.join(tmp, name + ".model")
            subprocess.check_call([malfam, "train", "--reports", lst, "--out", out_path,
                                   "--gen-len", "8", "--max-len", "20"] + tiny + extra,
                                  stdout=subprocess.DEVNULL)
            with open(out_path, "rb") as f:
                models[name] = f.read()
    for name, data in models.items():
        out(t, name + ".model", data)
    m = models["two_families"]
    # byte 12 = 0xEE: fuzz_model leaves length and CRC alone (so the CRC is redone here)
    raw = m[:12] + b"\xee" + m[13:-4]
    raw += struct.pack("<I", zlib.crc32(raw))
    out(t, "raw_intact.model", raw)
    out(t, "raw_bad_crc.model", raw[:-1] + bytes([raw[-1] ^ 1]))
    out(t, "raw_truncated.model", raw[:len(raw) // 2])
    out(t, "raw_version2.model", raw[:8] + struct.pack("<I", 2) + raw[12:])
    out(t, "raw_bad_magic.model", b"MALFAMMX" + raw[8:])
    s = models["snapshot"]
    assert s.find(b"SNAP", 24) > 0, "snapshot seed without its section"
    raw = s[:12] + b"\xee" + s[13:-4]
    raw += struct.pack("<I", zlib.crc32(raw))
    out(t, "raw_snapshot_intact.model", raw)
    out(t, "truncated.model", m[:100])
    out(t, "header_only.model", m[:24] + b"\0\0\0\0")
    out(t, "section_huge_len.model", m[:24] + struct.pack("<IIQ", 0x42434f56, 0, 1 << 62)
        + b"\0" * 8)


def writeback():
    t = "fuzz_writeback"
    out(t, "gen_cape_r7_c5.json", gen(7, 5, "cape", 7))
    out(t, "gen_cuckoo2_r4_c5_labelled.json", gen(4, 5, "cuckoo2", 8)[:-2] +
        b', "malfam": {"families": [{"family": "old", "score": 0.1}]}}\n')
    out(t, "real_cape22_slice.json", real_slice("cape22_55dcd387.json", 2, 2))
    cases = {
        "empty_object.json": "{}", "empty_object_ws.json": " \n\t{ \r\n}\n\n",
        "malfam_scalar.json": '{"a":1,"malfam":null}', "malfam_first.json": '{"malfam":"x","b":[]}',
        "malfam_twice.json": '{"malfam":1,"x":{"malfam":2},"malfam":[{"}":"]"}]}',
        "malfam_nine.json": "{" + ",".join(['"malfam":%d' % i for i in range(9)]) + "}",
        "malfam_escaped_key.json": '{"malf\\u0061m":1,"malfam\\"":2,"m":3}',
        "tricky_strings.json": '{"a":"}\\\\","b":"\\"{[","c":["]\\\\\\"}"],"d":{"e":"\\\\"}}',
        "scalars.json": '{"t":true,"f":false,"n":null,"x":-1.5e+300,"y":0}',
        "deep.json": '{"a":' + "[" * 200 + "]" * 200 + "}",
        "nested_malfam.json": '{"behavior":{"malfam":1},"malfam":{"a":{"b":[1,{"c":"}"}]}}}',
        "trailing_bytes.json": '{"a":1} x', "two_objects.json": '{"a":1}{"b":2}',
        "top_array.json": "[1,2]", "no_close.json": '{"a":1', "bare_scalar.json": "42",
        "missing_colon.json": '{"a" 1}', "missing_value.json": '{"a":}', "lone_comma.json": '{,}',
        "comment.json": '{"a":1 /* } */}', "bom.json": b'\xef\xbb\xbf{"a":1}',
        "nul_in_string.json": b'{"a":"x\x00y"}', "bad_utf8.json": b'{"a":"\xff"}',
        "scalar_then_ws.json": '{"a":12 \n,"b":true\t}',
    }
    for name, data in cases.items():
        out(t, name, data)


def stream():
    t = "fuzz_stream"

    def req(body, mode=None, nbytes=None, rid='"s"', top=None):
        r = '{"op":"classify_stream","id":%s,"bytes":%d' % (rid, len(body) if nbytes is None
                                                            else nbytes)
        if mode:
            r += ',"mode":"%s"' % mode
        if top:
            r += ',"top":%d' % top
        return (r + "}\n").encode() + body

    small = gen(3, 12, "cuckoo2", 9)
    cape = gen(8, 10, "cape", 10)
    for mode in ("combo", "knn", "nn", "paper", "likelihood", "multiset", "ngram", "fusion", "linear"):
        out(t, "mode_%s.txt" % mode, req(small if mode != "knn" else cape, mode, top=2))
    out(t, "real_cuckoo12_slice.txt", req(real_slice("cuckoo12_drewboardman1.json.gz").encode()))
    out(t, "body_short.txt", req(small[:300], nbytes=len(small)))
    out(t, "body_longer.txt", req(small, nbytes=200) + b'\n{"op":"ping"}\n')
    out(t, "bytes_zero.txt", req(b"", nbytes=0))
    out(t, "bad_report.txt", req(b'{"behavior":{"processes":[{"calls":[{"api":5}]}]}}'))
    out(t, "unknown_apis.txt", req(b'{"behavior":{"processes":[{"calls":[{"api":"zz"},'
                                   b'{"api":"yy","repeated":4}]}]}}'))
    out(t, "no_behavior.txt", req(b'{"info":{"id":3}}', mode="likelihood"))
    out(t, "bad_mode.txt", req(small, mode="nope"))
    out(t, "not_stream.txt", b'{"op":"classify","path":"/x"}\n{}')
    out(t, "write_back.txt", b'{"op":"classify_stream","bytes":2,"write_back":true}\n{}')


if __name__ == "__main__":
    extract()
    stream()
    writeback()
    request()
    config()
    model()
