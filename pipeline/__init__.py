"""newsmon: a streaming news-monitoring pipeline.

Stages (each its own module, one public verb; only :mod:`pipeline.run` knows
the order)::

    poll -> fetch -> extract -> clean -> tag -> cluster -> load -> alert
"""

__version__ = "0.1.0"
