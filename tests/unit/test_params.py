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
