"""What the scenarios assert about the rows and the fakes, in one place."""

from collections import Counter

from tests.reliability.fakes import OutageAgent, OutageSlack
from tests.reliability.live import LiveDatabase, wait_for


def alert_counts(db: LiveDatabase) -> Counter[str]:
    """Stored alerts per fingerprint."""
    return Counter(
        dict(db.query("SELECT fingerprint, count(*) FROM alerts_alert GROUP BY 1"))
    )


def unfinished(db: LiveDatabase) -> dict[str, int]:
    """Work kuberca still owes: analyses, Slack rows, root edits."""
    return {
        "analyses": db.value(
            "SELECT count(*) FROM alerts_alertanalysis"
            " WHERE state IN ('pending', 'running')"
        ),
        "slack_rows": db.value(
            "SELECT count(*) FROM notifications_slackmessage"
            " WHERE state IN ('pending', 'sending')"
        ),
        "root_edits": db.value(
            "SELECT count(*) FROM notifications_slackmessage"
            " WHERE kind = 'incident_root' AND state = 'sent'"
            " AND revision > posted_revision"
        ),
    }


def wait_settled(db: LiveDatabase, *, analyses: int, timeout: float) -> None:
    """Wait until `analyses` analyses are done and nothing is owed."""

    def settled() -> bool:
        done = db.value(
            "SELECT count(*) FROM alerts_alertanalysis WHERE state = 'done'"
        )
        return done >= analyses and not any(unfinished(db).values())

    try:
        wait_for(settled, "every analysis and Slack message", timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still owed: {unfinished(db)}") from None


def assert_nothing_failed(db: LiveDatabase) -> None:
    failed = db.query(
        "SELECT 'analysis', error FROM alerts_alertanalysis WHERE state = 'failed'"
        " UNION ALL SELECT kind, error FROM notifications_slackmessage"
        " WHERE state = 'failed'"
    )
    assert failed == [], failed


def assert_one_analysis_per_alert(db: LiveDatabase, alerts: int) -> None:
    """One stored (done) analysis per alert and status, each posted once."""
    rows = db.query(
        "SELECT alert_id, status, count(*) FROM alerts_alertanalysis"
        " WHERE state = 'done' GROUP BY 1, 2"
    )
    assert len(rows) == alerts
    assert {count for _, _, count in rows} == {1}
    replies = db.query(
        "SELECT analysis_id, count(*) FROM notifications_slackmessage"
        " WHERE kind = 'analysis' AND state = 'sent' GROUP BY 1"
    )
    assert len(replies) == alerts
    assert {count for _, count in replies} == {1}


def assert_agent_answered_once(agent: OutageAgent, *, alerts: int) -> None:
    """The Agent answered one /analyze call per alert and status.

    Every other call was refused (an outage) or cut off (its caller was
    killed before the answer): none was answered twice, none timed out.
    """
    answered = Counter((a.fingerprint, a.analysis_type) for a in agent.answered)
    assert len(answered) == alerts
    assert set(answered.values()) == {1}
    calls = len(agent.analyze_calls())
    assert calls == len(agent.answered) + agent.refused + len(agent.cut_off)
    assert agent.invalid == []


def assert_slack_posted_once(db: LiveDatabase, slack: OutageSlack) -> None:
    """Every outbox row was posted exactly once, and nothing else was.

    Each sent row's ts is one message Slack accepted; no message Slack
    accepted lacks a row (no duplicate post of a row whose ts got lost).
    """
    rows = db.query(
        "SELECT id, ts FROM notifications_slackmessage WHERE state = 'sent'"
    )
    stored = Counter(ts for _, ts in rows)
    assert all(ts for ts in stored), "a sent row has no ts"
    assert set(stored.values()) <= {1}, "two rows share a Slack message"
    posted = Counter(call.ts for call in slack.posts())
    assert set(posted) == set(stored), (
        f"posts without a row: {sorted(set(posted) - set(stored))}, "
        f"rows never posted: {sorted(set(stored) - set(posted))}"
    )
    roots = db.value(
        "SELECT count(DISTINCT incident_id) FROM notifications_slackmessage"
        " WHERE kind = 'incident_root'"
    )
    assert len(slack.roots()) == roots
