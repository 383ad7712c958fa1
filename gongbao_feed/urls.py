"""Every public address in one place: the feeds, the archive and the digests agree."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlsplit

from .config import Config

FEED_FILES = {
    "rss": "feed.xml",
    "atom": "atom.xml",
    "json": "feed.json",
    "issues": "issues.xml",
}

#: Media type of each feed, for <link rel="alternate"> and self links.
FEED_TYPES = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
    "issues": "application/atom+xml",
}

#: The archive's front page and its one stylesheet.
INDEX_PATH = "index.html"
STYLESHEET_PATH = "style.css"


#: Every section's files live under this folder of the public folder.
SECTIONS_DIR = "sections"
#: The feed files a section has, by kind (the same names as the paper's own).
SECTION_FEEDS = ("rss", "atom", "json")
#: The subscription list of every feed (OPML 2.0).
OPML_PATH = "feeds.opml"


def section_path(slug: str) -> str:
    """The section's archive page: sections/<slug>/index.html."""
    return f"{SECTIONS_DIR}/{slug}/{INDEX_PATH}"


def section_feed_path(slug: str, kind: str) -> str:
    """sections/<slug>/feed.xml, atom.xml or feed.json."""
    return f"{SECTIONS_DIR}/{slug}/{FEED_FILES[kind]}"


def site(config: Config) -> str:
    return config.paper.base_url


def public_url(config: Config, path: str) -> str:
    """The public address of a file under the public folder."""
    return site(config) + path


def article_path(article_id: str) -> str:
    return f"articles/{article_id}.html"


def issue_path(number: int) -> str:
    return f"issues/{number:04d}.html"


def article_url(config: Config, article_id: str) -> str:
    return site(config) + article_path(article_id)


def issue_url(config: Config, number: int) -> str:
    return site(config) + issue_path(number)


def feed_url(config: Config, kind: str) -> str:
    return site(config) + FEED_FILES[kind]


def relative(from_path: str, to_path: str) -> str:
    """A link from one archive page to another that works on any host and from file://.

    Both are paths under the public folder, such as issues/0001.html.
    """
    here, there = from_path.split("/")[:-1], to_path.split("/")
    common = 0
    while common < min(len(here), len(there) - 1) and here[common] == there[common]:
        common += 1
    return "/".join([".."] * (len(here) - common) + there[common:])


def tag_uri(config: Config, day: date, specific: str) -> str:
    """A tag: URI (RFC 4151) under the site's host: an id that outlives URL changes."""
    parts = urlsplit(site(config))
    return f"tag:{(parts.hostname or 'localhost').lower()},{day.isoformat()}:{parts.path}{specific}"


def article_tag(config: Config, article_id: str, day: date) -> str:
    """The feed id of an article: made from its id and date only, so a correction keeps it."""
    return tag_uri(config, day, article_path(article_id).removesuffix(".html"))


def issue_tag(config: Config, number: int, day: date) -> str:
    return tag_uri(config, day, issue_path(number).removesuffix(".html"))


def unsubscribe_url(config: Config, token: str) -> str:
    return f"{site(config)}unsubscribe/{token}"


def approve_url(config: Config, number: int, token: str) -> str:
    """The proof's approve link: `serve` answers it (a page with a button, the POST approves)."""
    return f"{site(config)}approve/{number}/{token}"


#: The signup form `serve` answers (web.py), linked from every archive page.
SIGNUP_PATH = "subscribe"


def signup_url(config: Config) -> str:
    return site(config) + SIGNUP_PATH


def confirm_url(config: Config, token: str) -> str:
    """A signup confirmation link (tokens.sign_confirmation), answered by `serve`."""
    return f"{site(config)}confirm/{token}"
