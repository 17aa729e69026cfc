"""The domain package stays free of Airflow; DAG files never import each other."""

import ast

import pytest

from cabinet_leads import db

DOMAIN = sorted((db.PROJECT_ROOT / "include" / "cabinet_leads").rglob("*.py"))
DAGS = sorted((db.PROJECT_ROOT / "dags").glob("*.py"))


def imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", DOMAIN, ids=lambda p: str(p.relative_to(db.PROJECT_ROOT / "include")))
def test_domain_module_imports_no_airflow(path):
    assert not [m for m in imported_modules(path) if m.split(".")[0] in ("airflow", "cabinet_leads_airflow")]


@pytest.mark.parametrize("path", DAGS, ids=lambda p: p.name)
def test_dag_files_do_not_import_each_other(path):
    others = {p.stem for p in DAGS}
    assert not [m for m in imported_modules(path) if m.split(".")[0] in others | {"dags"}]


def test_there_are_modules_to_check():
    assert len(DOMAIN) >= 8 and any(p.parent.name == "engine" for p in DOMAIN)
    assert {p.stem for p in DAGS} == {
        "reconcile_cabinet_leads_pipeline", "reconcile_cabinet_leads_watchdog", "reconcile_cabinet_leads_verify"}


def test_engine_modules_never_import_the_pipeline():
    """The engine's arrows point down: its modules share a WorkSession, never the pipeline class."""
    for path in DOMAIN:
        if path.parent.name == "engine":
            assert "cabinet_leads.pipeline" not in imported_modules(path), path.name
