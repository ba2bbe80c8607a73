"""The incident admin of the triage console: pages, filters, search, actions."""

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.contrib.messages import get_messages
from django.db.models.signals import post_save
from django.urls import reverse

from alerts.models import Alert, AlertAnalysis, AnalysisArtifact
from alerts.tests.factories import AlertAnalysisFactory, AlertFactory
from incidents.models import Incident
from incidents.tests.assertions import (
    assert_final_analysis_requested,
    assert_incident_firing,
    assert_incident_hidden,
    assert_incident_resolved,
    assert_incident_visible,
    assert_incidents_merged,
)
from incidents.tests.factories import IncidentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_static_storage")]

CHANGELIST = "/admin/incidents/incident/"
BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Sessions, user, the page, count, filters' lookups, date hierarchy: a page
# costs this many statements whatever the number of rows.
LIST_MAX_QUERIES = 10
CHANGE_MAX_QUERIES = 12


def change_url(incident_id: str) -> str:
    return reverse("admin:incidents_incident_change", args=[incident_id])


def post_edit(client, incident_id: str, **fields: str):  # noqa: ANN001, ANN201
    """Post the incident's change form with `fields` and no alert rows."""
    form = {**fields, "alerts-TOTAL_FORMS": "0", "alerts-INITIAL_FORMS": "0"}
    return client.post(change_url(incident_id), form)


