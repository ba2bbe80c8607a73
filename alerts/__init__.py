"""Alerts: every Alertmanager alert occurrence, its deliveries and analyses."""
