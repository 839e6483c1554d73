from pipeline import ids


def test_canonical_url_drops_tracking_fragment_and_default_port() -> None:
    a = ids.canonical_url("HTTPS://WWW.Example.org:443/news/story/?utm_source=rss&b=2&a=1#top")
    assert a == "https://example.org/news/story?a=1&b=2"


def test_canonical_url_keeps_meaningful_parameters_and_ports() -> None:
    assert ids.canonical_url("http://h:8080/p?id=7&fbclid=x") == "http://h:8080/p?id=7"


def test_entry_id_prefers_guid_then_link_then_hash() -> None:
    assert ids.entry_id(guid=" g-1 ", link="http://x/a", title="t", summary="s") == "g-1"
    assert ids.entry_id(guid=None, link="http://x/a?utm_medium=rss", title="t",
                        summary="s") == "http://x/a"
    hashed = ids.entry_id(guid="", link="", title="Title", summary="Summary")
    assert hashed.startswith("sha256:")
    assert hashed == ids.entry_id(guid=None, link=None, title=" Title ", summary="Summary ")
    assert hashed != ids.entry_id(guid=None, link=None, title="Title", summary="Other")


def test_article_id_is_stable_for_spellings_of_one_url() -> None:
    one = ids.article_id(ids.canonical_url("https://example.org/a?utm_campaign=x"))
    two = ids.article_id(ids.canonical_url("https://www.example.org/a/#comments"))
    assert one == two
    assert one != ids.article_id(ids.canonical_url("https://example.org/b"))


def test_feed_key_keeps_what_tells_two_feeds_apart() -> None:
    # Names that mark an article link as coming from a feed (?rss=1, ?ref=...)
    # choose the feed in a feed's own URL; credentials choose whose feed it is.
    # A config with both feeds loaded before feed_key, and must load still.
    for one, other in [
        ("https://example.org/feed.php?rss=world", "https://example.org/feed.php?rss=sport"),
        ("https://example.org/rss?rssfeed=news", "https://example.org/rss?rssfeed=tech"),
        ("https://example.org/commits.atom?ref=main", "https://example.org/commits.atom?ref=dev"),
        ("https://alice:one@example.org/private.rss", "https://bob:two@example.org/private.rss"),
    ]:
        assert ids.feed_key(one) != ids.feed_key(other), (one, other)
    # Still one feed: campaign tags, case of scheme and host, a fragment.
    assert ids.feed_key("HTTPS://Example.org/rss?utm_source=x#top") == ids.feed_key(
        "https://example.org/rss")


def test_a_reused_guid_gets_one_id_per_article() -> None:
    one = ids.reused_guid_id("same", "https://example.org/a?utm_source=rss")
    assert one.startswith("same#")
    # The same article: tracking, fragment, www, a trailing slash, the scheme.
    assert one == ids.reused_guid_id("same", "http://www.example.org/a/#top")
    assert one != ids.reused_guid_id("same", "https://example.org/b")
    assert one != ids.reused_guid_id("other", "https://example.org/a")
    assert ids.link_key("HTTPS://Example.org/a?utm_source=x") == ids.link_key("http://example.org/a")
