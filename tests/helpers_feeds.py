"""The checks every feed of ours must pass, the paper's and each section's alike:
the RELAX NG schema of RFC 4287 (jing), the JSON Feed 1.1 schema, feedparser
without bozo, and the W3C validator's rules for RSS."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import jsonschema
import pytest
from lxml import etree

from .helpers_issues import SCHEMAS

NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "content": "http://purl.org/rss/1.0/modules/content/",
    "dc": "http://purl.org/dc/elements/1.1/",
}
RFC822 = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} "
                    r"[+-]\d{4}$")


def jing() -> str:
    found = shutil.which("jing")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("jing is not installed; CI installs it (apt-get install jing)")
        pytest.skip("jing (Debian package `jing`) is not installed")
    return found


def parsed_feed(data: bytes) -> feedparser.FeedParserDict:
    """The feed as feedparser reads it; it must read it without complaint (bozo)."""
    feed = feedparser.parse(data)
    assert not feed.bozo, feed.get("bozo_exception")
    return feed


def assert_atom_valid(*paths: Path) -> None:
    """Each Atom file valid against RFC 4287's RELAX NG schema (tests/fixtures/schemas)."""
    result = subprocess.run(
        [jing(), "-c", str(SCHEMAS / "atom.rnc"), *map(str, paths)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def assert_json_feed_valid(data: bytes) -> dict:
    """The JSON Feed 1.1 schema, the language, the authors, times in the paper's zone."""
    schema = json.loads((SCHEMAS / "jsonfeed-1.1.schema.json").read_text("utf-8"))
    feed = json.loads(data)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(feed)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["language"] == "zh-CN" and feed["authors"]
    for item in feed["items"]:
        for key in ("date_published", "date_modified"):
            assert datetime.fromisoformat(item[key]).utcoffset() == timedelta(hours=8)
    return feed


def assert_rss_valid(data: bytes, self_url: str, home: str) -> None:
    """What the W3C validator checks of an RSS 2.0 feed: the self link, the channel's
    link, RFC 822 dates, guids, description before content, absolute URLs."""
    rss = etree.fromstring(data)
    channel = rss.find("channel")
    self_link = channel.find("atom:link[@rel='self']", NS)
    assert self_link.get("href") == self_url
    assert self_link.get("type") == "application/rss+xml"
    assert channel.findtext("link") == home
    assert channel.findtext("language") == "zh-CN"
    assert RFC822.match(channel.findtext("lastBuildDate"))
    items = channel.findall("item")
    assert items
    for item in items:
        tags = [child.tag for child in item]
        assert tags.index("description") < tags.index(f"{{{NS['content']}}}encoded")
        guid = item.find("guid")
        assert guid.text.startswith("tag:") and guid.get("isPermaLink") == "false"
        assert item.findtext("link").startswith(home.split("/sections/")[0])
        assert RFC822.match(item.findtext("pubDate"))
        assert item.findtext("pubDate").endswith("+0800")
        assert item.findall("dc:creator", NS)
    everything = data.decode()
    for url in re.findall(r'(?:href|src)=(?:"|&quot;)([^"&]+)', everything):
        assert url.startswith(("https://", "http://")), url
    newest = max(parsedate_to_datetime(i.findtext("pubDate")) for i in items)
    assert parsedate_to_datetime(channel.findtext("lastBuildDate")) == newest
