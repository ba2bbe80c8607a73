"""Deleting many rows beside live traffic: a batch at a time.

`manage.py prune` and the periodic delivery prune both delete what is past
its retention. One DELETE of a whole backlog (a retention just shortened, a
worker down for days) would be one long transaction; each batch here is its
own short one, so the work can be killed and simply run again.
"""

from django.db import models, transaction

BATCH_SIZE = 1000


def delete_in_batches(
    queryset: models.QuerySet, *, batch_size: int = BATCH_SIZE, dry_run: bool = False
) -> int:
    """Delete the rows of `queryset`, `batch_size` primary keys at a time.

    Returns the rows of the queryset's model this run deleted (with
    `dry_run`, would delete): a second run beside it may delete some of the
    keys read here first, and those are counted once, by whichever run
    deleted them.
    """
    if dry_run:
        return queryset.count()
    model = queryset.model
    queryset = queryset.order_by()
    deleted = 0
    while True:
        with transaction.atomic():
            keys = list(queryset.values_list("pk", flat=True)[:batch_size])
            if not keys:
                return deleted
            _, by_model = model.objects.filter(pk__in=keys).delete()
        deleted += by_model.get(model._meta.label, 0)
