# malfam - client for the malfamd Unix socket.
# Part of malfam; see README.md ("Daemon protocol", "Using with Cuckoo / CAPE").
#
# Standard library only, and valid on Python 2.7 (Cuckoo 2.0.7) as well as Python 3
# (CAPEv2): no f-strings, no pathlib, every byte that goes on the wire is encoded here.
"""Talk to malfamd: newline-delimited JSON over a Unix stream socket.

    c = Client("/run/malfam/malfamd.sock", timeout=5)
    c.classify("/.../reports/report.json", write_back=True, top=3, task_id=7)
    c.classify_stream(results["behavior"]["processes"], task_id=7)

Every failure (daemon down, socket missing, timeout, an answer that is not JSON, an
``ok: false`` answer) raises MalfamError, whose ``code`` is the daemon's MF_E* name or one
of the client-side names below. The host adapters turn it into ``{"error": ...}``.

``timeout`` bounds the whole exchange with the daemon (connect, send, wait for the answer)
as one deadline, not each socket call: a daemon that trickles bytes cannot stretch it.
Time spent iterating the host's lazy ``calls`` (classify_stream) happens before the
deadline starts: that is the sandbox re-reading its own logs, not waiting for us.
"""

import errno
import json
import logging
import os
import socket
import sys
import tempfile
import time

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/run/malfam/malfamd.sock"
DEFAULT_TIMEOUT = 5.0
MAX_ANSWER = 1 << 20        # an answer is a few KB; a longer line means something is wrong
CHUNK = 64 * 1024

# Client-side error codes, in the daemon's MF_E* style.
E_UNAVAILABLE = "MF_EUNAVAILABLE"   # no socket file, nobody listening, permission denied
E_TIMEOUT = "MF_ETIMEDOUT"          # the deadline passed
E_PROTO = "MF_EPROTO"               # answer not JSON, not an object, too long, wrong id
E_IO = "MF_EIO"                     # the connection broke mid-exchange
E_INPUT = "MF_EINPUT"               # the host handed us something we cannot serialise

PY2 = sys.version_info[0] == 2
if PY2:  # pragma: no cover - exercised by the Python 2.7 run of the tests
    text_type = unicode  # noqa: F821 (Python 2 name)
    binary_type = str
    integer_types = (int, long)  # noqa: F821
else:
    text_type = str
    binary_type = bytes
    integer_types = (int,)


class MalfamError(Exception):
    """A failed exchange with malfamd. ``code`` is an MF_E* name, ``message`` the detail."""

    def __init__(self, code, message):
        Exception.__init__(self, "%s: %s" % (code, message))
        self.code = code
        self.message = message


def _text(value):
    """A value as unicode text for JSON: Python 2 byte strings are decoded leniently."""
    if isinstance(value, binary_type):
        return value.decode("utf-8", "replace")
    if isinstance(value, text_type):
        return value
    return text_type(value)


