"""The documentation: the README quickstart and the MkDocs site under docs/.

- the generated reference pages (``docs/reference/options.md`` from the plugin's
  ``pytest_addoption``, ``docs/reference/schema.md`` from the models) equal what
  ``docs/gen_reference.py`` generates now, and hold every option, ini setting and model;
- the README stays a quickstart (at most 250 lines) whose Set-up commands are the ones
  ``.ci/run`` runs, and whose links into docs/ resolve;
- ``mkdocs.yml`` lists every page in ``nav``, with the Material theme and its search;
- ``mkdocs build --strict`` succeeds (no broken link or anchor, no page outside ``nav``).
  Without mkdocs and mkdocs-material installed that test skips, unless
  ``ORCHESTRATOR_REQUIRE_DOCS=1`` (set by .ci/run) makes it fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from pytest_orchestrator import plugin
from pytest_orchestrator.models import report_json_schema

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"
MKDOCS_YML = ROOT / "mkdocs.yml"
REGENERATE = "python docs/gen_reference.py"
TEST_COMMAND = "pytest -n auto --orchestrate --target-score=90"
MAX_README_LINES = 250


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the generated pages -----------------------------------------------------------------------


@pytest.mark.parametrize("page", ["reference/options.md", "reference/schema.md"])
def test_generated_page_is_current(page: str) -> None:
    gen = generator()
    path = DOCS / page
    render = gen.PAGES[path]
    assert path.is_file(), f"{page} is missing; run `{REGENERATE}` from the repository root"
    committed = path.read_text(encoding="utf-8")
    assert committed == render(), (
        f"docs/{page} is stale (an option, a help text, a default or a model changed); "
        f"run `{REGENERATE}` from the repository root and commit the result"
    )


def test_options_page_has_every_option_and_ini_setting_with_its_help() -> None:
    text = generator().render_options()
    rows = {line.split(" | ", 1)[0]: line for line in text.splitlines() if line.startswith("| ")}
    for option in plugin.OPTIONS:
        row = next((r for k, r in rows.items() if f"`{option.flag}" in k), None)
        if row is None:
            row = next(r for k, r in rows.items() if f"<code>{option.flag}=" in k)
        assert f"`{option.ini}`" in row, option.flag
        assert option.help.split(" (")[0].split(",")[0] in row.replace("\\", ""), option.flag
    ini_only = [name for name in plugin.ini_names() if name not in {o.ini for o in plugin.OPTIONS}]
    assert ini_only, "the plugin has ini-only settings"
    for name in ini_only:
        assert any(key == f"| `{name}`" for key in rows), name
    # the defaults come from the settings the code applies, not only from help texts
    assert "| `orchestrate_weights` | args | `tests=30 coverage=30 lint=20 security=20` |" in text
    assert "`.bandit`, `.flake8` |" in text.split("| `orchestrate_guard_core_files` |")[1]
    assert "| `--orchestrate` | `orchestrate` (bool) | off |" in text


def test_schema_page_has_every_definition_and_field() -> None:
    text = generator().render_schema()
    schema = report_json_schema()
    for name, definition in schema["$defs"].items():
        assert f"\n### {name}\n" in text, name
        section = text.split(f"\n### {name}\n", 1)[1].split("\n### ", 1)[0]
        for field in definition.get("properties", {}):
            assert f"| `{field}` |" in section, f"{name}.{field}"
    for field in schema["properties"]:
        assert f"| `{field}` |" in text.split("## Definitions")[0], field
    embedded = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(embedded) == schema


# -- the README ------------------------------------------------------------------------------------


def test_readme_is_a_quickstart() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines, more than {MAX_README_LINES}: move reference "
        "text to a page under docs/"
    )


def test_readme_setup_commands_are_the_ones_ci_runs() -> None:
    readme = README.read_text(encoding="utf-8")
    setup = readme.split("\n## Set-up\n", 1)[1].split("\n## ", 1)[0]
    commands = setup.split("```bash\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert commands == [
        'pip install -e ".[test]" && pytest --orchestrate examples/demo',
        TEST_COMMAND,
    ]
    ci = CI.read_text(encoding="utf-8").splitlines()
    assert TEST_COMMAND in ci
    assert 'python -m pip install --quiet -e ".[test]"' in ci
    assert "export ORCHESTRATOR_REQUIRE_DOCS=1" in ci
    docs_build = 'mkdocs build --strict --site-dir "$(mktemp -d)"'
    assert ci.index(docs_build) == ci.index("mypy") + 1
    assert ci.index("export ORCHESTRATOR_REQUIRE_DOCS=1") < ci.index(TEST_COMMAND)


def slug(heading: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) and GitHub give a heading, for ours."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    out: set[str] = set()
    fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("#"):
            out.add(slug(line.lstrip("#")))
    return out


def test_readme_links_into_docs_resolve() -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text(encoding="utf-8"))
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert sum(link.startswith("docs/") for link in local) >= 15
    for link in local:
        target, _, anchor = link.partition("#")
        path = ROOT / target
        assert path.is_file(), f"README.md links to {target}, which does not exist"
        if anchor:
            assert anchor in anchors(path), f"README.md links to {link}: no such heading"


def test_slug_matches_the_anchors_mkdocs_makes() -> None:
    assert slug("New code: a pull-request gate") == "new-code-a-pull-request-gate"
    assert slug("`--orchestrate-report=github` without the action") == (
        "-orchestrate-reportgithub-without-the-action"
    )


# -- mkdocs.yml and the build ----------------------------------------------------------------------


def nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    raise AssertionError(f"unexpected nav entry {nav!r}")


def test_mkdocs_config_lists_every_page_with_material_and_search() -> None:
    config = yaml.safe_load(MKDOCS_YML.read_text(encoding="utf-8"))
    assert config["theme"]["name"] == "material"
    assert config["strict"] is True
    assert "search" in config["plugins"]
    pages = nav_pages(config["nav"])
    assert len(pages) == len(set(pages)), "a page is twice in nav"
    on_disk = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))
    assert sorted(pages) == on_disk
    # strict fails on these only when mkdocs reports them as warnings
    assert set(config["validation"].values()) == {"warn"}


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    packages = {"mkdocs": "mkdocs", "material": "mkdocs-material"}
    missing = [packages[m] for m in packages if importlib.util.find_spec(m) is None]
    if missing:
        why = f"{' and '.join(missing)} not installed (pip install -e '.[test]')"
        if os.environ.get("ORCHESTRATOR_REQUIRE_DOCS") == "1":
            pytest.fail(f"ORCHESTRATOR_REQUIRE_DOCS=1 but {why}")
        pytest.skip(why)
    site = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(MKDOCS_YML),
            "-d",
            str(site),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (site / "reference" / "options" / "index.html").is_file()
    index = json.loads((site / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert any("orchestrate_weights" in doc["text"] for doc in index["docs"])
    assert not (site / "gen_reference.py").exists()
