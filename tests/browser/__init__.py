"""Browser smoke tests of the admin console (headless Chromium)."""
