"""robots.txt through Protego: wildcards (`*`), the end anchor (`$`), the longest matching rule, and the
rule named in the refusal. The standard library's parser let `Disallow: /*.php` through."""

from __future__ import annotations

from stage5.site.robots import Robots

URL = "https://www.diningcode.com/robots.txt"


def robots(text: str) -> Robots:
    return Robots(URL, text)


def test_a_wildcard_rule_refuses_the_detail_page() -> None:
    rules = robots("User-agent: *\nDisallow: /*.php\n")
    assert rules.refused_by("/profile.php") == "Disallow: /*.php"
    assert rules.refused_by("/profile.php?rid=abc") == "Disallow: /*.php"
    assert rules.refused_by("/API/profile/") is None


def test_the_end_anchor_matches_only_the_whole_path() -> None:
    rules = robots("User-agent: *\nDisallow: /profile.php$\n")
    assert rules.refused_by("/profile.php") == "Disallow: /profile.php$"
    assert rules.refused_by("/profile.php?rid=abc") is None
    assert rules.refused_by("/profile.phpx") is None


def test_the_longest_matching_rule_wins() -> None:
    rules = robots("User-agent: *\nDisallow: /API/\nAllow: /API/isearch/\n")
    assert rules.refused_by("/API/isearch/") is None  # the longer Allow wins over the shorter Disallow
    assert rules.refused_by("/API/profile/") == "Disallow: /API/"
    rules = robots("User-agent: *\nAllow: /*.php\nDisallow: /profile.php\n")
    assert rules.refused_by("/profile.php") == "Disallow: /profile.php"  # longer than /*.php


def test_rules_for_other_agents_and_crawl_delay() -> None:
    rules = robots("User-agent: Googlebot\nDisallow: /\n\nUser-agent: *\nDisallow: /private\nCrawl-delay: 2.5\n")
    assert rules.refused_by("/profile.php") is None
    assert rules.refused_by("/private/x") == "Disallow: /private"
    assert rules.crawl_delay == 2.5
    assert robots("").crawl_delay is None and robots("").refused_by("/profile.php") is None
