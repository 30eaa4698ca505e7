"""A short run of the main job, examples/digits.config (5 epochs, both pretrain growths): every growth keeps the
network's output ("preserve", checked by verify_inputs on the dev set), so the dev error right after a growth is
the dev error of the epoch before."""

from __future__ import annotations

import io
import os
import re

import pytest

pytestmark = pytest.mark.slow

CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "examples", "digits.config")


def test_digits_growths_keep_the_dev_error(tmp_path):
    pytest.importorskip("sklearn")
    from transition.training._loop import train_from_config

    out = io.StringIO()
    mgr = train_from_config(os.path.abspath(CONFIG), {"model": str(tmp_path / "net"), "num_epochs": 5}, out=out)
    lines = {int(m.group(1)): line for line in out.getvalue().splitlines() if (m := re.match(r"epoch (\d+)/", line))}
    assert sorted(lines) == [1, 2, 3, 4, 5]
    for epoch, added in ((3, "+l2"), (5, "+l3")):
        line = lines[epoch]
        assert f"transition {added} ~output" in line and "preserved" in line and "custom importer in output" in line
        kept = re.search(r"checked on 300 examples: max output diff (\S+), output error (\S+) -> (\S+)", line)
        assert kept is not None, line
        before = re.search(r"dev_error (\S+)", lines[epoch - 1]).group(1)
        assert float(kept.group(1)) <= 1e-6 and kept.group(2) == kept.group(3) == before
    assert mgr.last_transition.report.status_of("l3/W").value == "preserved"
