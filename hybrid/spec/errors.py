"""Located errors for every YAML spec: what went wrong, in which file, at which line, column and field.

A ``SpecError`` carries every problem found in one pass (``.issues``) so an author
fixes a file in one round instead of one error per run. Its text is one line per
issue in the ``file:line:column: path: message`` form that editors and terminals
turn into clickable links, followed by a line on where to look up the fields (the
subclass's ``help_line``: scenes, recipes and training configs each name their own).

This module also turns pydantic's validation errors into such issues: locations in
the author's terms (``objects[0].shape.radius``, without the union tags pydantic
inserts), messages that say what was expected and what was given, and the nearest
valid key or value for a misspelled one.
"""

from __future__ import annotations

import difflib
import functools
import types
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Iterable, Literal, Optional, Sequence, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

def format_path(path: Sequence[object]) -> str:
    """('objects', 2, 'physics', 'mass') -> 'objects[2].physics.mass'; () -> ''."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            out += f".{part}" if out else part
        else:
            # Keys that would read ambiguously after a dot (spaces, dots, numbers).
            out += f"[{part!r}]"
    return out


@dataclass(frozen=True)
class Issue:
    """One problem in a spec file (a scene, a recipe, a training config).

    ``line`` and ``column`` are 1-based; 0 means the position is unknown (a file that
    could not be read, a setting from the environment). ``path`` is the field path as
    written to the user (``objects[2].physics.mass``; empty for the whole file).
    ``suggestion`` is the likely intended key or value; ``choices`` the valid ones
    where there are few enough to list.
    """

    file: str
    line: int
    column: int
    path: str
    message: str
    suggestion: Optional[str] = None
    choices: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = self.file
        if self.line > 0:
            where += f":{self.line}:{self.column}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        hints = []
        if self.suggestion is not None:
            hints.append(f"did you mean '{self.suggestion}'?")
        if self.choices:
            hints.append("one of: " + ", ".join(self.choices))
        if hints:
            text += " (" + " ".join(hints) + ")"
        return text


class SpecError(Exception):
    """A spec file that cannot be used, with every located problem in ``issues``.

    Subclasses name the kind of file (``SceneError``, ``RecipeError``, training
    configs' ``TrainConfigError``) and set ``help_line``, the last line of the text.
    """

    help_line: ClassVar[str] = ""

    def __init__(self, issues: Iterable[Issue]):
        self.issues: list[Issue] = list(issues)
        if not self.issues:
            raise ValueError(f"{type(self).__name__} needs at least one issue")
        super().__init__(self._text())

    def _text(self) -> str:
        return "\n".join([str(issue) for issue in self.issues] + ([self.help_line] if self.help_line else []))

    def __str__(self) -> str:
        return self._text()


def show_value(value: object, limit: int = 40) -> str:
    """A value as the author would write it in YAML, shortened: 'big', -1, [1, 2], null."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = repr(value)
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(show_value(v, limit) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {show_value(v, limit)}" for k, v in value.items()) + "}"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- where things are in the file


@dataclass
class SourceMap:
    """Where each field of a parsed YAML file was written, for pointing at it.

    Paths are tuples of keys and list indices, ``("objects", 2, "physics", "mass")``.
    ``keys`` holds the 1-based (line, column) of each mapping key, ``values`` of each
    value; ``blocks`` the paths whose value is a block (indented) mapping or list,
    which start on the line after their key. ``overrides`` holds values set from the
    command line rather than the file, by path.
    """

    filename: str
    keys: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    values: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    blocks: set[tuple] = field(default_factory=set)
    overrides: dict[tuple, object] = field(default_factory=dict)

    def locate(self, path: tuple, at_key: bool = False) -> tuple[int, int]:
        """(line, column) of ``path``, or of its nearest written parent; (0, 0) if nothing is known.

        A block mapping or list is located at its key: its first child starts on the
        next line, and pointing there would look like blaming that child.
        """
        path = tuple(path)
        if at_key and path in self.keys:
            return self.keys[path]
        while True:
            if path in self.values:
                if path in self.blocks and path in self.keys:
                    return self.keys[path]
                return self.values[path]
            if not path:
                return (0, 0)
            path = path[:-1]

    def issue(
        self,
        path: tuple,
        message: str,
        suggestion: Optional[str] = None,
        choices: Sequence[str] = (),
        at_key: bool = False,
    ) -> Issue:
        """An Issue for ``path``, located in the file, or at its top for command-line values."""
        path = tuple(path)
        line, column = self.locate(path, at_key)
        for where, value in self.overrides.items():
            if path[: len(where)] == where:
                # The value never appeared in the file; the top of the file is the
                # conventional place for whole-file problems.
                line, column = 1, 1
                message += f" (set on the command line: {format_path(where)}={show_value(value)})"
                break
        return Issue(self.filename, line, column, format_path(path), message, suggestion, tuple(choices))


# ---------------------------------------------------------------- how raw data lines up with the models
#
# pydantic reports locations in its own terms: a discriminated union adds the tag
# (`sphere`) to the location, a plain union adds the branch's type name. The helpers
# below walk the model annotations next to the location so those extra parts are
# dropped and the model at each place is known (for suggesting valid keys).
# Annotations are hashable and few, so the lookups are cached: a scene with
# thousands of objects asks the same questions thousands of times.

_MISSING = object()


_CACHES: list = []


def _memo(fn):
    """Cache by arguments; arguments that cannot be hashed (a dict in some metadata) are computed afresh."""
    cached = functools.lru_cache(maxsize=None)(fn)
    _CACHES.append(cached)

    @functools.wraps(fn)
    def lookup(*args):
        try:
            hash(args)
        except TypeError:
            return fn(*args)
        return cached(*args)

    return lookup


def forget_annotations() -> None:
    """Drop the cached lookups: a model's field annotation changed (``hybrid.spec.registry``)."""
    for cached in _CACHES:
        cached.cache_clear()


def _is_union(ann: object) -> bool:
    return get_origin(ann) in (Union, types.UnionType)


def _is_model(ann: object) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


@_memo
def strip_type(ann: object) -> tuple[object, tuple]:
    """Annotated[...] and Optional[...] peeled off: (bare type, constraint metadata)."""
    meta: list = []
    while True:
        if get_origin(ann) is Annotated:
            base, *extra = get_args(ann)
            for m in extra:
                meta.extend(m.metadata if isinstance(m, FieldInfo) else [m])
            ann = base
            continue
        if _is_union(ann):
            members = [a for a in get_args(ann) if a is not type(None)]
            if len(members) == 1:
                ann = members[0]
                continue
        return ann, tuple(meta)


@_memo
def field_type(model: type[BaseModel], name: str) -> object:
    """The annotation of a model field with its constraints (which pydantic keeps apart)."""
    f = model.model_fields[name]
    return Annotated[(f.annotation, *f.metadata)] if f.metadata else f.annotation


@_memo
def tagged_members(ann: object) -> Optional[tuple[str, dict[str, type[BaseModel]]]]:
    """For a union of models told apart by a Literal field: (that field, {tag: model}); else None."""
    base, _ = strip_type(ann)
    if not _is_union(base):
        return None
    members = [strip_type(a)[0] for a in get_args(base) if a is not type(None)]
    if not members or not all(_is_model(m) for m in members):
        return None
    for name in members[0].model_fields:
        tags: dict[str, type[BaseModel]] = {}
        for m in members:
            lit = strip_type(m.model_fields[name].annotation)[0] if name in m.model_fields else None
            if get_origin(lit) is not Literal:
                break
            tags.update({str(v): m for v in get_args(lit)})
        else:
            return name, tags
    return None


def models_in(data: object, ann: object, path: tuple = ()):
    """Yield (path, model class, mapping) for every mapping in raw ``data`` that a model will read."""
    base, _ = strip_type(ann)
    tagged = tagged_members(base)
    if tagged is not None:
        if isinstance(data, dict):
            model = tagged[1].get(str(data.get(tagged[0])))
            if model is not None:
                yield from models_in(data, model, path)
        return
    if _is_model(base) and isinstance(data, dict):
        yield path, base, data
        for key, value in data.items():
            if key in base.model_fields:
                yield from models_in(value, field_type(base, key), path + (key,))
    elif _is_sequence(base) and isinstance(data, list):
        for i, value in enumerate(data):
            yield from models_in(value, get_args(base)[0], path + (i,))


def _is_sequence(ann: object) -> bool:
    """list[X] or tuple[X, ...]: any number of items of one type."""
    args = get_args(ann)
    return get_origin(ann) is list or (get_origin(ann) is tuple and len(args) == 2 and args[1] is Ellipsis)


def clean_loc(loc: Sequence[object], root: type[BaseModel]) -> tuple[tuple, list, Optional[tuple]]:
    """A pydantic error location as the author's field path.

    Returns (path, types, union_at): ``types[k]`` is the annotation at ``path[:k]``
    (None where unknown), and ``union_at`` the path of a plain (untagged) union the
    error came through, whose alternatives pydantic reports one error each.
    """
    path: list = []
    found: list = [root]
    ann: object = root
    union_at: Optional[tuple] = None
    for part in loc:
        if ann is None:
            path.append(part)
            found.append(None)
            continue
        base, _ = strip_type(ann)
        tagged = tagged_members(base)
        if tagged is not None:
            # The tag names the chosen model; it is not a key the author wrote.
            ann = tagged[1].get(str(part))
            found[-1] = ann or found[-1]
            continue
        if _is_union(base):
            if union_at is None:
                union_at = tuple(path)
            ann = None
            continue
        path.append(part)
        origin, args = get_origin(base), get_args(base)
        if _is_model(base):
            ann = field_type(base, part) if isinstance(part, str) and part in base.model_fields else None
        elif origin is list:
            ann = args[0]
        elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            ann = args[0]
        elif origin is tuple:
            ann = args[part] if isinstance(part, int) and 0 <= part < len(args) else None
        elif origin is dict:
            ann = args[1]
        else:
            ann = None
        found.append(ann)
    return tuple(path), found, union_at


def _number(x: object) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _bounds(meta: tuple) -> str:
    limits = {attr: getattr(m, attr) for m in meta for attr in ("gt", "ge", "lt", "le") if getattr(m, attr, None) is not None}
    if "ge" in limits and "le" in limits:
        return f"from {_number(limits['ge'])} to {_number(limits['le'])}"
    words = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
    return " and ".join(f"{words[k]} {_number(v)}" for k, v in limits.items())


@_memo
def describe(ann: object) -> str:
    """What a value of this annotation looks like, in words: 'a number greater than 0'."""
    base, meta = strip_type(ann)
    tagged = tagged_members(base)
    if tagged is not None:
        return f"a mapping with `{tagged[0]}` (one of: {', '.join(tagged[1])})"
    if _is_union(base):
        return " or ".join(describe(a) for a in get_args(base) if a is not type(None))
    if base is bool:
        return "true or false"
    if base in (int, float):
        noun = "a whole number" if base is int else "a number"
        bounds = _bounds(meta)
        return f"{noun} {bounds}" if bounds else noun
    if base is str:
        return "non-empty text" if any(getattr(m, "min_length", 0) for m in meta) else "text"
    origin, args = get_origin(base), get_args(base)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        inner = {describe(a) for a in args}
        if len(inner) == 1:
            one = inner.pop()
            for single, plural in (("a whole number", "whole numbers"), ("a number", "numbers")):
                if one.startswith(single):
                    return f"a list of {len(args)} {plural}{one[len(single):]}"
        return f"a list of {len(args)} items"
    if origin in (list, tuple):
        return "a list"
    if origin is dict or _is_model(base):
        return "a mapping of keys to values"
    return getattr(base, "__name__", str(base))


def suggest_key(key: object, model: object) -> Optional[str]:
    """The valid key nearest to a misspelled one, or `physics.mass` for a key one level too high."""
    if not _is_model(model):
        return None
    names = list(model.model_fields)
    close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
    if close:
        return close[0]
    for name in names:
        sub = strip_type(field_type(model, name))[0]
        tagged = tagged_members(sub)
        children = [m for m in tagged[1].values()] if tagged else [sub]
        if any(_is_model(c) and key in c.model_fields for c in children):
            return f"{name}.{key}"
    return None


def _get(data: object, path: tuple) -> object:
    for part in path:
        try:
            data = data[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return data


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") else word


# Literal fields whose values read better with a noun: "unknown body type 'dynamc'".
_VALUE_NOUNS = {"body": "body type", "motion": "camera motion"}


def _issue_for(err: dict, path: tuple, found: list, source: SourceMap) -> Issue:
    kind = err["type"]
    ann = found[-1]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        if path and isinstance(path[-1], int):
            # A fixed-length list with too few items: blame the list, not the absent item.
            return source.issue(path[:-1], f"expected {describe(found[-2])}, got {show_value(value)}")
        return source.issue(path, f"missing required field `{path[-1]}`")
    if kind == "extra_forbidden":
        parent = strip_type(found[-2])[0] if len(found) >= 2 else None
        where = f"in {format_path(path[:-1])}" if path[:-1] else "at the top level"
        return source.issue(
            path, f"unknown key `{path[-1]}` {where}", suggestion=suggest_key(path[-1], parent), at_key=True
        )
    if kind == "literal_error":
        base = strip_type(ann)[0]
        choices = [str(a) for a in get_args(base)] if get_origin(base) is Literal else []
        last = path[-1] if path else ""
        if last == "type":
            parents = [p for p in path[:-1] if isinstance(p, str)]
            noun = f"{_singular(parents[-1])} type" if parents else "type"
        else:
            noun = _VALUE_NOUNS.get(str(last), f"`{last}` value")
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
        return source.issue(path, f"unknown {noun} {show_value(value)}", close[0] if close else None, choices)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "type")).strip("'")
        tagged = tagged_members(ann)
        choices = list(tagged[1]) if tagged else []
        parents = [p for p in path if isinstance(p, str)]
        noun = _singular(parents[-1]) if parents else "value"
        if not isinstance(value, dict):
            return source.issue(path, f"expected a mapping with `{key}`, got {show_value(value)}", None, choices)
        if kind == "union_tag_not_found":
            return source.issue(path + (key,), f"missing required field `{key}`, the {noun} type", None, choices)
        tag = ctx.get("tag")
        close = difflib.get_close_matches(str(tag), choices, n=1, cutoff=0.5)
        return source.issue(path + (key,), f"unknown {noun} type {show_value(tag)}", close[0] if close else None, choices)
    if kind in ("value_error", "assertion_error"):
        message = err["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            message = message.removeprefix(prefix)
        error = ctx.get("error")
        # A spec check may name the field to blame (SpecValueError.at).
        at = tuple(getattr(error, "at", ()))
        return source.issue(path + at, message, getattr(error, "suggestion", None))
    if kind == "finite_number":
        return source.issue(path, f"expected a finite number, got {show_value(value)}")
    if ann is not None:
        return source.issue(path, f"expected {describe(ann)}, got {show_value(value)}")
    text = err["msg"][:1].lower() + err["msg"][1:]
    return source.issue(path, f"{text}, got {show_value(value)}")


def issues_from_validation(
    error: ValidationError, source: SourceMap, data: object, root: type[BaseModel]
) -> list[Issue]:
    """Every error of a failed ``root.model_validate(data)`` as located, worded issues."""
    issues: list[Issue] = []
    unions: dict[tuple, object] = {}
    errors = error.errors()
    # A tuple whose items failed also reports itself too short (its failed items do not
    # count); the items' own errors say what is wrong.
    failed_items = {tuple(e["loc"][:i]) for e in errors for i, part in enumerate(e["loc"]) if isinstance(part, int)}
    for err in errors:
        if err["type"] == "too_short" and tuple(err["loc"]) in failed_items:
            continue
        path, found, union_at = clean_loc(err["loc"], root)
        if union_at is not None:
            # One issue per plain union, naming every accepted form, instead of one
            # confusing message per alternative.
            unions.setdefault(union_at, found[len(union_at)])
            continue
        issues.append(_issue_for(err, path, found, source))
    for path, ann in unions.items():
        issues.append(source.issue(path, f"expected {describe(ann)}, got {show_value(_get(data, path))}"))
    return issues


def sorted_issues(issues: Iterable[Issue]) -> list[Issue]:
    """Issues in file order, each once."""
    unique = list(dict.fromkeys(issues))
    return sorted(unique, key=lambda i: (i.file, i.line, i.column))
