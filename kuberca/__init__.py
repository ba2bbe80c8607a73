"""kuberca: Alertmanager webhooks in; incidents, Slack threads and analyses out."""

# Kept equal to pyproject.toml's by release-please (the python release type
# updates a package's __version__); the image runs the code uninstalled.
__version__ = "0.1.0"
