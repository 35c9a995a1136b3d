"""robots.txt, as Scrapy's project template honours it by default: the site's rules for the paths the
crawl needs, and its Crawl-delay. Read by Protego (Scrapy's parser: `*` and `$` wildcards, the longest
matching rule wins, Allow over Disallow on a tie), not the standard library's, which knows no wildcards
(`Disallow: /*.php` let profile.php through). Pure: text in, verdicts out (fetching is politeness.py's)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from protego import Protego

from stage5.site.diningcode import DETAIL_PATH, PROFILE_API_PATH, SEARCH_PATH, Endpoints

AGENT = "*"  # stage5 sends browser user agents, so the rules for every agent are the ones that apply


@dataclass(frozen=True)
class Robots:
    url: str  # the robots.txt it was read from
    text: str

    @functools.cached_property
    def _parser(self) -> Protego:
        return Protego.parse(self.text)

    def refused_by(self, path: str) -> str | None:
        """The rule that refuses `path` ('Disallow: /*.php'), or None when the path may be fetched."""
        base = f"{urlsplit(self.url).scheme}://{urlsplit(self.url).netloc}"
        if self._parser.can_fetch(base + path, AGENT):
            return None
        rules = [line.split("#", 1)[0].strip() for line in self.text.splitlines()]
        disallows = [r for r in rules if r.lower().startswith("disallow:") and r.split(":", 1)[1].strip()]
        matching = [r for r in disallows if _matches(r.split(":", 1)[1].strip(), path)]
        return max(matching, key=len) if matching else "a rule for user-agent *"

    @property
    def crawl_delay(self) -> float | None:
        delay = self._parser.crawl_delay(AGENT)
        return float(delay) if delay is not None else None


def _matches(pattern: str, path: str) -> bool:
    """Whether a robots.txt path pattern matches `path` (only to name the refusing rule in messages;
    the verdict is Protego's)."""
    anchored = pattern.endswith("$")
    body = ".*".join(re.escape(part) for part in pattern.rstrip("$").split("*"))
    return re.match(body + ("$" if anchored else ""), path) is not None


def needed(endpoints: Endpoints, detail_source: str = "auto") -> list[tuple[str, str]]:
    """(robots.txt URL, path) of every path a crawl requests: the API host and the web host may differ;
    the profile API and the detail page as `detail_source` uses them."""
    paths = [(f"{endpoints.api}/robots.txt", SEARCH_PATH)]
    if detail_source != "html":
        paths.append((f"{endpoints.api}/robots.txt", PROFILE_API_PATH))
    if detail_source != "api":
        paths.append((f"{endpoints.www}/robots.txt", DETAIL_PATH))
    return paths
