"""Test support shared by the apps' test suites and the pytest plugin."""
