"""The one exception a user sees for a query they typed.

::

    ValueError
    └── QuerySyntaxError    parse(): bad query text, with the position and what would fit there

(Building an AST node by hand with bad values raises a plain ValueError: that
is a programming error, not a user's typo.)
"""

from __future__ import annotations


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
        return f"{head}\n  {echo}\n  {' ' * self.position}^"
