"""Unsubscribe tokens: no readable address, one spelling each, old links still work."""

from __future__ import annotations

import base64

import pytest

from gongbao_feed import tokens
from gongbao_feed.tokens import BadToken, TokenClaims

KEY = b"test-secret-for-old-links"
# Made by the release before sealed tokens, with KEY: links in digests already sent.
OLD_WANG_1 = "d2FuZ0BleGFtcGxlLm9yZw.1.RHLcnSOsZgzhGpliN3RxX2CPA7OzDCcZRKypSLMnhRc"
OLD_LI_1 = "bGlAZXhhbXBsZS5vcmc.1.BdOzYIAEoK1aHbz757m90wvhmzbiL3SIlg50tWV41EA"


def _all_decodings(token: str) -> bytes:
    """Every byte string the token's characters could be read as, under either alphabet."""
    out = b""
    for shift in range(4):
        piece = token[shift:]
        piece = piece[: len(piece) - len(piece) % 4]
        out += base64.urlsafe_b64decode(piece) + b"|"
    return out


def test_a_token_round_trips_and_carries_no_readable_address() -> None:
    for email in ("wang@example.org", "luo.bin@members.example.org", "张三@例子.中国"):
        token = tokens.sign(KEY, email, 7)
        assert tokens.verify(KEY, token) == TokenClaims(email, 7)
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        local = email.split("@")[0].encode()
        assert local not in _all_decodings(token)
        assert local.decode() not in token
        # the same member and issue: the same link in every copy
        assert tokens.sign(KEY, email, 7) == token


def test_a_link_from_an_already_sent_digest_still_works() -> None:
    assert tokens.verify(KEY, OLD_WANG_1) == TokenClaims("wang@example.org", 1)
    assert tokens.verify(KEY, OLD_LI_1) == TokenClaims("li@example.org", 1)


@pytest.mark.parametrize("issue", ["+1", "01", "1 ", " 1", "１", "١", "-1", "0", "1_0", "1\n",
                                   "", "1.0", "0x1", "11111111111111111111"])
def test_an_old_link_with_a_non_canonical_issue_number_is_refused(issue: str) -> None:
    who, _, mac = OLD_WANG_1.split(".")
    with pytest.raises(BadToken):
        tokens.verify(KEY, f"{who}.{issue}.{mac}")


@pytest.mark.parametrize(
    "token",
    [
        OLD_WANG_1.replace(".1.", ".2."),  # issue changed
        OLD_WANG_1.split(".")[0] + "." + "1." + OLD_LI_1.split(".")[2],  # another's signature
        OLD_WANG_1[:-2],  # truncated
        OLD_WANG_1 + "=",  # padding
        OLD_WANG_1.replace("d2FuZ0BleGFtcGxlLm9yZw.", "d2FuZ0BleGFtcGxlLm9yZw==."),
        OLD_WANG_1.replace("d2FuZ0BleGFtcGxlLm9yZw.", "d2FuZ0BleGFtcGxlLm9yZx."),  # same bytes
        OLD_WANG_1[:-1] + "+",  # the standard alphabet's characters
        OLD_WANG_1[:-1] + "/",
        OLD_WANG_1.replace("d2Fu", "d2 Fu"),  # whitespace inside
        " " + OLD_WANG_1,
        OLD_WANG_1 + "\n",
        OLD_WANG_1 + ".",  # a fourth part
        "..",
        "a.1.b",
        "%E2%80%8B",
        "",
    ],
)
def test_a_malformed_old_link_is_refused(token: str) -> None:
    assert token != OLD_WANG_1 or pytest.fail("not tampered")
    with pytest.raises(BadToken):
        tokens.verify(KEY, token)


def _respelled(token: str) -> list[str]:
    """Other spellings of the same sealed bytes, and bytes one bit off."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    flipped = bytes([raw[0] ^ 1]) + raw[1:]
    out = [
        token + "=" * (-len(token) % 4 or 4),  # padded
        token.replace("-", "+").replace("_", "/") if set(token) & set("-_") else token + "+",
        token[:-1],
        token[:-4],
        token + "A",
        token + "AAAA",
        token[:5] + " " + token[5:],
        token + "\n",
        "＝" + token,
        base64.urlsafe_b64encode(flipped).decode().rstrip("="),
        tokens.sign(b"not the key", "wang@example.org", 1),
    ]
    if len(raw) % 3:  # the last character has spare bits: set one, the bytes stay the same
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        out.append(token[:-1] + alphabet[alphabet.index(token[-1]) | 1])
    return out


def test_any_other_spelling_or_change_of_a_sealed_token_is_refused() -> None:
    for email in ("wang@example.org", "li@example.org", "a@b.cn"):  # three lengths mod 3
        good = tokens.sign(KEY, email, 1)
        for bad in _respelled(good):
            assert bad != good
            with pytest.raises(BadToken):
                tokens.verify(KEY, bad)


def test_a_huge_token_is_refused_before_any_work() -> None:
    with pytest.raises(BadToken):
        tokens.verify(KEY, "A" * 100_000)