class _FormValues(HTMLParser):
    """What a browser sends back from a page: every named field as shown."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:  # noqa: ANN001
        attrs = dict(attrs)
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "file"):
            self.values[name] = attrs.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.values[name] = ""
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in attrs:
            self.values[self._select] = attrs.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            # A textarea's first newline is markup, not value.
            value = self.values[self._textarea] + data
            self.values[self._textarea] = value.removeprefix("\n")


def form_values(page) -> dict[str, str]:  # noqa: ANN001
    parser = _FormValues()
    parser.feed(page.content.decode())
    return parser.values


def make_incidents(count: int) -> list[Incident]:
    """`count` incidents, each with one alert, in two namespaces."""
    incidents = Incident.objects.bulk_create(
        Incident(
            title=f"Pods crash looping {n}",
            severity=("critical", "warning", "info")[n % 3],
            status="resolved" if n % 2 else "firing",
            resolved_at=BASE + timedelta(minutes=n + 5) if n % 2 else None,
            resolved_by="alertmanager" if n % 2 else "",
            fired_at=BASE + timedelta(minutes=n),
            group_key=f"cluster=prod,namespace=ns{n % 2}",
            is_enabled=n % 5 != 0,
        )
        for n in range(count)
    )
    Alert.objects.bulk_create(
        Alert(
            incident=incident,
            fingerprint=f"{n:016x}",
            alarm_title="KubePodCrashLooping" if n % 2 else "NodeDiskFull",
            severity=incident.severity,
            status="firing",
            fired_at=incident.fired_at,
            last_seen_at=incident.fired_at,
            namespace=f"ns{n % 2}",
            labels={"alertname": "KubePodCrashLooping", "namespace": f"ns{n % 2}"},
        )
        for n, incident in enumerate(incidents)
    )
    return incidents


def messages_of(response) -> list[str]:  # noqa: ANN001
    return [str(m) for m in get_messages(response.wsgi_request)]


def post_action(client, action: str, ids: list[str], **extra):  # noqa: ANN001, ANN201
    data = {"action": action, "_selected_action": ids, **extra}
    return client.post(CHANGELIST, data, follow=True)


def similar_finder(incident, *, limit):  # noqa: ANN001, ANN201
    return [{"incident_id": "INC-0000aaaa", "title": "Disk full before", "score": 0.9}]


# Pages ----------------------------------------------------------------------


QUERIES = [
    "",
    "?status__exact=firing",
    "?severity=critical",
    "?hidden=yes",
    "?namespace=ns1",
    "?fired_at__gte=2026-03-01+00%3A00%3A00%2B00%3A00",
    "?fired_at__year=2026&fired_at__month=3",
    "?q=NodeDiskFull",
    "?q=ns1",
    "?q=namespace%3Dns0",
    "?o=5",
]


def test_incident_list_renders_500_rows_in_bounded_queries(
    staff_client, django_assert_max_num_queries
):
    make_incidents(500)

    for query in QUERIES:
        with django_assert_max_num_queries(LIST_MAX_QUERIES):
            response = staff_client.get(CHANGELIST + query)
        assert response.status_code == 200
        assert b"kuberca-badge" in response.content


def test_incident_list_shows_counts_badges_and_slack_link(staff_client):
    incident = IncidentFactory(title="Checkout down", severity="critical")
    AlertFactory.create_batch(3, incident=incident)
    SlackMessage = apps.get_model("notifications", "SlackMessage")
    SlackMessage.objects.create(
        incident=incident, kind="incident_root", channel="C123", ts="1700.000100"
    )

    response = staff_client.get(CHANGELIST)

    row = response.context["cl"].result_list.get(pk=incident.pk)
    assert row.alert_count == 3
    content = response.content.decode()
    assert "Checkout down" in content
    assert "#dc3545" in content  # critical and firing are red
    assert "https://slack.com/app_redirect?channel=C123&amp;message_ts=1700.000100" in (
        content
    )


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("Checkout", {"checkout"}),
        ("OOMKilled", {"checkout"}),
        ("payments", {"checkout"}),
        ("team=payments", {"checkout"}),
        ("team=search", set()),
        ("ns-other", {"other"}),
    ],
)
def test_incident_search_matches_title_alert_name_and_label_values(
    staff_client, term, expected
):
    checkout = IncidentFactory(title="Checkout down")
    other = IncidentFactory(title="Something else")
    AlertFactory(
        incident=checkout,
        alarm_title="OOMKilled",
        labels={"alertname": "OOMKilled", "team": "payments"},
    )
    AlertFactory(incident=other, namespace="ns-other")
    names = {checkout.pk: "checkout", other.pk: "other"}

    response = staff_client.get(CHANGELIST, {"q": term})

    found = {names[i.pk] for i in response.context["cl"].result_list}
    assert found == expected


def test_incident_search_finds_an_incident_by_id_and_by_alert_id(staff_client):
    incident = IncidentFactory()
    alert = AlertFactory(incident=incident)
    IncidentFactory()

    by_id = staff_client.get(CHANGELIST, {"q": incident.pk.lower()})
    by_alert = staff_client.get(CHANGELIST, {"q": alert.pk})

    assert [i.pk for i in by_id.context["cl"].result_list] == [incident.pk]
    assert [i.pk for i in by_alert.context["cl"].result_list] == [incident.pk]


def test_incident_change_page_shows_the_whole_story(staff_client, settings):
    settings.SIMILAR_INCIDENTS_FINDER = "incidents.tests.test_admin.similar_finder"
    incident = IncidentFactory(
        fired_at=BASE,
        analysis_summary="**Disk** full <script>alert(1)</script>",
        analysis_detail="# Cause\n\n<img src=x onerror=alert(2)>",
    )
    alert = AlertFactory(
        incident=incident,
        fired_at=BASE,
        labels={"alertname": "NodeDiskFull", "node": "n1"},
        resolved=True,
    )
    analysis = AlertAnalysisFactory(alert=alert, summary="Disk *filled* by logs")
    AnalysisArtifact.objects.create(
        analysis=analysis, artifact_type="promql", query="node_fs_free", result={}
    )
    apps.get_model("notifications", "SlackMessage").objects.create(
        incident=incident,
        kind="incident_root",
        channel="C9",
        ts="1.2",
        sent_at=BASE + timedelta(seconds=1),
    )

    response = staff_client.get(change_url(incident.pk))

    assert response.status_code == 200
    content = response.content.decode()
    assert "<strong>Disk</strong> full" in content
    assert "<script>alert(1)" not in content
    assert '<img src="x"' not in content
    assert "<img src=x" not in content
    assert "<h1>Cause</h1>" in content
    assert "<b>node</b>=n1" in content  # labels as chips
    assert "Disk <em>filled</em> by logs" in content
    assert "node_fs_free" in content
    assert "https://slack.com/app_redirect?channel=C9&amp;message_ts=1.2" in content
    assert "Disk full before" in content
    assert reverse("admin:incidents_incident_change", args=["INC-0000aaaa"]) in content
    kinds = [entry.kind for entry in response.context["timeline"]]
    assert kinds[0] == "opened"
    assert {"joined", "resolved", "analysis", "analysed", "notified"} <= set(kinds)


def test_incident_change_page_offers_resolve_only_while_firing(staff_client):
    firing = IncidentFactory()
    resolved = IncidentFactory(resolved=True)

    firing_page = staff_client.get(change_url(firing.pk)).content.decode()
    resolved_page = staff_client.get(change_url(resolved.pk)).content.decode()

    assert 'id="kuberca-resolve-one"' in firing_page
    assert 'id="kuberca-resolve-one"' not in resolved_page


def test_incident_change_page_shows_a_viewer_the_incident_without_resolve(
    viewer_client,  # noqa: ANN001
):
    client = viewer_client("view_incident")
    incident = IncidentFactory(title="Disk full on node-3")

    response = client.get(change_url(incident.pk))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Disk full on node-3" in page
    assert 'id="kuberca-resolve-one"' not in page
    assert 'name="_save"' not in page


def test_incident_change_page_links_no_thread_before_slack_answered(staff_client):
    incident = IncidentFactory()
    apps.get_model("notifications", "SlackMessage").objects.create(
        incident=incident, kind="incident_root", channel="C9", ts=""
    )

    response = staff_client.get(change_url(incident.pk))

    assert response.context["slack_thread"] == ""
    assert "none posted" in response.content.decode()


def test_incident_change_page_survives_a_missing_similar_finder(staff_client, settings):
    settings.SIMILAR_INCIDENTS_FINDER = "nowhere.similar_incidents"
    incident = IncidentFactory()

    response = staff_client.get(change_url(incident.pk))

    assert response.status_code == 200
    assert response.context["similar_incidents"] == []


def test_incident_change_page_with_500_alerts_costs_bounded_queries(
    staff_client, settings, django_assert_max_num_queries
):
    settings.SIMILAR_INCIDENTS_FINDER = "incidents.tests.test_admin.similar_finder"
    incident = IncidentFactory(fired_at=BASE)
    alerts = Alert.objects.bulk_create(
        Alert(
            incident=incident,
            fingerprint=f"{n:016x}",
            alarm_title="KubePodCrashLooping",
            status="firing",
            fired_at=BASE + timedelta(seconds=n),
            last_seen_at=BASE,
            labels={"alertname": "KubePodCrashLooping", "pod": f"p{n}"},
        )
        for n in range(500)
    )
    analyses = AlertAnalysis.objects.bulk_create(
        AlertAnalysis(alert=a, incident=incident, status="firing", state="done")
        for a in alerts
    )
    AnalysisArtifact.objects.bulk_create(
        AnalysisArtifact(analysis=a, artifact_type="log", result={"n": 1})
        for a in analyses
    )

    with django_assert_max_num_queries(CHANGE_MAX_QUERIES):
        response = staff_client.get(change_url(incident.pk))

    assert response.status_code == 200
    assert len(response.context["console_alerts"]) == 500


def test_incident_admin_refuses_non_staff_users(client, user):
    incident = IncidentFactory()
    client.force_login(user)

    for url in (
        CHANGELIST,
        change_url(incident.pk),
        "/admin/",
        "/admin/django_tasks_database/dbtaskresult/",
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_incident_admin_refuses_anonymous_actions(client):
    incident = IncidentFactory()

    response = client.post(
        CHANGELIST, {"action": "resolve", "_selected_action": [incident.pk]}
    )

    assert response.status_code == 302
    assert_incident_firing(incident.pk)


def test_incident_edit_goes_through_the_service_and_keeps_status(staff_client):
    incident = IncidentFactory(title="old", severity="warning")

    response = staff_client.post(
        change_url(incident.pk),
        {
            "title": "new title",
            "severity": "critical",
            "analysis_summary": "",
            "analysis_detail": "",
            "status": "resolved",
            "alerts-TOTAL_FORMS": "0",
            "alerts-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.title, incident.severity, incident.status) == (
        "new title",
        "critical",
        "firing",
    )


@pytest.mark.parametrize(
    ("start", "meanwhile", "edit", "expected"),
    [
        # A critical alert joins and the final analysis lands while the page
        # is open; the person renames the incident: those stay.
        (
            {"title": "old", "severity": "warning"},
            {"severity": "critical", "analysis_summary": "node-3 ran out of disk"},
            {"title": "Disk full"},
            {
                "title": "Disk full",
                "severity": "critical",
                "analysis_summary": "node-3 ran out of disk",
            },
        ),
        # Someone renames it meanwhile; the person's severity edit applies.
        (
            {"title": "old", "severity": "critical"},
            {"title": "renamed meanwhile"},
            {"severity": "info"},
            {"title": "renamed meanwhile", "severity": "info"},
        ),
    ],
)
def test_incident_edit_from_a_page_read_earlier_saves_only_what_was_edited(
    staff_client, start, meanwhile, edit, expected
):
    incident = IncidentFactory(**start)
    page = staff_client.get(change_url(incident.pk))
    Incident.objects.filter(pk=incident.pk).update(**meanwhile)

    response = staff_client.post(change_url(incident.pk), {**form_values(page), **edit})

    assert response.status_code == 302
    saved = Incident.objects.filter(pk=incident.pk).values(*expected).get()
    assert saved == expected


def test_incident_edit_rejects_an_unknown_severity(staff_client):
    incident = IncidentFactory(severity="warning")

    response = staff_client.post(
        change_url(incident.pk),
        {"title": "t", "severity": "disaster", "alerts-TOTAL_FORMS": "0"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["severity"]
    incident.refresh_from_db()
    assert incident.severity == "warning"


@pytest.mark.parametrize(
    "ingested",
    [
        ["critical", "warning", "info", "page"],
        # INGEST_SEVERITIES held "page" when the incident took it.
        ["critical", "warning", "info"],
    ],
)
def test_incident_edit_keeps_a_severity_the_ingest_gate_let_in(
    staff_client, settings, ingested
):
    settings.INGEST_SEVERITIES = ingested
    incident = IncidentFactory(title="old", severity="page")

    page = staff_client.get(change_url(incident.pk))
    response = post_edit(staff_client, incident.pk, title="new", severity="page")
    listed = staff_client.get(reverse("admin:incidents_incident_changelist"))

    assert b'<option value="page" selected>' in page.content
    assert (b"?severity=page" in listed.content) is ("page" in ingested)
    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.title, incident.severity) == ("new", "page")


@pytest.mark.parametrize("title", ["\u200b", "\x01\x02", "\u200b\u2060\ufeff"])
def test_incident_edit_rejects_a_title_with_nothing_to_read(staff_client, title):
    incident = IncidentFactory(title="old", severity="warning")

    response = post_edit(staff_client, incident.pk, title=title, severity="critical")

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["title"] == [
        "title must not be blank"
    ]
    incident.refresh_from_db()
    assert (incident.title, incident.severity) == ("old", "warning")


@pytest.mark.parametrize("title", ["   ", "disk full "])
def test_incident_edit_keeps_the_title_as_it_is(staff_client, title):
    # An alertname of only spaces gives such a title; the API takes it back
    # unchanged, and neither trims a title.
    incident = IncidentFactory(title=title, severity="warning")

    response = post_edit(staff_client, incident.pk, title=title, severity="critical")

    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.title, incident.severity) == (title, "critical")


def test_incident_edit_rejects_a_new_title_of_only_spaces(staff_client):
    incident = IncidentFactory(title="old", severity="warning")

    response = staff_client.post(
        change_url(incident.pk),
        {"title": "   ", "severity": "warning", "alerts-TOTAL_FORMS": "0"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["title"] == [
        "title must not be blank"
    ]
    incident.refresh_from_db()
    assert incident.title == "old"


# Actions --------------------------------------------------------------------


def test_resolve_asks_for_confirmation_first(staff_client):
    incident = IncidentFactory()

    response = post_action(staff_client, "resolve", [incident.pk])

    assert response.status_code == 200
    assert "Resolve 1 firing incident(s)?" in response.content.decode()
    assert_incident_firing(incident.pk)


def test_resolve_action_resolves_like_the_api(staff_client):
    incident = IncidentFactory()
    generation = incident.summary_generation

    response = post_action(staff_client, "resolve", [incident.pk], post="yes")

    assert response.status_code == 200
    assert_incident_resolved(incident.pk, "operator", generation_before=generation)
    assert messages_of(response) == [
        f"Resolved 1 incident(s): {incident.pk}; final analysis requested."
    ]


def test_resolve_action_says_no_final_analysis_without_an_agent(staff_client, settings):
    settings.AGENT_ENABLED = False
    incident = IncidentFactory()

    response = post_action(staff_client, "resolve", [incident.pk], post="yes")

    incident.refresh_from_db()
    assert (incident.status, incident.summary_status) == ("resolved", "")
    assert messages_of(response) == [
        f"Resolved 1 incident(s): {incident.pk}; no final analysis, as no Agent "
        "is configured."
    ]


def test_resolve_action_refuses_a_person_named_like_the_auto_resolver(client):
    from django.contrib.auth import get_user_model

    client.force_login(
        get_user_model().objects.create(
            username="alertmanager", is_staff=True, is_superuser=True
        )
    )
    incident = IncidentFactory()

    response = post_action(client, "resolve", [incident.pk], post="yes")

    assert response.status_code == 200
    assert_incident_firing(incident.pk)
    assert messages_of(response) == [
        "Not resolved: resolved_by 'alertmanager' stands for a resolve by the "
        "incident's alerts; give the name of the person resolving it."
    ]


def confirmation_fields(page) -> dict[str, list[str]]:  # noqa: ANN001
    """What a browser posts back from an action's confirmation page."""
    form = page.content.decode().split('id="kuberca-selected"', 1)[1]
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(
        r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form
    ):
        fields.setdefault(name, []).append(value)
    return fields


