"""Unions of spec models told apart by a tag, that grow as models are registered.

A scene's ``shape`` is one of the registered shape models, picked by its ``type``;
the union is built from a ``TaggedUnion`` rather than written out, so a new kind is
one model plus one registration. Models that use the union declare it with
``uses``; a registration after they were built (a shape defined in a user's own
module, imported after ``hybrid.scene``) rebuilds them, and the models that contain
them, so the new kind validates, locates its errors and appears in the JSON Schema
like the built-in ones.
"""

from __future__ import annotations

from typing import Annotated, Callable, Iterator, Sequence, Union, get_args

from pydantic import BaseModel, Field
from pydantic.fields import FieldInfo


class TaggedUnion:
    """Models registered by the value of their Literal ``tag`` field, in registration order."""

    def __init__(self, what: str, tag: str = "type"):
        self.what = what
        self.tag = tag
        self._members: dict[str, type[BaseModel]] = {}
        # (model, field, annotation builder, models to rebuild after it)
        self._users: list[tuple[type[BaseModel], str, Callable[[], object], tuple[type[BaseModel], ...]]] = []

    def add(self, model: type[BaseModel]) -> type[BaseModel]:
        """Register ``model`` under its tag; a tag registered twice is an error."""
        names = get_args(model.model_fields[self.tag].annotation)
        if len(names) != 1 or not isinstance(names[0], str):
            raise TypeError(f"{model.__name__}.{self.tag} must be a Literal of one string to join the {self.what} union")
        name = names[0]
        if name in self._members and self._members[name] is not model:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._members[name] = model
        self._rebuild_users()
        return model

    def remove(self, name: str) -> type[BaseModel]:
        """Take ``name`` out again (a shape registered by a test, a plugin unloaded); returns its model."""
        model = self._members.pop(name)
        self._rebuild_users()
        return model

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __getitem__(self, name: str) -> type[BaseModel]:
        return self._members[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def names(self) -> tuple[str, ...]:
        return tuple(self._members)

    def annotation(self, *extra: object) -> object:
        """``Annotated[Union[members], Field(discriminator=tag), *extra]`` for a field, as it stands now."""
        members = tuple(self._members.values())
        union = Union[members] if len(members) > 1 else members[0]  # type: ignore[valid-type]
        return Annotated[(union, Field(discriminator=self.tag), *extra)]

    def uses(
        self, model: type[BaseModel], field: str, build: Callable[[], object], then: Sequence[type[BaseModel]] = ()
    ) -> None:
        """Declare that ``model.field`` is annotated ``build()`` (made from ``annotation``), and that
        the models in ``then`` contain ``model``: later registrations rebuild all of them, in order."""
        self._users.append((model, field, build, tuple(then)))

    def _rebuild_users(self) -> None:
        if not self._users:
            return
        from hybrid.spec.errors import forget_annotations

        for model, field, build, then in self._users:
            old = model.model_fields[field]
            new = FieldInfo.from_annotated_attribute(build(), _default_of(old))
            new.description = old.description
            model.model_fields[field] = new
            model.model_rebuild(force=True)
            for outer in then:
                outer.model_rebuild(force=True)
        forget_annotations()


def _default_of(info: FieldInfo) -> object:
    """The FieldInfo's default in the form ``from_annotated_attribute`` takes (constraints included)."""
    kwargs: dict = {}
    if info.default_factory is not None:
        kwargs["default_factory"] = info.default_factory
    else:
        kwargs["default"] = info.default
    for item in info.metadata:
        for key in ("min_length", "max_length"):
            if getattr(item, key, None) is not None:
                kwargs[key] = getattr(item, key)
    return Field(**kwargs)
