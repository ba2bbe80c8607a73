"""Notifications: incident threads in Slack."""
