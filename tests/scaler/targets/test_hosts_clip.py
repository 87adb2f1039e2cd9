"""A hostile hosts file cannot flood the one-line refusal: a long ssh option keyword and a
long list of unknown keys are cut at a stated length, saying how much was cut (pure)."""

from __future__ import annotations

import pytest

from scaler.errors import UsageError
from scaler.hosts import check_ssh_option, load_hosts

KNOWN = "cpus, destination, identity_file, name, port, python, ssh_options, workdir"


def test_a_long_unknown_ssh_keyword_is_cut_at_60_characters():
    key = "A" * 100
    with pytest.raises(UsageError) as info:
        check_ssh_option(f"{key}=yes")
    said = str(info.value)
    assert said.startswith(f"ssh option {'A' * 60}... (40 more characters cut) is not allowed "
                           "in a hosts file (allowed: ")
    # 60 characters pass whole
    with pytest.raises(UsageError) as info:
        check_ssh_option(f"{'B' * 60}=yes")
    assert str(info.value).startswith(f"ssh option {'B' * 60} is not allowed in a hosts file")


def test_a_long_list_of_unknown_keys_is_cut_at_120_characters(tmp_path):
    names = [f"k{i:02d}{'x' * 20}" for i in range(10)]  # 10 keys of 23 characters
    path = tmp_path / "hosts.toml"
    path.write_text("[[host]]\nname = 'n1'\ndestination = 'u@h'\n"
                    + "".join(f"{name} = 1\n" for name in names))
    with pytest.raises(UsageError) as info:
        load_hosts(path)
    listed = ", ".join(names)  # sorted already; 10 * 23 + 9 * 2 = 248 characters
    assert str(info.value) == (f"host 'n1': unknown key(s) {listed[:120]}... "
                               f"({len(listed) - 120} more characters cut) (known: {KNOWN})")
