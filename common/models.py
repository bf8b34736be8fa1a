from django.db import models
from django.utils import timezone


class Heartbeat(models.Model):
    """When something that must keep happening last happened (the refresh sweep), for
    ``/readyz``, ``/metrics`` and ``manage.py doctor``. One row per name, overwritten."""

    name = models.CharField(max_length=50, primary_key=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def beat(cls, name: str) -> None:
        """Record that ``name`` happened now (one upsert)."""
        cls.objects.bulk_create(
            [cls(name=name, at=timezone.now())], update_conflicts=True, unique_fields=["name"], update_fields=["at"]
        )

    @classmethod
    def age(cls, name: str) -> float | None:
        """Seconds since ``name`` last happened; None if it never did."""
        at = cls.objects.filter(name=name).values_list("at", flat=True).first()
        return None if at is None else max((timezone.now() - at).total_seconds(), 0.0)