def test_resolve_of_a_whole_filtered_list_confirms_without_listing_every_id(
    staff_client, settings
):
    # Past DATA_UPLOAD_MAX_NUMBER_FIELDS ids, the confirming post would be
    # refused (400) however few incidents the page shows.
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 8
    shop = IncidentFactory.create_batch(10, title="shop down")
    other = IncidentFactory(title="payments slow")
    url = CHANGELIST + "?q=shop"

    page = staff_client.post(
        url,
        {
            "action": "resolve",
            "_selected_action": [shop[0].pk],
            "select_across": "1",
            "index": "0",
        },
    )
    response = staff_client.post(url, confirmation_fields(page), follow=True)

    assert "Resolve 10 firing incident(s)?" in page.content.decode()
    assert response.status_code == 200
    for incident in shop:
        assert_incident_resolved(incident.pk, "operator")
    assert_incident_firing(other.pk)


@pytest.mark.parametrize("action", ["resolve", "hide", "unhide", "rerun_analysis"])
@pytest.mark.parametrize("confirmed", [{}, {"post": "yes"}])
def test_action_on_incidents_no_longer_in_the_list_says_so(
    staff_client, action, confirmed
):
    response = post_action(staff_client, action, ["INC-00000000dead"], **confirmed)

    assert response.status_code == 200
    assert messages_of(response) == [
        "None of the selected incidents are in this list any more."
        " No items have been changed."
    ]


