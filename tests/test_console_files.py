"""The console's pages and modules as shipped (stage5/web/static), read as files: scripts only as modules
from this server, no handler attributes or inline styles, nothing loaded from another host, no markup
built from strings, every import resolving to an export; then as served: the security headers and a
script type browsers accept for modules."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from helpers import serving

from stage5.web.pages import CONTENT_SECURITY_POLICY, PAGES, STATIC

HTML = sorted(STATIC.glob("*.html"))
SCRIPTS = sorted(STATIC.glob("*.js"))
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name, never fetched


class Tags(HTMLParser):
    """Every start tag of a page with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(path: Path) -> list[tuple[str, dict[str, str | None]]]:
    parser = Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.tags


def test_every_route_has_its_page() -> None:
    assert sorted(STATIC / name for name in PAGES.values()) == HTML


@pytest.mark.parametrize("page", HTML, ids=lambda p: p.name)
def test_a_page_runs_modules_from_this_server_only(page: Path) -> None:
    tags = _tags(page)
    scripts = [attrs for tag, attrs in tags if tag == "script"]
    assert scripts == [{"type": "module", "src": f"/static/{page.stem}.js"}]  # no inline script
    for tag, attrs in tags:
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)  # no handler attribute
        assert "style" not in attrs and tag != "style", (tag, attrs)
        for name in ("href", "src", "action"):
            link = attrs.get(name)
            assert link is None or (link.startswith("/") and not link.startswith("//")), (tag, attrs)


def _shell(page: Path) -> str:
    text = page.read_text(encoding="utf-8")
    nav = text[text.index("<nav>") : text.index("</nav>")]
    signin = text[text.index('<form id="signin"') : text.index("</form>")]
    return nav + signin


def test_every_page_has_the_same_navigation_and_sign_in_form() -> None:
    shells = {page.name: _shell(page) for page in HTML}
    first = next(iter(shells.values()))
    assert all(shell == first for shell in shells.values()), shells.keys()
    for ids in ('id="error"', 'id="signin"', 'id="content" hidden', 'id="signout"'):
        assert all(ids in page.read_text(encoding="utf-8") for page in HTML), ids


@pytest.mark.parametrize("module", [*SCRIPTS, STATIC / "console.css"], ids=lambda p: p.name)
def test_no_markup_from_strings_and_nothing_from_elsewhere(module: Path) -> None:
    code = module.read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in code, f"{module.name} uses {sink}: fill <template> rows with textContent"
    elsewhere = re.findall(r"(?:https?:)?//[\w.-]+\.\w+[^\s\"'`)]*", code.replace(SVG_NAMESPACE, ""))
    assert not elsewhere and "@import" not in code, elsewhere


def _exports(module: Path) -> set[str]:
    return set(re.findall(r"^export (?:async )?(?:function|class|const|let) (\w+)", module.read_text(), re.M))


@pytest.mark.parametrize("module", SCRIPTS, ids=lambda p: p.name)
def test_every_import_names_an_export_of_a_shipped_module(module: Path) -> None:
    imports = re.findall(r'^import \{([^}]*)\} from "\./([\w.]+)";', module.read_text(), re.M)
    for names, source in imports:
        assert (STATIC / source).is_file(), f"{module.name} imports {source}, which is not shipped"
        wanted = {name.strip().split(" as ")[0] for name in names.split(",") if name.strip()}
        assert wanted <= _exports(STATIC / source), (module.name, source, wanted - _exports(STATIC / source))


async def test_pages_and_modules_are_served_with_the_security_headers(make_settings: Any) -> None:
    async with serving(make_settings()) as console:
        for path, name in [("/", "dashboard"), ("/jobs", "jobs"), ("/runs/12", "run"), ("/stores", "stores")]:
            async with console.session.get(console.server.make_url(path)) as page:
                assert page.status == 200 and page.content_type == "text/html", path
                assert f'src="/static/{name}.js"' in await page.text()
                assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
                assert page.headers["X-Content-Type-Options"] == "nosniff"
        async with console.session.get(console.server.make_url("/static/api.js")) as module:
            # With nosniff a browser runs a module only if it is served as JavaScript.
            assert module.status == 200 and module.content_type in ("text/javascript", "application/javascript")
            assert "script-src 'self'" in module.headers["Content-Security-Policy"]
        async with console.session.get(console.server.make_url("/static/../pages.py")) as outside:
            assert outside.status in (403, 404)  # nothing but the static folder
        status, _ = await console.call("GET", "/api/jobs")
        assert status == 200
