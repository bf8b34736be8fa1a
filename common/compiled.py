"""Read queries compiled once, run many times: for the hottest request only.

Turning a queryset into SQL costs the ORM more CPU than running it: for the
token API's one-row read, ~0.5 ms to build and compile against ~0.15 ms to
execute and read (docs/benchmarks.md). ``CompiledQuery`` builds its queryset
once per thread (each thread has its own database connection) with
placeholder UUIDs, keeps the SQL and the column converters the compiler chose
(decryption of encrypted fields included), and runs that SQL with each call's
values. The queryset is still written with the ORM and the selectors it uses,
so a filter added there (tenancy, visibility) is in the compiled SQL too.

Only UUID parameters can be slots (ids are UUIDs here); other parameters the
queryset has are kept as compiled. ``select_related`` is fine: the related
rows come from the same query and are attached as the ORM would (one round
trip instead of one per relation).
"""

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators


@dataclass
class _Compiled:
    sql: str
    params: list
    slots: dict[str, tuple[int, Callable]]  # slot name → (parameter index, how the backend wants a UUID)
    attnames: list[str]
    fields: slice  # the row's columns of the queryset's own model
    converters: dict
    compiler: object
    related: list  # Django's RelatedPopulator per select_related relation


class CompiledQuery:
    """``build(**placeholders)`` returns the queryset; ``first(**values)`` runs it with real values.

    The queryset must select model instances (``only()`` and ``select_related``
    are fine): a row becomes one instance of its model, with the selected
    fields loaded and the others deferred, and its ``select_related`` objects
    attached.
    """

    def __init__(self, build: Callable[..., QuerySet], *slots: str, using: str = DEFAULT_DB_ALIAS):
        self.build = build
        self.slot_names = slots
        self.using = using
        self._local = threading.local()

    def first(self, **values: uuid.UUID) -> Model | None:
        compiled = self._compiled()
        params = list(compiled.params)
        for name, (index, prepare) in compiled.slots.items():
            params[index] = prepare(values[name])
        with connections[self.using].cursor() as cursor:
            cursor.execute(compiled.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        if compiled.converters:
            row = next(iter(compiled.compiler.apply_converters([row], compiled.converters)))
        instance = self.model.from_db(self.using, compiled.attnames, row[compiled.fields])
        for populator in compiled.related:
            populator.populate(row, instance)
        return instance

    def _compiled(self) -> _Compiled:
        compiled = getattr(self._local, "compiled", None)
        if compiled is None:
            compiled = self._local.compiled = self._compile()
        return compiled

    def _compile(self) -> _Compiled:
        placeholders = {name: uuid.UUID(int=number) for number, name in enumerate(self.slot_names, start=0xC0FFEE)}
        queryset = self.build(**placeholders)
        self.model = queryset.model
        compiler = queryset.query.get_compiler(using=self.using)
        sql, params = compiler.as_sql()
        if compiler.klass_info is None or compiler.annotation_col_map:
            raise ValueError("CompiledQuery needs a queryset of model instances without annotations.")
        select_fields = compiler.klass_info["select_fields"]
        fields = slice(select_fields[0], select_fields[-1] + 1)
        columns = [column for column, _, _ in compiler.select]
        return _Compiled(
            sql=sql,
            params=list(params),
            slots={name: _find(params, placeholder, name) for name, placeholder in placeholders.items()},
            attnames=[column.target.attname for column in columns[fields]],
            fields=fields,
            converters=compiler.get_converters(columns),
            compiler=compiler,
            related=get_related_populators(compiler.klass_info, compiler.select, self.using),
        )


def _find(params, placeholder: uuid.UUID, name: str) -> tuple[int, Callable]:
    """Where the compiled parameters hold ``placeholder``, and in which form (backends differ)."""
    for form in (lambda value: value, lambda value: value.hex, str):
        found = [index for index, param in enumerate(params) if param == form(placeholder)]
        if len(found) == 1:
            return found[0], form
    raise ValueError(f"The slot {name} is not one parameter of the compiled query.")