def test_resolve_action_skips_resolved_incidents(staff_client):
    done = IncidentFactory(resolved=True)
    before = (done.resolved_by, done.resolved_at)

    response = post_action(staff_client, "resolve", [done.pk], post="yes")

    done.refresh_from_db()
    assert (done.resolved_by, done.resolved_at) == before
    assert messages_of(response) == [f"Skipped 1 already resolved: {done.pk}."]


def test_resolve_of_none_firing_asks_nothing_and_says_so(staff_client):
    done = IncidentFactory(resolved=True)

    response = post_action(staff_client, "resolve", [done.pk])

    assert "Yes, resolve" not in response.content.decode()
    assert messages_of(response) == [
        "None of the selected incidents is firing: nothing to resolve."
    ]


def test_hide_and_unhide_actions_change_visibility(staff_client):
    incident = IncidentFactory()

    hidden = post_action(staff_client, "hide", [incident.pk])
    assert_incident_hidden(incident.pk)
    unhidden = post_action(staff_client, "unhide", [incident.pk])

    assert_incident_visible(incident.pk)
    assert messages_of(hidden) == [f"Hid 1 incident(s): {incident.pk}."]
    assert messages_of(unhidden) == [f"Unhid 1 incident(s): {incident.pk}."]


@pytest.mark.parametrize(
    ("action", "confirmed", "verb"),
    [("resolve", {"post": "yes"}, "Resolved"), ("hide", {}, "Hid")],
)
def test_action_skips_an_incident_deleted_while_it_runs(
    staff_client, action, confirmed, verb
):
    ids = {IncidentFactory().pk, IncidentFactory().pk}

    def delete_the_other(sender, instance, **kwargs):  # noqa: ANN001, ANN003
        Incident.objects.filter(pk__in=ids - {instance.pk}).delete()

    post_save.connect(delete_the_other, sender=Incident)
    try:
        response = post_action(staff_client, action, sorted(ids), **confirmed)
    finally:
        post_save.disconnect(delete_the_other, sender=Incident)

    assert response.status_code == 200
    (kept,) = Incident.objects.values_list("pk", flat=True)
    (gone,) = ids - {kept}
    said = messages_of(response)
    assert said[0].startswith(f"{verb} 1 incident(s): {kept}")
    assert said[1:] == [f"Skipped 1 no longer there: {gone}."]


