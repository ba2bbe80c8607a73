"""kuberca: Alertmanager webhooks in; incidents, Slack threads and analyses out."""
