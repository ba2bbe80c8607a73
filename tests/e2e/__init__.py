"""End-to-end flows against a real Alertmanager and a live kuberca."""