def test_rerun_analysis_action_requests_the_final_analysis(staff_client):
    incident = IncidentFactory(resolved=True, summary_generation=1)

    response = post_action(staff_client, "rerun_analysis", [incident.pk])

    assert_final_analysis_requested(incident.pk, generation_before=1)
    assert messages_of(response) == [
        f"Final analysis requested for 1 incident(s): {incident.pk}."
    ]


def test_rerun_analysis_action_reports_a_disabled_agent(staff_client, settings):
    settings.AGENT_ENABLED = False
    incident = IncidentFactory(resolved=True, summary_generation=1)

    response = post_action(staff_client, "rerun_analysis", [incident.pk])

    incident.refresh_from_db()
    assert incident.summary_generation == 1
    assert messages_of(response)[0].startswith("Analysis not requested")


def test_merge_asks_for_confirmation_naming_the_oldest(staff_client):
    old = IncidentFactory(fired_at=BASE)
    new = IncidentFactory(fired_at=BASE + timedelta(minutes=5))

    response = post_action(staff_client, "merge", [new.pk, old.pk])

    assert response.status_code == 200
    assert f"into the oldest, {old.pk}" in response.content.decode()
    assert_incident_firing(new.pk)


@pytest.mark.parametrize("slack", [True, False])
def test_merge_confirmation_speaks_of_slack_only_when_it_is_on(
    staff_client,
    settings,
    slack,  # noqa: ANN001
):
    settings.SLACK_ENABLED = slack
    old = IncidentFactory(fired_at=BASE)
    others = IncidentFactory.create_batch(2, fired_at=BASE + timedelta(minutes=5))

    page = post_action(staff_client, "merge", [old.pk, *(o.pk for o in others)])

    text = page.content.decode()
    told = "the others are resolved by you, and each incident&#x27;s Slack message"
    assert (told in text) is slack
    assert ("the others are resolved by you." in text) is not slack


