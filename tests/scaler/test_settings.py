"""The parsers of the run options: what the fuzz (tests/scaler/cli/test_fuzz.py) found they
let through, each refused in one line."""

from __future__ import annotations

import pytest

from scaler.errors import UsageError
from scaler.settings import check_positive, parse_instances, parse_memory_mb


@pytest.mark.parametrize("text, fragment", [
    ("1-99999999999", "bad instance list"),  # today: a set of 10^11 ints, the OOM killer
    ("1-4097", "at most 4096"), ("0", "at least 1"), ("8-1", "runs backwards"),
    ("1,,2", "bad instance list"), ("١", "bad instance list"), ("1_000", "bad instance list"),
])
def test_bad_instance_lists(text, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_instances(text)


def test_good_instance_lists():
    assert parse_instances(" 1-3 , 8 ") == (1, 2, 3, 8)
    assert parse_instances("4096") == (4096,)


@pytest.mark.parametrize("text, fragment", [
    ("9" * 400 + "G", "bad --vm-memory"),  # today: OverflowError, a traceback
    ("99999999999G", "more than 16 TiB"), ("64M", "too small"), ("nan", "bad --vm-memory"),
    ("٣G", "bad --vm-memory"),
])
def test_bad_vm_memory(text, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_memory_mb(text)


@pytest.mark.parametrize("value, kwargs, fragment", [
    (float("nan"), {}, "finite"),  # today: accepted (a nan --min-duration never ends)
    (float("inf"), {"allow_zero": True}, "finite"), (-1.0, {}, "positive"),
    (0, {}, "positive"), (-(10**400), {}, "positive"),  # today: OverflowError formatting it
    (1e9, {"at_most": 604800}, "at most 604800"),
])
def test_bad_numbers(value, kwargs, fragment):
    with pytest.raises(UsageError, match=fragment):
        check_positive("--x", value, **kwargs)
