#!/usr/bin/env python
"""Django's command-line utility for kuberca."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kuberca.settings")
    from django.core.management import execute_from_command_line

    from kuberca.env import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except ConfigError as error:
        sys.stderr.write(f"kuberca: configuration error: {error}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
