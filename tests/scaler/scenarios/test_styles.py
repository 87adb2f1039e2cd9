"""The layouts a scenario measures (``scaler.scenarios.styles.layouts``) from hand-written
settings: every placement under every style and cap, placements outermost, caps innermost."""

from __future__ import annotations

from types import SimpleNamespace

from scaler.scenarios.styles import layouts
from scaler.settings import Settings


def session(**settings) -> SimpleNamespace:
    return SimpleNamespace(settings=Settings(**settings))  # layouts reads the settings only


def test_one_placement_one_style_native_kernels():
    """The default run: one layout, named by its placement alone."""
    assert layouts(session(placements=("pinned",))) == [("pinned", "tuned")]


def test_placements_outermost_then_styles_in_the_order_given():
    """Two placements by two styles, native kernels: four layouts, each placement's together,
    styles in the order written (not sorted)."""
    assert layouts(session(placements=("shared", "pinned"), threading=("tuned", "defaults"))) \
        == [("shared", "tuned"), ("shared", "defaults"), ("pinned", "tuned"),
            ("pinned", "defaults")]


def test_caps_are_innermost_and_named_after_the_placement():
    """Two caps: each layout is named ``placement@cap`` and the caps of one placement and
    style sit next to each other."""
    got = layouts(session(placements=("pinned", "shared"), threading=("model-zoo",),
                          isa=("native", "avx2")))
    assert got == [("pinned@native", "model-zoo"), ("pinned@avx2", "model-zoo"),
                   ("shared@native", "model-zoo"), ("shared@avx2", "model-zoo")]
