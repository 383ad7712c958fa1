"""gongbao-feed: a union newspaper's pages → feeds, a web archive and email digests.

Import `Newsroom` to drive the pipeline from Python; the `gongbao-feed`
command is a thin layer over it.
"""

from .config import Config, load_config
from .errors import GongbaoError
from .models import Article, Byline, Delivery, DeliveryState, Issue, Member, MemberStatus
from .pages import decode_page, parse_page
from .publish import Newsroom

__all__ = [
    "Article",
    "Byline",
    "Config",
    "Delivery",
    "DeliveryState",
    "GongbaoError",
    "Issue",
    "Member",
    "MemberStatus",
    "Newsroom",
    "decode_page",
    "load_config",
    "parse_page",
]
