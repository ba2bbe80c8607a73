"""Create the database cache table that every web process shares.

The login throttle keeps its counts in the default cache (settings.CACHES);
creating the table here means `migrate` alone prepares a new database.
`createcachetable` skips tables that already exist and caches that are not
database caches.
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):  # noqa: ANN001, ANN201
    call_command(
        "createcachetable", database=schema_editor.connection.alias, verbosity=0
    )


class Migration(migrations.Migration):
    dependencies: list = []

    operations = [
        migrations.RunPython(create_cache_table, migrations.RunPython.noop),
    ]
