"""The read side: what ``newsmon stories``, ``story``, ``status`` and the web page
(:mod:`pipeline.web`) show, read from a connection the caller opened read-only.

Everything here only reads. Values are returned as they are stored (feed
text included): escaping is the job of whoever renders them.
"""

from pipeline.browse._filters import (
    FilterError,
    FilterField,
    StoryFilter,
    parse_since,
    parse_until,
)
from pipeline.browse._status import OutboxRow, RunFigures, Status, outbox, status
from pipeline.browse._stories import (
    MAX_BUCKETS,
    SORTS,
    Bucket,
    Count,
    Facets,
    RemovedLine,
    Report,
    Sort,
    StoryDetail,
    StoryPage,
    StorySummary,
    facets,
    find_story,
    list_stories,
    report_counts,
)

__all__ = [
    "MAX_BUCKETS", "SORTS", "Bucket", "Count", "Facets", "FilterError", "FilterField",
    "OutboxRow", "RemovedLine", "Report", "RunFigures", "Sort", "Status", "StoryDetail",
    "StoryFilter", "StoryPage", "StorySummary", "facets", "find_story", "list_stories",
    "outbox", "parse_since", "parse_until", "report_counts", "status",
]
