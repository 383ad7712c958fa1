"""One article as HTML and as plain text, the same wherever it is shown.

The feeds' content, the archive's article and issue pages and the email
digest all call `article_html`, so a kicker or a credit line reads the same
in a feed reader, a browser and a mail client. Pure: records in, escaped
Markup or plain text out.

Text from a page can hold characters XML 1.0 forbids (a stray control byte
from a layout system); `clean_article` removes them once, before any
renderer sees the text, because lxml refuses them and a browser shows them
as boxes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date

from markupsafe import Markup, escape

from .models import ROLE_LABELS, Article, Byline, photo_credit, with_credit

# C0 controls but tab, LF and CR; DEL and the C1 block (legal XML but never
# text, and an error in HTML); lone surrogates; the two non-characters.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SENTENCE_END = re.compile(r"[。！？!?…][”’」』）)]*")

#: Between the names of one role, and between roles, in a credit line.
NAME_SEPARATOR = "、"
#: Shown for an article whose title is empty once cleaned (feeds require a title).
UNTITLED = "（无标题）"
ROLE_SEPARATOR = "　"


def display_date(day: date) -> str:
    """A date as Chinese text shows it: 2024年5月6日."""
    return f"{day.year}年{day.month}月{day.day}日"


def xml_safe(text: str) -> str:
    """`text` as an XML 1.0 document carries it: without the characters XML
    forbids, and with line ends as LF, since every XML parser reads CR LF and
    a lone CR as LF (XML 1.0 §2.11) and a feed reader would see them so."""
    return _NOT_XML.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _opt(text: str | None) -> str | None:
    return None if text is None else xml_safe(text)


def clean_article(article: Article) -> Article:
    """The same article with every reader-visible string made XML-safe."""
    byline = Byline(**{
        role: tuple(n for name in getattr(article.byline, role) if (n := xml_safe(name).strip()))
        for role in ROLE_LABELS
    })
    return replace(
        article,
        title=xml_safe(article.title).strip() or UNTITLED,
        kicker=_opt(article.kicker),
        subtitle=_opt(article.subtitle),
        dateline=_opt(article.dateline),
        section=_opt(article.section),
        byline=byline,
        captions=tuple(xml_safe(c) for c in article.captions),
        paragraphs=tuple(xml_safe(p) for p in article.paragraphs),
    )


#: How a subtitle (副题) is led wherever it is shown: one dash, whatever the page had.
SUBTITLE_DASH = "——"
_LEADING_DASHES = "—－-―─ \u3000"


def display_subtitle(subtitle: str) -> str:
    """A subtitle as every rendering shows it: led by exactly one `——`.

    The reader keeps a subtitle as printed (`——覆盖…`, `—覆盖…`, `--覆盖…`
    or with no dash), so a renderer that adds its own dash would show two.
    """
    text = subtitle.lstrip(_LEADING_DASHES)
    return SUBTITLE_DASH + text if text else ""


#: The roles a byline (above the text) credits. Photographers are credited
#: with their pictures instead: see `printed_captions`.
BYLINE_ROLES = ("reporters", "correspondents", "interns")


def credit_groups(byline: Byline) -> list[tuple[str, tuple[str, ...]]]:
    """(label, names) for each byline role that has names: 记者, 通讯员, 实习生."""
    return [
        (ROLE_LABELS[role], names) for role in BYLINE_ROLES if (names := getattr(byline, role))
    ]


def credit_line(byline: Byline) -> str:
    """Plain-text credits as a Chinese reader expects them: 记者 张三、李四　通讯员 王五.

    The writers only; a photographer's credit is printed with the caption.
    """
    return ROLE_SEPARATOR.join(
        f"{label} {NAME_SEPARATOR.join(names)}" for label, names in credit_groups(byline)
    )


_WHITESPACE = re.compile(r"\s+")


def printed_captions(article: Article) -> tuple[str, ...]:
    """The captions every rendering shows, each with its photo credit, as the paper prints it.

    The one place that decides how a photo credit is shown: the archive,
    the feeds and both parts of the digest call it. A caption read from a
    page already carries its credit as printed (`图为…。通讯员 吴海峰 摄`,
    `…。（张三 摄）`, or a photo news item's `本报记者 王某 摄` alone). A
    photographer whom no caption names (a Markdown article's
    `photographers`, an article stored before captions kept their credits)
    is credited after the last caption (`图为…。吴海峰 摄`, by
    `models.with_credit`), or on a line of its own when there is none.
    Names are matched without spaces: layout pads 邓佳 to 邓　佳.
    """
    captions = list(article.captions)
    shown = [_WHITESPACE.sub("", c) for c in captions]
    missing = [
        name for name in dict.fromkeys(article.byline.photographers)
        if not any(_WHITESPACE.sub("", name) in c for c in shown)
    ]
    if missing:
        credit = photo_credit(missing)
        if captions:
            captions[-1] = with_credit(captions[-1], credit)
        else:
            captions.append(credit)
    return tuple(captions)


def summary(article: Article, limit: int = 120) -> str:
    """A plain-text teaser: the first paragraph, cut after a sentence if it is long."""
    text = next((p for p in article.paragraphs if p.strip()), None)
    text = (text or article.subtitle or article.title).strip()
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] >= limit // 2:
        return head[: ends[-1]]
    return head.rstrip() + "…"


def byline_html(byline: Byline) -> Markup:
    """Credits with each role label marked up, so a stylesheet can set them apart."""
    return Markup(ROLE_SEPARATOR.join(
        f'<span class="role">{escape(label)}</span> {escape(NAME_SEPARATOR.join(names))}'
        for label, names in credit_groups(byline)
    ))


def article_html(article: Article, *, heading: int | None = 1) -> Markup:
    """The article as an HTML fragment: kicker, title, subtitle, byline, body, captions.

    The byline credits the writers; photographers are credited in the
    captions (`printed_captions`), as the paper prints them.

    `heading` is the level of the title's <hN>; None leaves the title out
    (a feed reader shows the entry title itself). Every piece of text goes
    through `escape`; nothing from the page can become markup.
    """
    parts: list[str] = []
    if article.kicker:
        parts.append(f'<p class="kicker">{escape(article.kicker)}</p>')
    if heading is not None:
        parts.append(f'<h{heading:d} class="title">{escape(article.title)}</h{heading:d}>')
    if article.subtitle and (sub := display_subtitle(article.subtitle)):
        parts.append(f'<p class="subtitle">{escape(sub)}</p>')
    if credit_groups(article.byline):
        parts.append(f'<p class="byline">{byline_html(article.byline)}</p>')
    dateline = (
        f'<span class="dateline">{escape(article.dateline)}</span>' if article.dateline else ""
    )
    if dateline and not article.paragraphs:
        parts.append(f"<p>{dateline}</p>")
    for i, para in enumerate(article.paragraphs):
        lead = dateline + ROLE_SEPARATOR if i == 0 and dateline else ""
        parts.append(f"<p>{lead}{escape(para)}</p>")
    for caption in printed_captions(article):
        parts.append(f'<p class="caption">{escape(caption)}</p>')
    return Markup("\n".join(parts))


def toc_html(articles: Sequence[Article], href: Callable[[Article], str]) -> Markup:
    """An issue's table of contents: each article's title linked, with its credits."""
    items = []
    for a in articles:
        line = Markup('<a href="{}">{}</a>').format(href(a), a.title)
        if a.kicker:
            line = Markup('<span class="kicker">{}</span> {}').format(a.kicker, line)
        if credits := credit_line(a.byline):
            line += Markup(' <span class="byline">{}</span>').format(credits)
        items.append(Markup("<li>{}</li>").format(line))
    return Markup('<ol class="toc">\n{}\n</ol>').format(Markup("\n").join(items))
