"""``--threading``'s option and the names a style gives a series (``scaler.threadstyles``),
from hand-written texts and entries: the accepted styles and every refusal word for word."""

from __future__ import annotations

import pytest

from scaler.errors import UsageError
from scaler.threadstyles import label, parse_threading, series_name

CHOICES = "choose from tuned, defaults, model-zoo (comma-separated to sweep them)"


def test_styles_are_read_in_the_order_given_without_spaces():
    """One style, and all three with spaces around each name, keep the order written."""
    assert parse_threading("tuned") == ("tuned",)
    assert parse_threading(" model-zoo ,tuned,  defaults ") == ("model-zoo", "tuned", "defaults")


@pytest.mark.parametrize(("text", "shown"), [
    ("fast", "'fast'"), ("tuned,Tuned", "'Tuned'"), ("tuned,,defaults", "'(empty)'"),
    ("", "'(empty)'"), ("tuned,", "'(empty)'")])
def test_an_unknown_or_empty_style_is_refused_naming_it_and_the_choices(text, shown):
    """A name that is not a style (case counts), or an empty one, is refused with the name
    (or ``(empty)``) and the three choices."""
    with pytest.raises(UsageError) as caught:
        parse_threading(text)
    assert str(caught.value) == f"unknown --threading style {shown}: {CHOICES}"


def test_a_style_named_twice_is_refused():
    """The same style twice (spaces do not make it another) is refused with the text given."""
    with pytest.raises(UsageError) as caught:
        parse_threading("tuned, defaults,tuned ")
    assert str(caught.value) == "--threading 'tuned, defaults,tuned ' names a style twice"


def test_a_series_is_its_placement_alone_only_for_a_run_of_tuned_alone():
    """Tuned alone, or no style recorded: the placement (older runs look the same); any other
    single style, or a sweep (tuned included), names the style after the placement."""
    assert series_name("shared", "tuned", ("tuned",)) == "shared"
    assert series_name("pinned", "tuned", ()) == "pinned"
    assert series_name("pinned", "defaults", ("defaults",)) == "pinned-defaults"
    assert series_name("shared", "tuned", ("tuned", "model-zoo")) == "shared-tuned"
    assert series_name("shared", "model-zoo", ("tuned", "model-zoo")) == "shared-model-zoo"


def test_a_label_is_the_recorded_series_else_the_placement_with_a_style_not_tuned():
    """A recorded series wins (even over a style); an empty one does not count; without it
    the placement, with its style unless that is tuned or absent."""
    assert label({"series": "pinned-tuned", "placement": "pinned", "threading": "x"}) == \
        "pinned-tuned"
    assert label({"series": "", "placement": "shared", "threading": "defaults"}) == \
        "shared-defaults"
    assert label({"placement": "shared", "threading": "model-zoo"}) == "shared-model-zoo"
    assert label({"placement": "shared", "threading": "tuned"}) == "shared"
    assert label({"placement": "vm"}) == "vm"
    assert label({"placement": "vm", "threading": None}) == "vm"
