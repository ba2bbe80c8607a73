"""Accounts: login, JWT refresh cookie, signup and the first admin user."""
