"""No acknowledged row lost, none stored twice: kill -9 under load, and concurrent senders.

CI runs a meaningful size on both databases; `pytest -m slow` runs the long variants.
"""
import pytest

from .reliability_scenarios import concurrency_scenario, crash_scenario


def assert_clean(figures, expect_kills: bool) -> None:
    assert figures.other_errors == []
    assert figures.events_lost == 0
    assert figures.events_duplicated == 0
    assert figures.events_stored == figures.events_sent == figures.rollup_total
    assert figures.profiles_wrong == 0
    if expect_kills:
        assert figures.worker_kills >= 1 and figures.server_kills == 1


def test_kill_9_loses_and_doubles_nothing(database_url, tenant, tmp_path):
    figures = crash_scenario(database_url, tenant.key, tmp_path, senders=4, batches=15)
    assert_clean(figures, expect_kills=True)


def test_concurrent_senders_with_overlapping_ids(database_url, tenant, tmp_path):
    figures = concurrency_scenario(database_url, tenant.key, tmp_path, senders=8, batches=6)
    assert_clean(figures, expect_kills=False)
    assert figures.status_5xx == 0 and figures.retries == 0
    assert "database is locked" not in figures.server_log
    assert "deadlock" not in figures.server_log.lower()


@pytest.mark.slow
def test_kill_9_long(database_url, tenant, tmp_path):
    figures = crash_scenario(database_url, tenant.key, tmp_path, senders=6, batches=60)
    assert_clean(figures, expect_kills=True)


@pytest.mark.slow
def test_concurrency_long(database_url, tenant, tmp_path):
    figures = concurrency_scenario(database_url, tenant.key, tmp_path, senders=8, batches=40)
    assert_clean(figures, expect_kills=False)
    assert figures.status_5xx == 0 and "database is locked" not in figures.server_log
