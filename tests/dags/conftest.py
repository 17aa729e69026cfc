"""One DagBag for the whole session (parsing the dags/ folder once)."""

from __future__ import annotations

import pytest

from cabinet_leads import db


@pytest.fixture(scope="session")
def dagbag():
    from airflow.models import DagBag

    return DagBag(dag_folder=str(db.PROJECT_ROOT / "dags"))
