"""One run-parameter model: the DAG's Params, the CLI's options and the Python API have the same
defaults and bounds (read back from the parsed DAG and the argparse parser), and an out-of-range
value is refused by each with a clear first line."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import pytest
from airflow.sdk.definitions.param import ParamValidationError

from cabinet_leads import cli, params
from cabinet_leads.funnel import LIMBO_STAGES

MAIN = "reconcile_cabinet_leads_pipeline"
DAG_PARAMS = [p for p in params.RUN_PARAMETERS.values() if p.dag]


def reconcile_options() -> dict[str, argparse.Action]:
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["reconcile"]._actions}


def test_the_dag_takes_every_shared_parameter_and_as_of(dagbag):
    assert list(dagbag.dags[MAIN].params) == [p.name for p in DAG_PARAMS] + ["statement_timeout_minutes", "as_of"]
    assert {p.name for p in DAG_PARAMS} == {
        "process_recent", "recent_days", "process_limbo", "limbo_stages", "batch_size", "dry_run"}


@pytest.mark.parametrize("param", DAG_PARAMS, ids=lambda p: p.name)
def test_dag_cli_and_api_share_defaults_and_bounds(dagbag, param):
    dag_param = dagbag.dags[MAIN].params.get_param(param.name)
    option = reconcile_options()[param.name]
    assert dag_param.description == param.description
    if param.choices:
        assert dag_param.value == list(param.default) and list(option.default) == list(param.default)
        assert dag_param.schema["items"]["enum"] == list(LIMBO_STAGES) == list(param.choices)
        assert option.type(",".join(LIMBO_STAGES)) == LIMBO_STAGES
    else:
        assert dag_param.value == option.default == param.default
    if param.minimum is not None:
        low, high = dag_param.schema["minimum"], dag_param.schema["maximum"]
        assert (low, high) == (param.minimum, param.maximum)
        # the CLI accepts exactly the DAG's range, the API's check too
        assert option.type(str(low)) == low and option.type(str(high)) == high
        assert param.check(low) == low and param.check(high) == high
        for bad in (low - 1, high + 1):
            with pytest.raises(argparse.ArgumentTypeError, match=f"must be between {low} and {high}"):
                option.type(str(bad))
            with pytest.raises(ValueError, match=f"^{param.name} must be between {low} and {high}, got {bad}$"):
                param.check(bad)
            with pytest.raises(ParamValidationError) as refused:
                dag_param.resolve(bad)
            first = str(refused.value).splitlines()[0]
            assert first == f"{bad} is {'less than the minimum' if bad < low else 'greater than the maximum'} of " \
                            f"{low if bad < low else high}"


def test_dag_refuses_unknown_or_no_stages(dagbag):
    dag_param = dagbag.dags[MAIN].params.get_param("limbo_stages")
    with pytest.raises(ParamValidationError, match="'OK' is not one of"):
        dag_param.resolve(["OK"])
    with pytest.raises(ParamValidationError, match="should be non-empty"):
        dag_param.resolve([])


def test_the_statement_limit_param_sets_the_limit_of_every_task_transaction(dagbag, monkeypatch, engine):
    """Param statement_timeout_minutes reaches the job's transactions (on a real PostgreSQL)."""
    import cabinet_leads_airflow

    dag_param = dagbag.dags[MAIN].params.get_param("statement_timeout_minutes")
    assert (dag_param.value, dag_param.schema["minimum"], dag_param.schema["maximum"]) == (10, 1, 1440)
    with pytest.raises(ParamValidationError):
        dag_param.resolve(0)
    monkeypatch.setattr(cabinet_leads_airflow, "reconcile_engine", lambda **_: engine)
    spec = importlib.util.spec_from_file_location("main_dag_file", Path(dagbag.dags[MAIN].fileloc))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pipeline = module._pipeline({"batch_size": 500, "statement_timeout_minutes": 7})
    with pipeline.session.connect() as conn, pipeline.session.tx(conn):
        limit = pipeline.session.exec(conn, "show statement_timeout").fetchone()[0]
    assert limit == "7min"
