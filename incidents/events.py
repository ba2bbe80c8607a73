"""Domain signals about incidents, sent by incidents.services inside the write.

Receivers (Slack, Agent, embeddings) must defer their work with
`transaction.on_commit`, so a rolled-back write never notifies anyone. Every
signal passes `incident_id` (str), except incident_opened; other arguments are
listed beside each signal.
"""

from django.dispatch import Signal

# New incidents were opened by their first alerts (or by a person);
# `incident_ids`: list[str], as one delivery may open several.
incident_opened = Signal()
# Title, severity, status or alert count changed; `fields`: list[str].
incident_changed = Signal()
# Resolved by a person or automatically; `resolved_by`: str, `generation`: int.
incident_resolved = Signal()
# A resolved incident took a firing alert again.
incident_reopened = Signal()
# Hidden or unhidden; `is_enabled`: bool.
incident_visibility_changed = Signal()
# A person asked for the final analysis again (API or admin); no resolve needed.
incident_analysis_requested = Signal()
# The Agent's final analysis was stored on the incident; `generation`: int.
incident_summarized = Signal()
