"""Where articles come from: the feed registry, the schedule, polling, feed parsing and pages."""
