"""Incidents: groups of alerts that belong to one problem."""
