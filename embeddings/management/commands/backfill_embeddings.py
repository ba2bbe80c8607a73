"""`manage.py backfill_embeddings`: embed resolved incidents that lack one.

Each batch is one provider call and one transaction, so a crash loses at most
the batch in flight and a second run goes on with what is still missing. A
batch the provider refuses is tried one summary at a time, so a summary it
refuses is skipped (and named at the end) rather than stopping every run.
`--all` re-embeds everything (resume one that stopped with `--after`);
`--rebuild-index` drops the HNSW index for a bulk load and builds it once at
the end, far faster than updating it row by row (docs/embeddings.md).
"""

import logging
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from tqdm import tqdm

from embeddings import schema
from embeddings.models import IncidentEmbedding
from embeddings.providers import EmbeddingUnavailable, get_provider
from embeddings.services import backfill_candidates, embeddings_backfill_batch
from incidents.models import Incident

logger = logging.getLogger(__name__)


def build_index(*, maintenance_work_mem: str = "1GB") -> float:
    """(Re)build the HNSW index in one pass; return the seconds it took."""
    dimensions = IncidentEmbedding._meta.get_field("embedding").dimensions
    started = time.monotonic()
    with connection.cursor() as cursor:
        # Deferred foreign-key checks of this transaction would block the build.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "SELECT set_config('maintenance_work_mem', %s, false)",
            [maintenance_work_mem],
        )
        cursor.execute(schema.create_index_sql(dimensions))
    return time.monotonic() - started


class Command(BaseCommand):
    help = "Embed every resolved incident that has a summary and no embedding."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--all",
            action="store_true",
            dest="everything",
            help="Re-embed every resolved incident with a summary.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=100,
            help="Incidents per provider call and transaction (1-100, default 100).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be embedded."
        )
        parser.add_argument(
            "--after",
            default="",
            help="Start after this incident id (to resume an --all run).",
        )
        parser.add_argument(
            "--rebuild-index",
            action="store_true",
            help="Drop the HNSW index first and build it once at the end.",
        )

    def handle(
        self,
        *args: Any,
        everything: bool,
        batch_size: int,
        dry_run: bool,
        after: str,
        rebuild_index: bool,
        **options: Any,
    ) -> None:
        provider = get_provider()
        if not 1 <= batch_size <= provider.max_batch:
            raise CommandError(f"--batch-size must be from 1 to {provider.max_batch}")
        candidates = backfill_candidates(model=provider.model, everything=everything)
        if after:
            candidates = candidates.filter(pk__gt=after)
        total = candidates.count()
        if dry_run:
            line = f"dry run: {total} incidents would be embedded with {provider.model}"
            if provider.name == "none":
                line += " once a provider is configured (set GEMINI_API_KEY)"
            unsummarised = Incident.objects.resolved_without_summary().count()
            if unsummarised:
                line += (
                    f"; {unsummarised} resolved incidents (of all, whatever"
                    " --after) have no summary, so nothing to embed"
                )
            if rebuild_index:
                line += "; the vector index would be dropped and built again"
            self.stdout.write(line)
            return
        if provider.name == "none":
            raise CommandError(
                "no embedding provider configured (set GEMINI_API_KEY);"
                f" {total} incidents wait for an embedding"
            )

        if rebuild_index:
            with connection.cursor() as cursor:
                cursor.execute(schema.drop_index_sql())
        started = time.monotonic()
        done = 0
        refused: list[str] = []
        last = after
        bar = tqdm(
            total=total, unit="incident", desc="embedding", file=self.stderr._out
        )
        try:
            while True:
                page = candidates.filter(pk__gt=last) if last else candidates
                batch = list(page.values_list("pk", "analysis_summary")[:batch_size])
                if not batch:
                    break
                try:
                    stored, batch_refused = embeddings_backfill_batch(
                        incidents=batch, provider=provider
                    )
                except EmbeddingUnavailable as exc:
                    bar.close()
                    logger.error(
                        "backfill stopped done=%s after=%s reason=%s",
                        done,
                        last,
                        exc.message,
                    )
                    resume = f" --all --after {last}" if everything and last else ""
                    raise CommandError(
                        f"embedding provider failed after retries: {exc.message};"
                        f" embedded {done} of {total}; run again{resume} to resume"
                    ) from exc
                done += stored
                refused += batch_refused
                last = batch[-1][0]
                bar.update(len(batch))
            bar.close()
        finally:
            if rebuild_index:
                seconds = build_index()
                self.stdout.write(f"HNSW index built in {seconds:.1f}s")

        elapsed = time.monotonic() - started
        rate = done / elapsed if elapsed else 0.0
        self.stdout.write(
            f"backfill done: embedded {done} of {total} incidents"
            f" with {provider.model} in {elapsed:.1f}s ({rate:.1f}/s)"
        )
        if refused:
            shown = ", ".join(refused[:20]) + (" …" if len(refused) > 20 else "")
            raise CommandError(
                f"the provider refused the summaries of {len(refused)} incidents:"
                f" {shown}; every other one was embedded"
            )
