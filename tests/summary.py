"""For the generated-input tests: a summary line on the terminal, past pytest's capture."""
from __future__ import annotations


def show(config, line: str) -> None:
    """Write `line` to the terminal (not under an xdist worker, which has none)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)
