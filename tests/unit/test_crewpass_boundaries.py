"""The boundary between Hookline and CrewPass: the engine never imports the domain, and the domain
uses only the change feed's public API and the catalogue's own scopes."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.catalogue import BUILTIN_EVENT_TYPES
from crewpass.vocabulary import EVENT_SCOPES, EVENT_TYPES, SCOPES

ROOT = Path(__file__).resolve().parents[2]
#: The one module of the engine allowed to import CrewPass, and what it may import (lazily only).
CLI = Path("app/cli.py")
CLI_MAY_IMPORT = "crewpass.demo"


@dataclass(frozen=True)
class Import:
    """One import found in a module: the module it names, where, and whether inside a function."""

    path: Path
    line: int
    module: str
    in_function: bool

    def __str__(self) -> str:
        where = "inside a function" if self.in_function else "at module level"
        return f"{self.path}:{self.line} imports {self.module} {where}"


def python_files(*packages: str) -> list[Path]:
    return sorted(p.relative_to(ROOT) for package in packages for p in (ROOT / package).rglob("*.py"))


def imports_of(path: Path) -> Iterator[Import]:
    """Every module *path* imports: ``import a.b``, ``from a import b`` (as ``a.b`` too, since ``b``
    may be a module) and ``importlib.import_module("a.b")`` / ``__import__("a.b")`` with a literal name."""
    tree = ast.parse((ROOT / path).read_text(), filename=str(path))

    def visit(node: ast.AST, in_function: bool) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name, in_function)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield Import(path, node.lineno, node.module, in_function)
            for alias in node.names:
                yield Import(path, node.lineno, f"{node.module}.{alias.name}", in_function)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = (func.attr if isinstance(func, ast.Attribute)
                    else func.id if isinstance(func, ast.Name) else "")
            if name in ("import_module", "__import__"):
                yield Import(path, node.lineno, node.args[0].value, in_function)
        inside = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        for child in ast.iter_child_nodes(node):
            yield from visit(child, inside)

    yield from visit(tree, False)


def names(module: str, package: str) -> bool:
    """*module* is *package* or one of its submodules."""
    return module == package or module.startswith(package + ".")


def allowed_in_engine(found: Import) -> bool:
    """The single exception: ``app/cli.py`` importing ``crewpass.demo`` lazily, inside a function."""
    if found.path != CLI or not found.in_function:
        return False
    # ``from crewpass import demo`` is reported both as ``crewpass`` and ``crewpass.demo``
    return found.module in (CLI_MAY_IMPORT, "crewpass") or names(found.module, CLI_MAY_IMPORT)


def crewpass_imports(path: Path) -> list[Import]:
    return [i for i in imports_of(path) if names(i.module, "crewpass")]


def refused(path: Path) -> list[Import]:
    """The CrewPass imports of *path* that are not allowed; a bare ``crewpass`` import is refused
    unless it comes with its ``demo`` (``from crewpass import demo``)."""
    found = crewpass_imports(path)
    demo_lines = {i.line for i in found if i.module == CLI_MAY_IMPORT}
    return [i for i in found
            if not allowed_in_engine(i) or (i.module == "crewpass" and i.line not in demo_lines)]


ENGINE_FILES = python_files("app", "workers")


class TestTheEngineNeverImportsCrewPass:
    """No module under app/ or workers/ imports crewpass, except the lazy demo import in app/cli.py."""

    def test_the_engine_has_modules_to_check(self) -> None:
        assert CLI in ENGINE_FILES
        assert Path("app/changefeed/capture.py") in ENGINE_FILES
        assert any(p.parts[0] == "workers" for p in ENGINE_FILES)

    @pytest.mark.parametrize("path", ENGINE_FILES, ids=str)
    def test_no_engine_module_imports_crewpass(self, path: Path) -> None:
        assert [str(i) for i in refused(path)] == []

    def test_the_cli_imports_nothing_of_crewpass_but_its_demo_and_only_lazily(self) -> None:
        found = crewpass_imports(CLI)
        assert all(i.module == "crewpass" or names(i.module, CLI_MAY_IMPORT) for i in found), found
        assert all(i.in_function for i in found), found


class TestTheImportCheckItself:
    """The check above tells the allowed import from every other one."""

    @staticmethod
    def check(source: str, path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source)
        monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
        return [i.module for i in refused(path)]

    @pytest.mark.parametrize("source", [
        "def demo():\n    from crewpass.demo import run_demo\n",
        "def demo():\n    import crewpass.demo\n",
        "def demo():\n    from crewpass import demo as cp_demo\n",
        "class App:\n    def demo(self):\n        import crewpass.demo as d\n",
    ])
    def test_a_lazy_demo_import_in_the_cli_is_allowed(self, source: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
        assert self.check(source, CLI, tmp_path, monkeypatch) == []

    @pytest.mark.parametrize(("source", "path"), [
        ("from crewpass.demo import run_demo\n", CLI),  # at module level
        ("def demo():\n    from crewpass.feed import watch_crewpass\n", CLI),
        ("def demo():\n    import crewpass\n", CLI),
        ("def demo():\n    from crewpass import demo, models\n", CLI),
        ("if True:\n    import crewpass.demo\n", CLI),
        ("def demo():\n    from crewpass.demo import run_demo\n", Path("app/demo.py")),
        ("import crewpass.models\n", Path("app/changefeed/relay.py")),
        ("from crewpass import gating\n", Path("workers/tasks.py")),
        ("import importlib\nimportlib.import_module('crewpass.feed')\n", Path("app/db.py")),
    ])
    def test_any_other_import_is_refused(self, source: str, path: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
        assert self.check(source, path, tmp_path, monkeypatch) != []

    def test_a_module_merely_named_like_crewpass_is_not_crewpass(self, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
        source = "import crewpassage\nfrom app.contracts.crewpass import CrewPassContract\n"
        assert self.check(source, Path("app/x.py"), tmp_path, monkeypatch) == []


class TestTheCatalogueAgrees:
    """CrewPass's vocabulary names the same five events, with the same scopes, as Hookline's catalogue."""

    def test_each_event_needs_the_scope_the_catalogue_gives_it(self) -> None:
        catalogue = {t.name: t.scope for t in BUILTIN_EVENT_TYPES}
        assert {name: catalogue.get(name) for name in EVENT_SCOPES} == EVENT_SCOPES

    def test_the_catalogues_crew_events_are_exactly_the_crewpass_events(self) -> None:
        crew_events = {t.name for t in BUILTIN_EVENT_TYPES if t.name.startswith("crew.")}
        assert crew_events == set(EVENT_TYPES)

    def test_the_scopes_are_the_catalogues(self) -> None:
        assert set(SCOPES) == {t.scope for t in BUILTIN_EVENT_TYPES if t.name in EVENT_SCOPES}


CREWPASS_FILES = python_files("crewpass")
#: The domain proper; the demo and its simulator run Hookline itself and may use more of it.
DOMAIN_FILES = [p for p in CREWPASS_FILES if p.name not in ("demo.py", "simulator.py")]


class TestCrewPassUsesThePublicApi:
    """CrewPass imports the change feed as ``app.changefeed``, never one of its submodules, and the
    domain (all but the demo) imports nothing else of Hookline."""

    def test_crewpass_uses_the_change_feed(self) -> None:
        used = [i for path in CREWPASS_FILES for i in imports_of(path) if i.module == "app.changefeed"]
        assert used, "crewpass no longer imports app.changefeed"

    @pytest.mark.parametrize("path", CREWPASS_FILES, ids=str)
    def test_no_change_feed_submodule_is_imported(self, path: Path) -> None:
        import app.changefeed as changefeed

        public = {f"app.changefeed.{name}" for name in changefeed.__all__}
        private = [str(i) for i in imports_of(path)
                   if names(i.module, "app.changefeed") and i.module != "app.changefeed"
                   and i.module not in public]
        assert private == []

    @pytest.mark.parametrize("path", DOMAIN_FILES, ids=str)
    def test_the_domain_uses_nothing_of_hookline_but_the_change_feed(self, path: Path) -> None:
        """Not even its small helpers (``app.ids.new_id``, ``app.models.utcnow``): CrewPass has its own."""
        engine = [str(i) for i in imports_of(path)
                  if names(i.module, "app") and not names(i.module, "app.changefeed")]
        assert engine == []
