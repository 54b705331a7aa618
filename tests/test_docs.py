"""The documentation holds together: every relative link and picture of README.md, CHANGELOG.md and
docs/*.md names a file that exists, every ``#anchor`` a heading of that file (GitHub's heading ids), the
README stays a short front door, and docs/ has a page per topic."""
import re
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

from conftest import REPO

README_MAX_LINES = 200
MIN_DOC_PAGES = 6
# Pages linked before they are written, by the work that writes them; checked like any other once they exist.
PENDING: dict = {}  # pages linked before they are written: {path: the issue that writes them}

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"(`+).*?\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_LINK = re.compile(r"<(?:img|a|source)\b[^>]*?\b(?:src|href)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def doc_files() -> List[Path]:
    return [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]


def prose_lines(text: str) -> Iterator[Tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code removed."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, INLINE_CODE.sub("", line)


def links(text: str) -> Iterator[Tuple[int, str]]:
    """(line number, target) of every Markdown link, picture, reference definition and HTML src/href."""
    for number, line in prose_lines(text):
        for pattern in (INLINE_LINK, REFERENCE_LINK, HTML_LINK):
            for match in pattern.finditer(line):
                yield number, match.group(1)


def heading_ids(text: str) -> Set[str]:
    """The ids GitHub gives the headings of a Markdown file: lower case, punctuation dropped, spaces as
    hyphens, ``-1``, ``-2`` … for repeats."""
    ids: Set[str] = set()
    seen: Dict[str, int] = {}
    for _, line in prose_lines(text.replace("`", "")):
        match = HEADING.match(line)
        if not match:
            continue
        title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", match.group(2))  # a link's text stays
        title = re.sub(r"<[^>]+>", "", title)
        slug = re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        ids.add(slug if count == 0 else f"{slug}-{count}")
    return ids


def broken_links(page: Path, root: Path = REPO) -> List[str]:
    """What is wrong with ``page``'s relative links: one line per link."""
    problems = []
    text = page.read_text(encoding="utf-8")
    for number, target in links(text):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # a URL: not checked here (no network in tests)
        path_part, _, anchor = target.partition("#")
        target_file = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(root)}:{number}: {target}"
        try:
            relative = target_file.relative_to(root.resolve()).as_posix()
        except ValueError:
            problems.append(f"{where}: points outside the repository")
            continue
        if not target_file.exists():
            if relative not in PENDING:
                problems.append(f"{where}: {relative} does not exist")
            continue
        headings = heading_ids(target_file.read_text(encoding="utf-8")) if target_file.suffix == ".md" else None
        if anchor and headings is not None and anchor not in headings:
            problems.append(f"{where}: no heading with id '{anchor}' in {relative}")
    return problems


def test_every_relative_link_and_picture_resolves():
    problems = [p for page in doc_files() for p in broken_links(page)]
    assert problems == []


def test_readme_is_short_and_shows_its_pictures():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    pictures = [t for _, t in links(text) if t.endswith(".png")]
    assert "output/quickstart/overlay.png" in pictures and "output/quickstart/confusion_matrix.png" in pictures


def test_readme_maps_every_page_of_docs():
    linked = {t.partition("#")[0] for _, t in links((REPO / "README.md").read_text(encoding="utf-8"))}
    pages = sorted((REPO / "docs").glob("*.md"))
    assert len(pages) >= MIN_DOC_PAGES
    assert [p.name for p in pages if f"docs/{p.name}" not in linked] == []


def test_the_checker_finds_broken_files_and_anchors(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## Less memory: `--recompute`\n\n"
                                            "## Less memory: `--recompute`\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md#less-memory---recompute) [ok too](docs/a.md#less-memory---recompute-1) [url](https://x.org/y)\n"
        "[no file](docs/b.md) [no anchor](docs/a.md#nothing) ![pic](missing.png)\n"
        '<img src="gone.png" width="5">\n'
        "```\n[in code](docs/c.md)\n```\n"
        "`[inline code](docs/d.md)` [here](#title-of-nothing)\n"
        "[ref]: docs/e.md\n")
    problems = broken_links(page, tmp_path)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "docs/b.md: docs/b.md does not exist",
        "docs/a.md#nothing: no heading with id 'nothing' in docs/a.md",
        "missing.png: missing.png does not exist",
        "gone.png: gone.png does not exist",
        "#title-of-nothing: no heading with id 'title-of-nothing' in README.md",
        "docs/e.md: docs/e.md does not exist",
    ]
