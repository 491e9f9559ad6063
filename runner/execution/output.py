"""A child's output, read within a fixed memory bound: the last lines of each stream,
and the ``JR_RESULT:`` line a script reports its tokens and metadata with (the
original runner's protocol)."""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from statestore.values import MAX_BIGINT, json_loads, json_problem

RESULT_PREFIX = "JR_RESULT:"
# A longer line keeps only its end, and a JR_RESULT line that long is ignored.
MAX_LINE_BYTES = 64 * 1024
_RESULT_PREFIX_BYTES = RESULT_PREFIX.encode()


class LiveTails(NamedTuple):
    """A running child's output so far (see ``run_process``'s ``on_start``).

    ``seen`` is the number of bytes read from both streams: unchanged means the
    tails are unchanged.
    """

    seen: int
    stdout: str
    stderr: str


def parse_result_line(line: str) -> dict | None:
    """Return the JSON object of a `JR_RESULT:{...}` line, or None if it is not one.

    NaN and Infinity are refused: they are not JSON and a database JSON column
    would reject them later.
    """
    if not line.startswith(RESULT_PREFIX):
        return None
    try:
        value = json_loads(line[len(RESULT_PREFIX) :])
    except (ValueError, RecursionError):
        return None
    # Too deep or a huge integer: ignored like a line that is not JSON (text is made
    # storable later, by RunOutcome.storable).
    if not isinstance(value, dict) or json_problem(value, strings=False):
        return None
    return value


def result_tokens(result: dict | None) -> int | None:
    """The ``tokens`` of a ``JR_RESULT`` object: a whole number 0 to 2**63 - 1, else None
    (the run records no count)."""
    tokens = (result or {}).get("tokens")
    # Beyond 64 bits the runs.tokens column cannot hold it, and the run could not finish.
    if isinstance(tokens, int) and not isinstance(tokens, bool) and 0 <= tokens <= MAX_BIGINT:
        return tokens
    return None


class StreamTail:
    """The last lines of one output stream, kept within a fixed memory bound."""

    def __init__(self, max_lines: int, parse_results: bool) -> None:
        self.lines: deque[bytes] = deque(maxlen=max_lines)
        self.total_bytes = 0
        self.truncated = False
        self.result: dict | None = None
        self._parse_results = parse_results
        self._partial = b""
        self._partial_cut = False

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes read from the stream."""
        self.total_bytes += len(chunk)
        data = self._partial + chunk
        *complete, partial = data.split(b"\n")
        if complete:
            self._take(complete, data)
            self._partial_cut = False
        self._partial = self._cap_partial(partial)

    def close(self) -> None:
        """Take the last line when the stream did not end with a newline."""
        if self._partial:
            self._take([self._partial], self._partial)
        self._partial = b""

    def text(self) -> str:
        """Return the kept lines, decoded line by line, joined by newlines."""
        return joined(self.lines)

    def live_lines(self) -> list[bytes]:
        """The lines ``text`` would keep if the stream ended now (a partial last line
        counts as one), within the same bound; a copy, for another thread to decode."""
        lines = list(self.lines)
        if self._partial:
            lines.append(self._partial)
        limit = self.lines.maxlen or 0
        return lines[-limit:] if limit else []

    def _take(self, lines: list[bytes], data: bytes) -> None:
        # Every line is checked for a result, not only the kept ones.
        if self._parse_results and _RESULT_PREFIX_BYTES in data:
            self._scan_results(lines)
        self._keep(lines)

    def _scan_results(self, lines: list[bytes]) -> None:
        for index, line in enumerate(lines):
            cut = len(line) > MAX_LINE_BYTES or (index == 0 and self._partial_cut)
            if line.startswith(_RESULT_PREFIX_BYTES) and not cut:
                result = parse_result_line(line.decode("utf-8", "replace"))
                self.result = result if result is not None else self.result

    def _keep(self, lines: list[bytes]) -> None:
        max_lines = self.lines.maxlen or 0
        kept = lines[max(0, len(lines) - max_lines) :] if max_lines else []
        if len(kept) < len(lines) or len(self.lines) + len(kept) > max_lines:
            self.truncated = True
        for line in kept:
            if len(line) > MAX_LINE_BYTES:
                line = _keep_end(line)
                self.truncated = True
            self.lines.append(line)

    def _cap_partial(self, partial: bytes) -> bytes:
        if len(partial) <= MAX_LINE_BYTES:
            return partial
        self._partial_cut = True
        self.truncated = True
        return _keep_end(partial)


def joined(lines) -> str:
    """Kept lines (bytes), decoded one by one, joined by newlines."""
    return "\n".join(line.decode("utf-8", "replace") for line in lines)


def _keep_end(line: bytes) -> bytes:
    end = line[-MAX_LINE_BYTES:]
    # Start on a character boundary: skip up to three UTF-8 continuation bytes.
    start = 0
    while start < 3 and start < len(end) and end[start] & 0xC0 == 0x80:
        start += 1
    return end[start:]
