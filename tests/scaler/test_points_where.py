"""A bad field of a group given to the points is named with the group's place in the list
(hand-made groups, pure)."""

from __future__ import annotations

import pytest

from scaler.points import typed_groups
from scaler.schema.checks import FieldError


def test_a_bad_field_is_named_with_its_group_s_place():
    with pytest.raises(FieldError) as caught:
        typed_groups([{"id": 1}, {"id": 2, "instances": "x"}])
    assert caught.value.field == "groups[1].instances"
    assert str(caught.value) == "groups[1].instances should be a whole number >= 1, not 'x'"
