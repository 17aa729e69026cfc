"""The one duration parser of the CLI and the environment."""

import pytest

from cabinet_leads.params import parse_duration


@pytest.mark.parametrize(
    ("text", "bare_unit", "seconds"),
    [("2h", "s", 7200), ("90m", "s", 5400), ("90min", "s", 5400), (" 45S ", "s", 45), ("1500ms", "s", 1.5),
     ("3d", "s", 259200), ("3600", "s", 3600), ("1500", "ms", 1.5), ("2.5s", "ms", 2.5)],
)
def test_durations(text, bare_unit, seconds):
    assert parse_duration(text, bare_unit=bare_unit, maximum_s=10**9) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "", "s", "inf", "1e400s", "nan", "-infh", "-5m", "0", "2 hours", "2y"])
def test_non_durations_are_one_sentence(text):
    with pytest.raises(ValueError, match=r"duration"):
        parse_duration(text, maximum_s=10**9)


def test_maximum():
    assert parse_duration("24h", maximum_s=86400) == 86400
    with pytest.raises(ValueError, match="at most 86400 s"):
        parse_duration("25h", maximum_s=86400)


# ----------------------------------------------------------------------------- the run-parameter model

import argparse  # noqa: E402

import sqlalchemy as sa  # noqa: E402

from cabinet_leads import cli, params  # noqa: E402
from cabinet_leads.funnel import LIMBO_STAGES  # noqa: E402
from cabinet_leads.pipeline import ReconcileCabinetLeadsPipeline  # noqa: E402

BOUNDED = [p for p in params.RUN_PARAMETERS.values() if p.minimum is not None]


def reconcile_options() -> dict[str, argparse.Action]:
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["reconcile"]._actions}


def nowhere(tmp_path) -> sa.Engine:
    """An engine on a socket directory with no server: a check that passes fails later, connecting."""
    return sa.create_engine(f"postgresql+psycopg://nobody@/nowhere?host={tmp_path}")


def test_the_model_holds_every_run_parameter():
    assert set(params.RUN_PARAMETERS) == {
        "process_recent", "recent_days", "process_limbo", "limbo_stages", "batch_size", "dry_run", "full",
        "run_lock_timeout", "statement_timeout_ms", "hot_key_limit"}
    assert params.LIMBO_STAGES.choices == LIMBO_STAGES  # the stage names of cabinet_leads.funnel, not a copy
    assert (params.BATCH_SIZE.minimum, params.BATCH_SIZE.maximum) == (50, 5000)
    assert (params.RECENT_DAYS.minimum, params.RECENT_DAYS.maximum) == (1, 365)


@pytest.mark.parametrize("param", [p for p in params.RUN_PARAMETERS.values() if p.cli], ids=lambda p: p.name)
def test_cli_options_take_default_and_bounds_from_the_model(param):
    option = reconcile_options()[param.name]
    assert param.cli in option.option_strings
    assert option.default == param.default
    if param.minimum is not None:
        assert option.type(str(param.minimum)) == param.minimum
        assert option.type(str(param.maximum)) == param.maximum
        for bad in (param.minimum - (0.5 if param.unit else 1), param.maximum + 1):  # durations: fractions too
            with pytest.raises(argparse.ArgumentTypeError, match=f"{param.cli} must be between"):
                option.type(str(bad))


@pytest.mark.parametrize("param", [p for p in BOUNDED if p.cli], ids=lambda p: p.name)
def test_cli_out_of_range_is_one_line_and_exit_2(param, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["reconcile", param.cli, str(param.maximum + 1)])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"{param.cli} must be between {param.minimum} and {param.maximum}" in lines[0]


def test_cli_stage_names_are_checked_by_the_model(capsys):
    option = reconcile_options()["limbo_stages"]
    assert option.type("no_driver, TRIPS_NO_CLAIM") == ("NO_DRIVER", "TRIPS_NO_CLAIM")
    with pytest.raises(SystemExit) as exited:
        cli.main(["reconcile", "--limbo-stages", "NO_DRIVER,OK"])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "unknown --limbo-stages value(s) OK" in lines[0]


@pytest.mark.parametrize("name", ["batch_size", "run_lock_timeout", "statement_timeout_ms", "hot_key_limit"])
def test_api_constructor_checks_with_the_model(name, tmp_path):
    param = params.RUN_PARAMETERS[name]
    for good in (param.minimum, param.maximum):
        pipeline = ReconcileCabinetLeadsPipeline(nowhere(tmp_path), **{name: good})
        kept = pipeline.session.statement_timeout_ms if name == "statement_timeout_ms" else getattr(pipeline, name)
        assert kept == good
    for bad in (param.minimum - 1, param.maximum + 1):
        with pytest.raises(ValueError, match=rf"^{name} must be between {param.minimum} and {param.maximum}") as err:
            ReconcileCabinetLeadsPipeline(nowhere(tmp_path), **{name: bad})
        assert "\n" not in str(err.value)


def test_api_run_checks_recent_days_and_stages_before_touching_the_database(tmp_path):
    pipeline = ReconcileCabinetLeadsPipeline(nowhere(tmp_path))
    for days in (0, 366):
        with pytest.raises(ValueError, match=r"^recent_days must be between 1 and 365, got"):
            pipeline.run_reconcile(recent_days=days)
    with pytest.raises(ValueError, match=r"^unknown limbo_stages value\(s\) OK; choose from NO_IDENTITY"):
        pipeline.run_reconcile(limbo_stages=["OK"])
    with pytest.raises(ValueError, match=r"^limbo_stages must name at least one of"):
        pipeline.run_reconcile(limbo_stages=[])
    with pytest.raises(sa.exc.OperationalError):  # 365 passes the check: the run then tries to connect
        pipeline.run_reconcile(recent_days=365)


def test_environment_settings_are_checked_by_the_model(monkeypatch, tmp_path):
    monkeypatch.setenv("CABINET_LEADS_HOT_KEY_LIMIT", "1001")
    with pytest.raises(ValueError, match="^CABINET_LEADS_HOT_KEY_LIMIT must be between 1 and 1000, got 1001$"):
        ReconcileCabinetLeadsPipeline(nowhere(tmp_path))
    monkeypatch.setenv("CABINET_LEADS_HOT_KEY_LIMIT", "7")
    monkeypatch.setenv("CABINET_LEADS_STATEMENT_TIMEOUT", "2min")
    pipeline = ReconcileCabinetLeadsPipeline(nowhere(tmp_path))
    assert pipeline.hot_key_limit == 7 and pipeline.session.statement_timeout_ms == 120_000
    monkeypatch.setenv("CABINET_LEADS_STATEMENT_TIMEOUT", "25h")
    with pytest.raises(ValueError, match="^CABINET_LEADS_STATEMENT_TIMEOUT must be a duration .* at most 24h"):
        ReconcileCabinetLeadsPipeline(nowhere(tmp_path))


@pytest.mark.parametrize(("value", "message"), [(2.5, "a whole number"), ("many", "a whole number"),
                                                 (True, "a whole number"), (None, "a whole number")])
def test_non_numbers_are_one_sentence(value, message):
    with pytest.raises(ValueError, match=f"^batch_size must be {message}, got"):
        params.BATCH_SIZE.check(value)


def test_readme_table_lists_every_parameter():
    table = params.markdown_table().splitlines()
    assert len(table) == 2 + len(params.RUN_PARAMETERS)
    assert "| `batch_size` | `--batch-size` | yes | 500 | 50–5000 | Leads per transaction |" in table
