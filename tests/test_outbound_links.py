"""Links and mentions in what Shipmate posts (bot/security/links.py, `outbound`): no text, however
written, reaches GitHub as a clickable link to a host not allowed, judged by rendering the output
with cmark-gfm (GitHub's parser) and reading the hrefs and srcs. The first cases come from a
review (each gave an <a href> to evil.example on cmark-gfm before the fix)."""

from __future__ import annotations

import pytest

from bot.security.links import CODE, as_code_block, defang_links, external, live_urls
from bot.security.redact import Outbound, neutralize_mentions, outbound

ALLOWED = ("github.com",)

# Each is something the model (or an issue's author, through the PR title and the run's
# summary) could have Shipmate post.
REVIEWED = [
    # CommonMark decodes entity references in a link's destination.
    "[click](https&#58;//evil.example/x)",
    "[click](&#104;ttps://evil.example/x)",
    "[click][r]\n\n[r]: https&#58;//evil.example/x",
    # An HTML attribute is entity-decoded by the browser (and by GitHub's sanitizer).
    '<a href="&#x68;ttps://evil.example/x">click</a>',
    # A backtick in the label paired with the one the defanged form opened.
    "[a`b](https://evil.example/x)",
]
MORE = [
    "[c](HTTPS://EVIL.example/x)",
    "[c](hTtP://evil.example)",
    "[c](//evil.example/x)",
    '<a href="/\\evil.example/x">c</a>',
    "[c](https:/\\evil.example)",
    "[c](javascript:alert(1))",
    "[c](data:text/html,hi)",
    "[c](<https://evil.example/a b>)",
    "[c](https://evil.example/x 'title')",
    "[c](https://evil%2Eexample/x)",
    "[c](https://github.com.evil.example/x)",
    "[c](https://github.com@evil.example/x)",
    "![i](https&#x3a;//evil.example/i.png)",
    "[r]: <https://evil.example/x>\n\n[see][r]",
    "[see][]\n\n[see]:\n  https://evil.example/x",
    '<a href=" https://evil.example/x">c</a>',
    "<a href='https://evil.example'>c</a>",
    '<a title="x" href="&#104;&#116;&#116;&#112;&#115;&#58;//evil.example">c</a>',
    '<a href="java&#x09;script:alert(1)">c</a>',
    "<img src=//evil.example/x.png>",
    '<img src="x" srcset="https://evil.example/a.png 2x">',
    "<https://evil.example/x>",
    "<HTTPS://evil.example/x>",
    "<https&#58;//evil.example/x>",
    "see www.evil.example today",
    "see WWW.EVIL.EXAMPLE/x today",
    "bare https&#58;//evil.example/x here",
    "a ` then [c](https://evil.example/x)",
    "look ``` [c](https://evil.example/x)",
    "x ~~~ [c](https://evil.example/x)",
    '<a title=">" href="https://evil.example/x">c</a>',
    "``code`` [a``b](https://evil.example/x) `",
    "[c](https://evil.example/`x`)",
    "[`x`](https://evil.example/x)",
    "[click](https://evil.example/x)\n```\nunclosed",
    "> quoted [c](https://evil.example/x)\n> ```\n> [d](https://evil.example/y)",
    "- item\n\n  [c](https://evil.example/x)",
]


def live_external(text: str) -> list[str]:
    return [url for url in live_urls(text) if external(url, ALLOWED, decoded=True)]


def outside_code(text: str) -> str:
    """What of `text` is not in a code span or fence (what GitHub may make a link of)."""
    return CODE.sub("", text)


@pytest.mark.parametrize("text", REVIEWED + MORE)
def test_no_external_link_survives_outbound(text: str) -> None:
    assert live_external(text), "the case must be a live link before outbound"
    out = Outbound()(text)
    assert live_external(out) == [], out


@pytest.mark.parametrize("text", REVIEWED)
def test_the_reviewed_cases_keep_the_url_in_code(text: str) -> None:
    out = Outbound()(text)
    assert "evil.example" not in outside_code(out), out


