"""The one frame codec of the launcher (standard library only), and its two uses.

A frame is one kind byte, a 4-byte big-endian length and that many bytes of payload; JSON
payloads are decoded by :func:`decode_json`, which refuses (``FrameError``) anything that is
not a small JSON object (bad UTF-8, nesting deeper than ``MAX_DEPTH``, integers longer than
18 digits) without ever raising anything else.

**Control socket** (worker shim <-> ringrun). A connection starts with the job's token, raw
(``TOKEN_SIZE`` bytes): ringrun compares it before it parses a single frame and closes the
connection at the first wrong byte. Then frames:

    H  shim -> ringrun  hello, JSON {"rank", "pid", "host"}: opens the control connection
    X  shim -> ringrun  exit, JSON {"returncode"} (negative: killed by that signal) and what the
                        shim learnt (_worker.Shim.report): "frozen" {"seconds", "state"}, "left"
                        (ended while others waited in a collective), "after" (failed only because
                        that rank left first); the last frame
    S  ringrun -> shim  stop: terminate the program (SIGTERM, then SIGKILL after a grace period)
    A  shim -> ringrun  attach, JSON {"rank", "stream": 1 or 2}: the rest of this connection
                        is the raw stdout (1) or stderr (2) of the program

The address and token reach the shim in the launcher-private variable ``RINGRUN_CONTROL``
(``host:port:token``, or ``/path/to/socket:token`` for a Unix socket), which the shim removes
before starting the program.

**Rendezvous** (``cluster_rendezvous``): every message is one ``M`` frame holding a JSON object.
"""

from __future__ import annotations

import json
import struct

HELLO, EXIT, STOP, ATTACH, MESSAGE = b"H", b"X", b"S", b"A", b"M"
_HEADER = struct.Struct("!cI")
HEADER_SIZE = _HEADER.size
#: The control token: 16 random bytes as 32 hex characters (``secrets.token_hex(16)``).
TOKEN_SIZE = 32
#: Largest control-socket payload (a hello or an exit report is well under 1 KiB).
MAX_PAYLOAD = 4096
#: Deepest JSON nesting accepted in a frame (ours nest at most 2 levels).
MAX_DEPTH = 8
#: Digits of the longest JSON integer accepted (Python refuses to convert more than 4300).
MAX_DIGITS = 18


class FrameError(ValueError):
    """Bytes that are not a frame we accept: too long, not JSON, not an object, too deep."""


def encode(kind: bytes, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def encode_json(kind: bytes, obj: object) -> bytes:
    return encode(kind, json.dumps(obj, separators=(",", ":")).encode())


def json_nesting(text: str, limit: int = MAX_DEPTH) -> tuple[int, str] | None:
    """(depth, where) when JSON ``text`` nests deeper than ``limit``, else None; ``where`` is
    the path of the first container too deep (``task[0][0]...``). Iterative and linear, so it
    runs before the recursive parser; brackets inside strings do not count."""
    stack: list[list] = []          # per open container: [bracket, key or index]
    last_string, start = "", -1
    deepest, path = 0, ""
    in_string = escaped = False
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string, last_string = False, text[start:i]
        elif char == '"':
            in_string, start = True, i + 1
        elif char == ":" and stack and stack[-1][0] == "{":
            stack[-1][1] = last_string
        elif char == "," and stack and stack[-1][0] == "[":
            stack[-1][1] += 1
        elif char in "[{":
            if len(stack) == limit and not path:
                steps = [f".{key}" if bracket == "{" else f"[{key}]" for bracket, key in stack]
                path = "".join(steps[:5]).lstrip(".") + ("..." if len(steps) > 5 else "")
            stack.append([char, None if char == "{" else 0])
            deepest = max(deepest, len(stack))
        elif char in "]}" and stack:
            stack.pop()
    return (deepest, path or "the top level") if deepest > limit else None


class HugeInt:
    """A JSON integer too long to be a count or an index, kept as its digit count."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"a {self.digits}-digit number"


def _parse_int(text: str) -> int | HugeInt:
    digits = len(text.lstrip("-"))
    return int(text) if digits <= MAX_DIGITS else HugeInt(digits)


def loads(text: str) -> object:
    """``json.loads`` where integers longer than MAX_DIGITS become :class:`HugeInt` instead of
    raising (the caller refuses them by name); call :func:`json_nesting` first."""
    return json.loads(text, parse_int=_parse_int)


def decode_json(payload: bytes) -> dict:
    """A frame's JSON object; anything else raises :class:`FrameError` (and nothing else)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("payload is not UTF-8") from None
    if json_nesting(text) is not None:
        raise FrameError(f"payload nests deeper than {MAX_DEPTH} levels")
    try:
        obj = loads(text)
    except (ValueError, RecursionError) as exc:
        raise FrameError(f"payload is not JSON ({str(exc)[:60]})") from None
    if not isinstance(obj, dict):
        raise FrameError(f"payload is a JSON {type(obj).__name__}, not an object")
    return obj


def field(obj: dict, name: str, kind: type | tuple[type, ...]) -> object:
    """``obj[name]`` when it is a ``kind`` (an int field refuses bools), else FrameError."""
    value = obj.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FrameError(f"field {name!r} is missing or not a {getattr(kind, '__name__', kind)}")
    return value


class FrameReader:
    """Reassembles frames from the byte stream of one connection."""

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self.max_payload = max_payload

    def feed(self, data: bytes, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        """Add received bytes; return the (kind, payload) frames now complete (at most
        ``limit``; what follows stays in :meth:`rest`). An oversized frame: FrameError."""
        self._buf += data
        frames: list[tuple[bytes, bytes]] = []
        while len(self._buf) >= HEADER_SIZE and (limit is None or len(frames) < limit):
            kind, length = _HEADER.unpack_from(self._buf)
            if length > self.max_payload:
                raise FrameError(f"frame of {length} bytes exceeds {self.max_payload}")
            end = HEADER_SIZE + length
            if len(self._buf) < end:
                break
            frames.append((kind, bytes(self._buf[HEADER_SIZE:end])))
            del self._buf[:end]
        return frames

    @property
    def pending(self) -> int:
        return len(self._buf)

    def rest(self) -> bytes:
        """The bytes received after the last complete frame (and forget them)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data


def parse_control(value: str) -> tuple[str, int, str]:
    """``host:port:token`` -> (host, port, token); ``/path:token`` (a Unix socket) ->
    (path, 0, token)."""
    rest, _, token = value.rpartition(":")
    if rest.startswith("/") and token:
        return rest, 0, token
    host, _, port = rest.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or not token:
        raise ValueError(f"malformed control address {value!r}; expected host:port:token")
    return host, int(port), token