def test_merge_action_moves_alerts_into_the_oldest(staff_client):
    old = IncidentFactory(fired_at=BASE)
    new = IncidentFactory(fired_at=BASE + timedelta(minutes=5))
    AlertFactory(incident=old)
    moved = AlertFactory.create_batch(2, incident=new)

    response = post_action(staff_client, "merge", [new.pk, old.pk], post="yes")

    assert_incidents_merged(
        old.pk, [new.pk], alert_ids=[a.pk for a in moved], merged_by="operator"
    )
    assert messages_of(response) == [
        f"Merged {new.pk} into {old.pk}; it has 3 alert(s) now."
    ]


def test_merge_action_needs_two_incidents(staff_client):
    only = IncidentFactory()

    response = post_action(staff_client, "merge", [only.pk], post="yes")

    assert_incident_firing(only.pk)
    assert messages_of(response) == ["Select at least two incidents to merge."]


# Index and task results -----------------------------------------------------


def test_index_links_to_failed_tasks(staff_client):
    response = staff_client.get("/admin/")

    assert response.status_code == 200
    content = response.content.decode()
    assert "/admin/django_tasks_database/dbtaskresult/?status__exact=FAILED" in content
    assert "Failed webhook deliveries" in content


def test_failed_task_results_are_listed(staff_client):
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.create(
        status="FAILED",
        args_kwargs={"args": [], "kwargs": {}},
        task_path="kuberca.tasks.reap_lost_tasks",
        backend_name="default",
        run_after=BASE,
        exception_class_path="builtins.ValueError",
        traceback="boom",
    )
    DBTaskResult.objects.create(
        status="SUCCESSFUL",
        args_kwargs={"args": [], "kwargs": {}},
        task_path="kuberca.tasks.other",
        backend_name="default",
        run_after=BASE,
    )

    response = staff_client.get(
        "/admin/django_tasks_database/dbtaskresult/", {"status__exact": "FAILED"}
    )

    assert response.status_code == 200
    assert [r.task_path for r in response.context["cl"].result_list] == [
        "kuberca.tasks.reap_lost_tasks"
    ]
