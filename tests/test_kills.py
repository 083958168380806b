"""kill -9 in the middle of degrade, restore, grid and run leaves no truncated file under a final
name and no input changed (one try each here; benchmarks/kills.py makes ten of each and prints them)."""
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import kills  # noqa: E402


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("kills")
    kills.setup(root)
    return root


@pytest.mark.parametrize("kind", kills.KINDS)
def test_kill_9_mid_way_leaves_whole_files_and_inputs_untouched(base, kind):
    delay = random.Random(kind).uniform(2.5, 5.0)   # past the interpreter's start-up, inside the work
    row = kills.trial(kind, base, delay)
    assert row["broken"] == [] and not row["inputs_changed"], row
    if kind == "run":
        assert row["run"] in ("resumed", "gone", "restarted"), row


def test_the_checker_knows_a_whole_page_and_a_whole_report_section_from_cut_ones(tmp_path):
    from workbench.judge.pictures import samples_html

    (tmp_path / "report").mkdir()
    whole = {"report.html": "<!doctype html><html><body>x</body></html>\n", "report/validation.html": samples_html([]),
             "report/Set5.html": '<div class="images"><div class="samples"></div></div>'}
    for name, text in whole.items():
        (tmp_path / name).write_text(text)
    assert kills.broken(tmp_path) == []
    for name, text in whole.items():
        (tmp_path / name).write_text(text[:len(text) // 2])
    assert sorted(Path(p).relative_to(tmp_path).as_posix() for p, _ in kills.broken(tmp_path)) == sorted(whole)
