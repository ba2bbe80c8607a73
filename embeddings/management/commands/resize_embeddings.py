"""`manage.py resize_embeddings`: give the vector column EMBEDDING_DIMENSIONS.

Migration 0002 fixed the column's dimension when it ran. After changing
EMBEDDING_DIMENSIONS, this drops the old index and every stored embedding
(vectors of another size cannot be compared), retypes the column, recreates
the HNSW index for the new size, and tells you to run `backfill_embeddings
--all`. A column already of that size whose index is gone only gets the
index back, keeping its embeddings. Without `--yes` it only reports what it
would do.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction

from embeddings import schema
from embeddings.models import IncidentEmbedding


class Command(BaseCommand):
    help = "Retype the embedding column and index to EMBEDDING_DIMENSIONS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--yes", action="store_true", help="Really delete and retype."
        )

    def handle(self, *args: Any, yes: bool, **options: Any) -> None:
        wanted = settings.EMBEDDING_DIMENSIONS
        with connection.cursor() as cursor:
            current = schema.column_dimensions(cursor)
            has_index = schema.index_exists(cursor)
        rows = IncidentEmbedding.objects.count()
        if current == wanted and (has_index or not schema.indexable(wanted)):
            self.stdout.write(f"embedding column already has {wanted} dimensions")
            return
        if current == wanted:
            # Only the index is gone (say a backfill --rebuild-index killed
            # before its end): build it, keeping every embedding.
            if not yes:
                self.stdout.write(
                    f"embedding column has {wanted} dimensions but no HNSW index:"
                    " run with --yes to build it (no embedding is deleted)"
                )
                return
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(schema.create_index_sql(wanted))
            self.stdout.write(
                f"HNSW index built for {wanted} dimensions ({rows} embeddings kept)"
            )
            return
        if not yes:
            self.stdout.write(
                f"embedding column has {current} dimensions, EMBEDDING_DIMENSIONS"
                f" is {wanted}: run with --yes to delete {rows} embeddings and"
                " retype the column, then backfill_embeddings --all"
            )
            return

        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(schema.drop_index_sql())
            cursor.execute(f"DELETE FROM {schema.TABLE}")  # noqa: S608
            cursor.execute(
                f"ALTER TABLE {schema.TABLE} ALTER COLUMN embedding"
                f" TYPE vector({int(wanted)})"
            )
            if schema.indexable(wanted):
                cursor.execute(schema.create_index_sql(wanted))
        self.stdout.write(
            f"embedding column now has {wanted} dimensions ({rows} embeddings"
            " deleted); run manage.py backfill_embeddings --all"
        )