def _encode_line(obj):
    # ensure_ascii: the line is pure ASCII on both Pythons, so encoding cannot fail.
    return (json.dumps(obj, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


# ---- the behavior document for classify_stream ----------------------------------------------

# Per-process keys we forward (Cuckoo 2 names, then the CAPE / Cuckoo 1 names). Everything
# else (environ, modules, threads...) is left out: the daemon only scores API sequences.
PROCESS_KEYS = ("pid", "ppid", "process_id", "parent_id", "process_name")
# Per-call keys we forward. `arguments` is dropped: it is most of the bytes, may hold values
# JSON cannot encode, and the model does not read it. `repeated` matters (CAPE folding).
CALL_KEYS = ("api", "category", "status", "repeated", "tid", "thread_id")


def _scalar(value):
    """A JSON-safe copy of a scalar field value (None for anything else)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, integer_types) or isinstance(value, float):
        return value
    if isinstance(value, (binary_type, text_type)):
        return _text(value)
    return None


def _slim(item, keys):
    out = {}
    for k in keys:
        if k in item:
            v = _scalar(item[k])
            if v is not None or item[k] is None:
                out[k] = v
    return out


def write_behavior(processes, out):
    """Write ``{"processes":[...]}`` for ``processes`` to the binary file ``out``.

    Each process's ``calls`` is iterated exactly once, in order, and written as it goes: it
    may be a lazy iterable that re-reads the sandbox's raw logs (Cuckoo 2 ParseProcessLog,
    CAPE's empty-looking list subclass), so it is never measured, tested for truth or copied.
    Returns (bytes written, calls written). Raises MalfamError(E_INPUT) on a call that is not
    a mapping.
    """
    nbytes = 0
    ncalls = 0

    def put(s):
        data = s.encode("ascii") if isinstance(s, text_type) else s
        out.write(data)
        return len(data)

    dumps = json.dumps
    nbytes += put('{"processes":[')
    first_proc = True
    for proc in processes:
        head = dumps(_slim(proc, PROCESS_KEYS), ensure_ascii=True, separators=(",", ":"))
        # head is "{...}": reopen it to append the calls array.
        nbytes += put(("" if first_proc else ",") + head[:-1] + ("," if head != "{}" else "")
                      + '"calls":[')
        first_proc = False
        calls = proc.get("calls") if hasattr(proc, "get") else None
        if calls is not None:
            sep = ""
            for call in calls:
                if not hasattr(call, "get"):
                    raise MalfamError(E_INPUT, "call #%d is a %s, not a mapping"
                                      % (ncalls, type(call).__name__))
                nbytes += put(sep + dumps(_slim(call, CALL_KEYS), ensure_ascii=True,
                                          separators=(",", ":")))
                sep = ","
                ncalls += 1
        nbytes += put("]}")
    nbytes += put("]}")
    return nbytes, ncalls


# ---- the connection ------------------------------------------------------------------------


class _Deadline(object):
    def __init__(self, seconds):
        self.end = time.time() + seconds

    def left(self):
        left = self.end - time.time()
        if left <= 0:
            raise MalfamError(E_TIMEOUT, "no answer from malfamd in time")
        return left


class Client(object):
    """A malfamd client. One connection per request: cheap on a Unix socket, and a broken
    exchange never leaves a half-read answer for the next one."""

    def __init__(self, socket_path=DEFAULT_SOCKET, timeout=DEFAULT_TIMEOUT):
        self.socket_path = socket_path
        self.timeout = float(timeout)
        self._next_id = 0

    # -- public operations

    def ping(self):
        return self.request({"op": "ping"})

    def stats(self):
        return self.request({"op": "stats"})

    def reload(self):
        return self.request({"op": "reload"})

    def classify(self, path, write_back=False, top=None, task_id=None, mode=None):
        """Score the report file at ``path`` (the daemon reads it; it must lie under the
        daemon's allowed_roots). With write_back the daemon also stores the answer under the
        top-level key ``malfam`` of that file. ``mode`` names a scoring mode (e.g. "knn",
        "linear"; None = the daemon's configured one)."""
        req = {"op": "classify", "path": _text(os.path.abspath(path)),
               "write_back": bool(write_back)}
        self._options(req, top, task_id, mode)
        return self.request(req)

    def classify_stream(self, processes, top=None, task_id=None, spool_dir=None,
                        write_back_path=None, mode=None):
        """Score a behavior trace held by the host (``results["behavior"]["processes"]``).

        The request needs the body length up front, so the calls are first written, in one
        pass, to an anonymous temporary file (in ``spool_dir`` or $TMPDIR), then sent from
        it. Memory stays flat whatever the trace length. The answer gets ``sent_calls``: how
        many call entries we sent (not expanded by ``repeated``).

        With ``write_back_path`` (a report.json under the daemon's allowed_roots) the daemon
        also stores this answer under its top-level key ``malfam``, replacing any earlier
        one: the fallback for a report.json whose calls were stripped."""
        req = {"op": "classify_stream"}
        if write_back_path:
            req["path"] = _text(os.path.abspath(write_back_path))
            req["write_back"] = True
        self._options(req, top, task_id, mode)
        spool = tempfile.TemporaryFile(prefix="malfam-", dir=spool_dir)
        try:
            nbytes, ncalls = write_behavior(processes, spool)
            spool.flush()
            spool.seek(0)
            req["bytes"] = nbytes
            answer = self.request(req, body=spool, body_len=nbytes)
        finally:
            spool.close()
        answer["sent_calls"] = ncalls
        return answer

    # -- the exchange

    def _options(self, req, top, task_id, mode=None):
        if top is not None:
            req["top"] = int(top)
        if mode is not None:
            req["mode"] = _text(mode)
        if task_id is not None:
            try:
                req["task_id"] = int(task_id)
            except (TypeError, ValueError):
                pass  # the daemon only logs it; a non-numeric id is not worth a failure

    def request(self, req, body=None, body_len=0):
        """Send one request (plus ``body_len`` bytes read from file ``body``) and return the
        answer as a dict. Raises MalfamError."""
        self._next_id += 1
        req = dict(req)
        req["id"] = "%d-%d" % (os.getpid(), self._next_id)
        deadline = _Deadline(self.timeout)
        sock = self._connect(deadline)
        try:
            self._send(sock, _encode_line(req), deadline)
            if body is not None:
                left = body_len
                while left > 0:
                    chunk = body.read(min(CHUNK, left))
                    if not chunk:
                        raise MalfamError(E_INPUT, "spool file ended %d bytes early" % left)
                    self._send(sock, chunk, deadline)
                    left -= len(chunk)
            line = self._recv_line(sock, deadline)
        finally:
            sock.close()
        return self._decode(line, req["id"])

    def _connect(self, deadline):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(deadline.left())
            sock.connect(self.socket_path)
        except socket.timeout:
            sock.close()
            raise MalfamError(E_TIMEOUT, "connect %s: timed out" % self.socket_path)
        except (socket.error, OSError) as e:
            sock.close()
            raise MalfamError(E_UNAVAILABLE, "connect %s: %s" % (self.socket_path, _strerror(e)))
        return sock

    def _send(self, sock, data, deadline):
        view = memoryview(data)
        while len(view):
            sock.settimeout(deadline.left())
            try:
                n = sock.send(view)
            except socket.timeout:
                raise MalfamError(E_TIMEOUT, "send to malfamd: timed out")
            except (socket.error, OSError) as e:
                raise MalfamError(E_IO, "send to malfamd: %s" % _strerror(e))
            view = view[n:]

    def _recv_line(self, sock, deadline):
        parts = []
        size = 0
        while True:
            sock.settimeout(deadline.left())
            try:
                data = sock.recv(CHUNK)
            except socket.timeout:
                raise MalfamError(E_TIMEOUT, "no answer from malfamd in %.1f s" % self.timeout)
            except (socket.error, OSError) as e:
                raise MalfamError(E_IO, "recv from malfamd: %s" % _strerror(e))
            if not data:
                raise MalfamError(E_IO, "malfamd closed the connection without an answer")
            nl = data.find(b"\n")
            if nl >= 0:
                parts.append(data[:nl])
                return b"".join(parts)
            parts.append(data)
            size += len(data)
            if size > MAX_ANSWER:
                raise MalfamError(E_PROTO, "answer longer than %d bytes" % MAX_ANSWER)

    def _decode(self, line, req_id):
        try:
            answer = json.loads(line.decode("utf-8"))
        except ValueError as e:  # UnicodeDecodeError is a ValueError too
            raise MalfamError(E_PROTO, "answer is not JSON (%s): %r" % (e, line[:80]))
        if not isinstance(answer, dict):
            raise MalfamError(E_PROTO, "answer is not a JSON object: %r" % line[:80])
        if "id" in answer and answer["id"] not in (None, req_id):
            raise MalfamError(E_PROTO, "answer id %r does not match request id %r"
                              % (answer["id"], req_id))
        if answer.get("ok") is not True:
            raise MalfamError(_text(answer.get("error") or E_PROTO),
                              _text(answer.get("message") or "request failed"))
        return answer


def _strerror(e):
    code = getattr(e, "errno", None)
    if code in (errno.ENOENT, errno.ECONNREFUSED, errno.EACCES):
        return "%s (is malfamd running?)" % os.strerror(code)
    return str(e)


# ---- what the host adapters share ------------------------------------------------------------

# Keys of an answer that are worth keeping in the sandbox's results (small, display-ready).
# ``novelty`` stays: top_family() compares it with min_score (in the linear mode the top score
# is negative, so without it add_detection would almost never fire).
# ``note`` says "no trace" or "no known calls" when nothing was ranked.
RESULT_KEYS = ("families", "unknown", "novelty", "threshold", "note", "mode", "model", "calls",
               "ms", "explain", "v", "sent_calls")


def option(options, name, default, kind):
    """Read one host config option, whatever the host made of it.

    Cuckoo 2 types values by its schema, CAPE guesses (yes -> True, 5 -> 5, 0.5 -> "0.5"),
    tests pass plain dicts: accept all of them and fall back to ``default`` on junk."""
    value = options.get(name, default) if options is not None else default
    if value is None or value == "":
        return default
    try:
        if kind is bool:
            if isinstance(value, (binary_type, text_type)):
                return _text(value).strip().lower() in ("1", "yes", "true", "on")
            return bool(value)
        return kind(value)
    except (TypeError, ValueError):
        log.warning("malfam: bad value %r for option %s, using %r", value, name, default)
        return default


def client_from_options(options):
    return Client(option(options, "socket", DEFAULT_SOCKET, str),
                  option(options, "timeout", DEFAULT_TIMEOUT, float))


def to_result(answer, via):
    """The part of an answer that goes under results["malfam"], plus how we got it."""
    out = dict((k, answer[k]) for k in RESULT_KEYS if k in answer)
    out["via"] = via
    return out


def error_result(err):
    """results["malfam"] for a failed request: never raises, always a non-empty dict (Cuckoo 2
    drops falsy results)."""
    if isinstance(err, MalfamError):
        return {"error": "%s: %s" % (err.code, err.message), "code": err.code}
    return {"error": "%s: %s" % (type(err).__name__, err), "code": E_IO}


def top_family(result, min_score):
    """(family, score) of the best guess if it is trusted enough to promote, else None: not
    unknown, and its novelty (what malfamd compares with the unknown threshold: similarity to
    the closest training traces in the reference modes, the top score in the others) at
    least min_score. Answers without novelty fall back to the top score."""
    if not result or "error" in result or result.get("unknown"):
        return None
    families = result.get("families") or []
    if not families:
        return None
    best = families[0]
    try:
        score = float(best.get("score"))
    except (TypeError, ValueError):
        return None
    try:
        novelty = float(result.get("novelty", score))
    except (TypeError, ValueError):
        return None
    if not best.get("family") or novelty < min_score:
        return None
    return best["family"], score


def detection_text(result):
    """What a detection badge says of the top family: its calibrated probability as a
    percentage when the answer has one (every mode with a temperature), else the raw score named as such (it is
    no probability, whatever its size)."""
    best = (result.get("families") or [{}])[0]
    p = best.get("p")
    if isinstance(p, (int, float)):
        return "p %d%%" % int(round(100 * p))
    score = best.get("score")
    if not isinstance(score, (int, float)):
        return "malfam"
    mode = result.get("mode")
    return "raw %sscore %.2f, not a probability" % (mode + " " if mode else "", score)


def detections_as_list(results):
    """Make CAPE's ``results["detections"]`` a list of ``{"family", "details"}`` blocks, the
    shape ``add_family_detection`` appends to, and return it. Results of the 2.2 era (or
    reprocessed from such a report) hold a plain family string there, on which CAPE's helper
    raises AttributeError: it becomes one block with no details (the string named no source).
    Anything else that is not a list is replaced by an empty list."""
    value = results.get("detections")
    if isinstance(value, list):
        return value
    if isinstance(value, (binary_type, text_type)) and _text(value).strip():
        value = [{"family": _text(value).strip(), "details": []}]
    else:
        value = []
    results["detections"] = value
    return value


# Defaults of the host-side options, shared by every adapter and by the Cuckoo 2 schema.
DEFAULTS = {"enabled": False, "socket": DEFAULT_SOCKET, "timeout": DEFAULT_TIMEOUT, "top": 3,
            "write_back": True, "add_detection": False, "min_score": 0.0}


def cuckoo2_register_schema(file_name):
    """Add the [malfam] section to Cuckoo 2's config schema for ``file_name`` ("processing" or
    "reporting"), unless it is there, and forget any parsed copy of that file that Cuckoo
    cached before we were imported (it would have dropped our unknown section)."""
    from cuckoo.common import config as cc

    table = cc.Config.configuration.setdefault(file_name, {})
    if "malfam" not in table:
        d = DEFAULTS
        table["malfam"] = {
            "enabled": cc.Boolean(d["enabled"]),
            "socket": cc.String(d["socket"]),
            "timeout": cc.String(str(d["timeout"])),      # seconds, may be fractional
            "top": cc.Int(d["top"]),
            "write_back": cc.Boolean(d["write_back"]),
            "add_detection": cc.Boolean(d["add_detection"]),
            "min_score": cc.String(str(d["min_score"])),
        }
    cache = getattr(cc, "_cache", None)
    if isinstance(cache, dict):
        for index in list(cache):
            if isinstance(index, tuple) and index and index[0] == file_name:
                del cache[index]


def label(client, report_path, processes, write_back=True, top=None, task_id=None,
          calls_stripped=False):
    """The reporting-stage flow shared by the CAPE and Cuckoo 2 reporting modules.

    1. When ``report_path`` exists and its calls were not stripped, ask the daemon to score
       the file (and, with write_back, store the answer in it).
    2. When that answer saw no calls (``json.calls=0``, CAPE's lazy call lists dumped empty),
       or the file is missing, stream the calls the host still holds in ``processes``; with
       write_back the daemon stores the streamed answer in the file, replacing the "no
       calls" one step 1 wrote, so report.json and results["malfam"] agree.
    Returns the dict for results["malfam"]; never raises.
    """
    try:
        have_file = bool(report_path) and os.path.isfile(report_path)
        if have_file and not calls_stripped:
            answer = client.classify(report_path, write_back=write_back, top=top,
                                     task_id=task_id)
            if answer.get("calls") or processes is None:
                return to_result(answer, "report")
            log.info("malfam: task %s: %s holds no calls, streaming them from the results",
                     task_id, report_path)
        if processes is None:
            return {"error": "%s: no report.json and no behavior to stream" % E_INPUT,
                    "code": E_INPUT}
        target = report_path if write_back and have_file else None
        return to_result(client.classify_stream(processes, top=top, task_id=task_id,
                                                write_back_path=target), "stream")
    except MalfamError as e:
        log.warning("malfam: task %s: %s", task_id, e)
        return error_result(e)
    except Exception as e:  # whatever happens, the analysis goes on
        log.warning("malfam: task %s: unexpected %s: %s", task_id, type(e).__name__, e)
        return error_result(e)


def behavior_processes(results):
    """results["behavior"]["processes"] or None. The list itself is a real list in both hosts;
    only each process's ``calls`` is lazy, and we leave that alone here."""
    behavior = results.get("behavior") if hasattr(results, "get") else None
    if not hasattr(behavior, "get"):
        return None
    return behavior.get("processes")
