"""Links in outbound text: `defang_links` shows a link to a host not allowed as code, then reads
its own output the way GitHub does (cmark-gfm, GitHub's parser, then the HTML it lets through:
`live_urls`); should any link off the allowed hosts still be live, the whole text is posted as a
code block instead. The rewrite keeps the text readable; the rendering is the guarantee. Pure."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from html.parser import HTMLParser
from urllib.parse import unquote

import cmarkgfm
from cmarkgfm.cmark import Options

_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*):")
_HOST = re.compile(r"[a-z0-9.-]+")
# A browser drops tabs and newlines anywhere in a URL and C0 controls and spaces around it.
_DROPPED = dict.fromkeys(map(ord, "\t\n\r"))
_AROUND = "".join(map(chr, range(0x21)))


def external(url: str, allowed_hosts: Sequence[str], *, decoded: bool = False) -> bool:
    """Whether `url`, as written (entities decoded unless `decoded`), takes a browser off
    `allowed_hosts`: any scheme but http(s) and mailto (`javascript:`, `data:`), and any
    `//host` or `http(s):host` whose host is not allowed or not a plain name. A relative link
    stays on the page's host."""
    url = url if decoded else html.unescape(url)
    url = url.translate(_DROPPED).strip(_AROUND).replace("\\", "/").lower()
    if url.startswith("www."):
        url = "http://" + url
    scheme = _SCHEME.match(url)
    if scheme and scheme.group(1) not in ("http", "https", "mailto"):
        return True
    if (not scheme and not url.startswith("//")) or url.startswith("mailto:"):
        return False
    rest = url[scheme.end() :] if scheme else url
    authority = re.split(r"[/?#]", rest.lstrip("/"), maxsplit=1)[0]
    host = re.sub(r":[0-9]*$", "", unquote(authority.rpartition("@")[2])).rstrip(".")
    if not _HOST.fullmatch(host):
        return True
    return not any(host == h or host.endswith("." + h) for h in allowed_hosts)


# A fenced block (from a fence at a line's start to a fence as long, or the end) or a code span
# (a run of backticks to the next run of the same length, within a paragraph).
CODE = re.compile(
    r"^ {0,3}(?P<fence>`{3,}(?=[^`\n]*$)|~{3,})[^\n]*(?:[\s\S]*?\n {0,3}(?P=fence)[`~]*[ \t]*$"
    r"|[\s\S]*)|(?<![`\\])(?P<tick>`+)(?!`)(?:(?!\n[ \t]*\n)[\s\S])*?(?<!`)(?P=tick)(?!`)",
    re.MULTILINE,
)
_TICKS = re.compile(r"`+")
_ATTRIBUTE = r"\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+))"
_HTML_LINK = re.compile(
    r"<a\b[^>]*?\bhref" + _ATTRIBUTE + r"[^>]*>([\s\S]*?)</a\s*>", re.IGNORECASE
)
_HTML_SRC = re.compile(
    r"<(?:img|source|video|iframe)\b[^>]*?\bsrc" + _ATTRIBUTE + r"[^>]*>", re.IGNORECASE
)
_MD_LINK = re.compile(r"(!?)\[([^\]\n]*)\]\((<[^>\n]*>|\S+?)(?:\s+\"[^\"]*\")?\)")
_REF_DEF = re.compile(r"^( {0,3}\[[^\]\n]+\]):([ \t]*\n?[ \t]*)(<[^>\n]*>|\S+)", re.MULTILINE)
_AUTOLINK = re.compile(r"<((?:[a-z][a-z0-9+.-]*:|www\.)[^\s<>]+)>", re.IGNORECASE)
_BARE_URL = re.compile(r"(?<![\w`/.@-])(?:https?://|www\.)[^\s<>`\"')\]]+", re.IGNORECASE)
_URL_TAIL = ".,;:!?*_~"


def split_code(text: str) -> list[tuple[bool, str]]:
    """`text` as (is code, part) pieces: code spans and fenced blocks, where nothing is a link
    or a mention and an added backtick would end the span, and the prose between them."""
    parts: list[tuple[bool, str]] = []
    last = 0
    for code in CODE.finditer(text):
        parts += [(False, text[last : code.start()]), (True, code.group(0))]
        last = code.end()
    return [*parts, (False, text[last:])]


def outside_code(text: str, change: Callable[[str], str]) -> str:
    """`change` applied to the prose of `text`, its code left as it is."""
    return "".join(part if code else change(part) for code, part in split_code(text))


