"""cpulist parsing is strict and formatting is its compact inverse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from affinity import CpuListError, format_cpulist, parse_cpulist


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("", ()),
        ("\n", ()),
        ("0", (0,)),
        ("0-3,8-11\n", (0, 1, 2, 3, 8, 9, 10, 11)),
        ("5,1,3", (1, 3, 5)),
        ("0-2,1", (0, 1, 2)),
        ("10-12,100", (10, 11, 12, 100)),
        ("7-7", (7,)),
    ],
)
def test_parse(text, cpus):
    assert parse_cpulist(text) == cpus


@pytest.mark.parametrize(
    "text",
    ["1-", "a", "3-1", "1,,2", ",", "1,", "-1", "1 ,2", "0-3:2", "1\n2", "0x1", "٣", "99999999"],
)
def test_parse_rejects_malformed_lists_naming_them(text):
    with pytest.raises(CpuListError) as info:
        parse_cpulist(text)
    assert repr(text.strip()) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("cpus", "text"),
    [
        ((), ""),
        ((0,), "0"),
        ((0, 1, 2, 3, 8), "0-3,8"),
        ([9, 8, 1, 1, 0], "0-1,8-9"),
        ((3, 5), "3,5"),
    ],
)
def test_format(cpus, text):
    assert format_cpulist(cpus) == text


def test_format_rejects_negative_numbers():
    with pytest.raises(CpuListError, match=r"^negative CPU number -2 in \[-2, -1, 0\]$"):
        format_cpulist([0, -1, -2])


def test_the_largest_cpu_number_is_accepted_and_one_more_is_not():
    assert parse_cpulist("65534-65535") == (65534, 65535)
    with pytest.raises(CpuListError, match="^malformed cpulist '0-65536': 65536 is above 65535$"):
        parse_cpulist("0-65536")


@given(st.sets(st.integers(0, 300)))
def test_round_trip(cpus):
    text = format_cpulist(cpus)
    assert parse_cpulist(text) == tuple(sorted(cpus))
    assert format_cpulist(parse_cpulist(text)) == text
