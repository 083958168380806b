"""Judging restorers: the published protocol, classical baselines, `eval`, the HTML report."""
