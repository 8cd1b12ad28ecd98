"""Shared by every pytest tier: no test may skip unless it says why it is allowed to.

A skip hides a check. A test that may legitimately skip on some machine carries
``@pytest.mark.expected_skip("why")``; any other skip fails the run, and the summary
names each one with its reason (pytest's -rs lists them too).
"""

import pytest

_UNEXPECTED = []


def pytest_configure(config):
    config.addinivalue_line("markers", "expected_skip(reason): this test may skip, for the reason given")


def pytest_runtest_logreport(report):
    if not report.skipped:
        return
    if "expected_skip" in report.keywords:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    _UNEXPECTED.append((report.nodeid, reason))


def pytest_terminal_summary(terminalreporter):
    if _UNEXPECTED:
        terminalreporter.section("unexpected skips (each fails the run)", red=True)
        for nodeid, reason in _UNEXPECTED:
            terminalreporter.line(f"{nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if _UNEXPECTED and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
