"""The report as a person sees it: rendered by a real headless Chromium, loaded without an
error or a network request, every section present, every figure decoded, and a full-page
screenshot that is not blank.

Set ``SCALER_SCREENSHOTS=DIR`` to keep the screenshots (and the reports) for a look.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from scaler.report.page import SECTION_IDS
from tests.scaler.report.browser import Browser

# reads the session's suite (tests/suites.py: measured first in the serial group by
# test_suite_built.py) and runs no measurement: beside the serial group

INSPECT = """JSON.stringify({
  sections: Array.from(document.querySelectorAll('main > section')).map(s => ({
    id: s.id, title: s.querySelector('h2').textContent,
    height: s.getBoundingClientRect().height, text: s.innerText.length})),
  images: Array.from(document.images).map(i => ({
    ok: i.complete && i.naturalWidth > 0 && i.naturalHeight > 0, width: i.naturalWidth,
    shown: i.getBoundingClientRect().width, alt: i.alt})),
  links: Array.from(document.querySelectorAll('nav a')).map(a => a.getAttribute('href')),
  scripts: document.scripts.length,
  study: (document.getElementById('study') || {innerText: ''}).innerText,
  external: Array.from(document.querySelectorAll('[src],[href]')).map(
    e => e.getAttribute('src') || e.getAttribute('href')).filter(
    u => !u.startsWith('data:') && !u.startsWith('#')),
})"""


def render(binary: str, report: Path, shot: Path) -> dict:
    import json

    with Browser(binary) as browser:
        session = browser.load(report.resolve().as_uri())
        page = json.loads(browser.evaluate(session, INSPECT))
        width, height = browser.screenshot(session, shot)
        page.update(problems=browser.problems(), requests=browser.requests(),
                    size=(width, height))
    keep = os.environ.get("SCALER_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
        shutil.copy(report, Path(keep) / (shot.stem + ".html"))
    return page


def check_page(page: dict, shot: Path, figures_at_least: int) -> None:
    assert page["problems"] == [], page["problems"]
    assert page["requests"] == [] and page["external"] == [] and page["scripts"] == 0
    assert [s["id"] for s in page["sections"]] == list(SECTION_IDS)
    assert page["links"] == [f"#{sid}" for sid in SECTION_IDS]
    for s in page["sections"]:
        assert s["height"] > 40 and s["text"] > 40, s
    assert len(page["images"]) >= figures_at_least
    bad = [i for i in page["images"] if not i["ok"] or i["shown"] < 300]
    assert not bad, bad
    pixels = mpimg.imread(shot)
    assert pixels.shape[1] == page["size"][0] and pixels.shape[0] > 3000
    assert float(np.std(pixels[..., :3])) > 0.05  # not a blank page


def test_the_suites_own_report_renders(suite, chromium, tmp_path):
    assert suite["report"] == suite["folder"] / "report.html"
    shot = tmp_path / "suite-report.png"
    page = render(chromium, suite["report"], shot)
    # scaling, throughput, latency CDFs (latency, scaling, two multistream), two searches
    check_page(page, shot, figures_at_least=8)
    titles = {s["id"]: s["title"] for s in page["sections"]}
    assert titles["claims"].startswith("Claims")
    # the study's headline: its figure decoded and shown, its one line and the read-back
    assert titles["study"] == "The study's 2.04x: VM-like against bare metal as the study ran it"
    (headline,) = [i for i in page["images"] if i["alt"] == "the study's headline"]
    assert headline["ok"] and headline["shown"] >= 300
    assert "VM-like over the study's bare metal " in page["study"]
    assert "; over tuned bare metal " in page["study"]
    assert "Read back from the workers: " in page["study"]


@pytest.mark.long
def test_a_report_with_a_prediction_and_mixed_inputs_renders(predicted, chromium, tmp_path):
    shot = tmp_path / "mixed-report.png"
    page = render(chromium, predicted, shot)
    check_page(page, shot, figures_at_least=10)
    assert page["sections"][SECTION_IDS.index("prediction")]["title"].endswith("2s28c2t")
    # the study section simulated on --machine from the suite's styled run, with the terms'
    # split. Whether the null instances' read-back shows them stacked was not structural after
    # all: one fresh-clone run of 2026-12-07 read none stacked ("stack_cost=0 (assumed)");
    # left open (issue 26 note), so only the split's presence is asserted here
    assert "Simulated on 2s28c2t at N=8: vm over the study's bare metal " in page["study"]
    assert "; over tuned bare metal " in page["study"]
    assert "stack_cost" in page["study"]
