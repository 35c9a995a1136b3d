"""robots.txt, as Scrapy's project template honours it by default: the site's rules for the paths the
crawl needs, and its Crawl-delay. Pure: text in, verdicts out (fetching and caching are run.py's)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from stage5.site.diningcode import DETAIL_PATH, PROFILE_API_PATH, SEARCH_PATH, Endpoints

AGENT = "*"  # stage5 sends browser user agents, so the rules for every agent are the ones that apply


@dataclass(frozen=True)
class Robots:
    url: str  # the robots.txt it was read from
    text: str

    @functools.cached_property
    def _parser(self) -> RobotFileParser:
        parser = RobotFileParser(self.url)
        parser.parse(self.text.splitlines())
        return parser

    def refused_by(self, path: str) -> str | None:
        """The rule that refuses `path` ('Disallow: /profile'), or None when the path may be fetched."""
        base = f"{urlsplit(self.url).scheme}://{urlsplit(self.url).netloc}"
        if self._parser.can_fetch(AGENT, base + path):
            return None
        rules = [line.strip() for line in self.text.splitlines() if line.strip().lower().startswith("disallow:")]
        matching = [r for r in rules if path.startswith(r.split(":", 1)[1].strip() or "\0")]
        return max(matching, key=len) if matching else "a rule for user-agent *"

    @property
    def crawl_delay(self) -> float | None:
        delay = self._parser.crawl_delay(AGENT)
        return float(delay) if delay is not None else None


def needed(endpoints: Endpoints, detail_source: str = "auto") -> list[tuple[str, str]]:
    """(robots.txt URL, path) of every path a crawl requests: the API host and the web host may differ;
    the profile API and the detail page as `detail_source` uses them."""
    paths = [(f"{endpoints.api}/robots.txt", SEARCH_PATH)]
    if detail_source != "html":
        paths.append((f"{endpoints.api}/robots.txt", PROFILE_API_PATH))
    if detail_source != "api":
        paths.append((f"{endpoints.www}/robots.txt", DETAIL_PATH))
    return paths