@pytest.mark.parametrize("text", REVIEWED + MORE)
def test_outbound_is_idempotent_on_what_it_defanged(text: str) -> None:
    """`Outbound`'s docstring: applying it again to its own output changes nothing."""
    clean = Outbound()
    once = clean(text)
    assert clean(once) == once


def test_a_label_with_a_backtick_is_shown_with_a_longer_code_span() -> None:
    out = defang_links("[a`b](https://evil.example/x)", ALLOWED)
    assert out == "a`b (``https://evil.example/x``)"


def test_a_reference_definition_is_broken_and_its_url_shown_as_code() -> None:
    out = defang_links("[click][r]\n\n[r]: https&#58;//evil.example/x", ALLOWED)
    assert out == "[click][r]\n\n[r]\\: `https&#58;//evil.example/x`"


def test_an_entity_written_link_is_defanged_in_place() -> None:
    out = defang_links("see [click](https&#58;//evil.example/x) now", ALLOWED)
    assert out == "see click (`https&#58;//evil.example/x`) now"


def test_what_the_rewrite_misses_is_posted_as_one_code_block() -> None:
    """An entity-written bare URL is text to cmark-gfm, but a later autolinker may see it."""
    text = "look ``` https&#58;//evil.example/x"
    assert defang_links(text, ALLOWED) == as_code_block(text) == f"````\n{text}\n````"


@pytest.mark.parametrize(
    "text",
    [
        "see [the PR](https://github.com/o/r/pull/1) and https://github.com/o/r",
        "[notes](docs/notes.md), [top](#top), mail bob@example.com",
        '<a href="https://github.com/o/r">pr</a> <img src="https://github.com/o/r/x.png">',
        "[x](HTTPS://GITHUB.COM/o/r)",
        "[x](mailto:bob@example.com)",
    ],
)
def test_links_to_allowed_hosts_stay_clickable(text: str) -> None:
    assert defang_links(text, ALLOWED) == text
    assert live_urls(text)


@pytest.mark.parametrize(
    ("url", "leaves"),
    [
        ("https://github.com/o/r", False),
        ("https://gist.github.com/o", False),
        ("HTTPS://GitHub.com./o", False),
        ("docs/x.md", False),
        ("#anchor", False),
        ("?q=1", False),
        ("https://evil.example", True),
        ("//evil.example", True),
        ("/\\evil.example", True),
        ("/\t/evil.example", True),
        ("\n https://evil.example", True),
        ("https:evil.example", True),
        ("https://github.com:443@evil.example", True),
        ("https://evil.example\\@github.com", True),
        ("https://evil%2eexample", True),
        ("https://githu%62.com/o", False),
        ("https://x_y.github.com", True),
        ("javascript:alert(1)", True),
        ("JavaScript&colon;alert(1)", True),
        ("data:text/html,x", True),
        ("www.evil.example", True),
        ("&#104;ttps://evil.example", True),
    ],
)
def test_external_judges_a_url_as_a_browser_would(url: str, leaves: bool) -> None:
    assert external(url, ALLOWED) is leaves


@pytest.mark.parametrize(
    "text", ["&#64;alice", "&#x40;alice", "&#X0040;alice", "&commat;alice", "(&#64alice)"]
)
def test_mentions_written_as_entities_are_neutralized(text: str) -> None:
    out = neutralize_mentions(text)
    assert "@\u200balice" in out
    assert live_urls(out) == [] and "@alice" not in out


def test_an_email_written_with_an_entity_is_left_alone() -> None:
    assert neutralize_mentions("bob&#64;example.com") == "bob&#64;example.com"


def test_outbound_of_plain_text_is_unchanged() -> None:
    text = "Fixed the parser (3 files). See `tests/test_x.py`; run ```pytest``` again."
    assert outbound(text, allowed_hosts=ALLOWED) == text