def _prose_rewriter(allowed: Sequence[str], fence: str) -> Callable[[str], str]:
    """The rewrite of one prose part. `fence` is longer than any backtick run of the prose, so
    a backtick of the text (in a label, a URL) can neither end nor open the spans it adds."""

    def code(url: str) -> str:
        pad = " " if url.startswith("`") or url.endswith("`") else ""
        return f"{fence}{pad}{url}{pad}{fence}"

    def labelled(match: re.Match[str]) -> str:
        url = next(g for g in match.groups()[:3] if g is not None)
        label = match.group(4)
        return f"{label} ({code(url)})" if external(url, allowed) else match.group(0)

    def src(match: re.Match[str]) -> str:
        url = next(g for g in match.groups() if g is not None)
        return code(url) if external(url, allowed) else match.group(0)

    def md(match: re.Match[str]) -> str:
        url = match.group(3).strip("<>")
        return f"{match.group(2)} ({code(url)})" if external(url, allowed) else match.group(0)

    def definition(match: re.Match[str]) -> str:
        label, space, url = match.groups()
        # `\:` is no definition: the references to it stay text.
        return f"{label}\\:{space}{code(url)}" if external(url, allowed) else match.group(0)

    def auto(match: re.Match[str]) -> str:
        return code(match.group(1)) if external(match.group(1), allowed) else match.group(0)

    def bare(match: re.Match[str]) -> str:
        url = match.group(0).rstrip(_URL_TAIL)
        tail = match.group(0)[len(url) :]
        return f"{code(url)}{tail}" if external(url, allowed) else match.group(0)

    def prose(part: str) -> str:
        part = _HTML_LINK.sub(labelled, part)
        part = _HTML_SRC.sub(src, part)
        part = _MD_LINK.sub(md, part)
        part = _REF_DEF.sub(definition, part)
        part = _AUTOLINK.sub(auto, part)
        return _BARE_URL.sub(bare, part)

    return prose


def defang_links(text: str, allowed_hosts: Sequence[str]) -> str:
    """Links to hosts not in `allowed_hosts` shown as code, not made clickable: markdown and
    HTML links, reference definitions, autolinks, bare URLs and `www.` names, whatever their
    entities, case or slashes. Should GitHub still find a live one, the text is one code block."""
    allowed = tuple(h.lower() for h in allowed_hosts)
    parts = split_code(text)
    longest = max(
        (len(run) for code, p in parts if not code for run in _TICKS.findall(p)), default=0
    )
    prose = _prose_rewriter(allowed, "`" * (longest + 1))
    out = "".join(part if code else prose(part) for code, part in parts)
    if any(external(url, allowed, decoded=True) for url in live_urls(out)):
        return as_code_block(text)
    return out


def as_code_block(text: str) -> str:
    """`text` as one fenced block, its fence longer than any backtick run inside (CommonMark:
    only a fence as long closes it), so nothing in it renders."""
    fence = "`" * max(3, 1 + max(map(len, _TICKS.findall(text)), default=0))
    return f"{fence}\n{text.rstrip(chr(10))}\n{fence}"


_URL_ATTRIBUTES = frozenset({"href", "src", "srcset", "longdesc", "cite", "poster", "action"})
_URL_IN_TEXT = re.compile(r"(?:[a-z][a-z0-9+.-]*:/[/\\]|www\.)[^\s<>]+", re.IGNORECASE)


class _Links(HTMLParser):
    """The URLs an HTML page would follow or load, and the URL-like texts outside code (which a
    later autolinker might still link)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.in_code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None or name.lower().rpartition(":")[2] not in _URL_ATTRIBUTES:
                continue
            srcset = name.lower() == "srcset"
            self.urls += (
                [c.split()[0] for c in value.split(",") if c.split()] if srcset else [value]
            )
        self.in_code += tag in ("code", "pre")

    def handle_endtag(self, tag: str) -> None:
        self.in_code -= tag in ("code", "pre") and self.in_code > 0

    def handle_data(self, data: str) -> None:
        if not self.in_code:
            self.urls += _URL_IN_TEXT.findall(data)


def live_urls(text: str) -> list[str]:
    """Every URL GitHub would make a link or an image of in `text`, read with cmark-gfm and its
    extensions, raw HTML let through (as GitHub does, to its sanitizer)."""
    rendered = cmarkgfm.github_flavored_markdown_to_html(text, Options.CMARK_OPT_UNSAFE)
    links = _Links()
    links.feed(rendered)
    links.close()
    return links.urls
