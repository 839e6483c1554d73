"""The one exception a user sees for a query they typed.

::

    ValueError
    └── QuerySyntaxError    parse(): bad query text, with the position and what would fit there

(Building an AST node by hand with bad values raises a plain ValueError: that
is a programming error, not a user's typo.)
"""

from __future__ import annotations

# At most this many characters of the query are echoed under the message.
ECHO_WIDTH = 100


class QuerySyntaxError(ValueError):
    """A query that cannot be parsed.

    ``position`` is a 0-based index into ``query`` (``column`` is 1-based);
    ``expected`` says what would have been accepted there. ``str()`` gives the
    message, then the query with a caret under the position.
    """

    def __init__(self, message: str, position: int, expected: str, query: str = "") -> None:
        self.message = message
        self.position = position
        self.expected = expected
        self.query = query
        super().__init__(message)

    @property
    def column(self) -> int:
        return self.position + 1

    def __str__(self) -> str:
        head = f"{self.message}: expected {self.expected} at column {self.column}"
        if not self.query:
            return head
        # Tabs and newlines would push the caret out of line with the echoed query.
        echo = "".join(" " if c in "\t\r\n" else c for c in self.query)
        caret = self.position
        if len(echo) > ECHO_WIDTH:
            # A generated query can be thousands of characters: show the stretch
            # around the problem, marking what is cut with "…".
            start = max(0, min(caret - ECHO_WIDTH // 2, len(echo) - ECHO_WIDTH))
            end = start + ECHO_WIDTH
            echo = ("…" if start else "") + echo[start:end] + ("…" if end < len(echo) else "")
            caret = caret - start + (1 if start else 0)
        return f"{head}\n  {echo}\n  {' ' * caret}^"


def engine_refused(exc: Exception, *, what: str = "it") -> str:
    """The sentence for a query that parsed but DuckDB could not run: a limit of
    the engine (thousands of words in one OR make an RE2 pattern over DuckDB's
    size limit, say). ``what``: how the sentence names the query."""
    return f"DuckDB could not run {what} ({str(exc).splitlines()[0]}); try a shorter query"
