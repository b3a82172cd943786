"""Read a YAML spec file (scene, recipe, training config) into plain data that remembers where each value was written.

The file is parsed with PyYAML's safe loader into node trees (``yaml.compose``)
rather than straight into Python data, so every key and value keeps its line and
column. From the nodes we build plain data plus a ``SourceMap``; pydantic validates
the data (``validate_located``), and every failure is reported at the place in the
file it came from (see ``hybrid.spec.errors``). Command-line values are merged into
the data before validation (``apply_overrides``), so they are checked like
everything else. Every function raises the ``SpecError`` subclass it is given
(``SceneError``, ``RecipeError``, ...), so each kind of file ends with its own help line.
"""

from __future__ import annotations

from typing import Mapping, Optional

import yaml
from pydantic import BaseModel, ValidationError

from hybrid.spec.errors import Issue, SourceMap, SpecError, format_path, issues_from_validation, sorted_issues

# Aliases can make a small file expand into a huge tree ("billion laughs"); a real
# file is far below this many values.
MAX_VALUES = 1_000_000

# Mappings and lists inside each other. The deepest real field is about six levels
# down (objects[0].shape.heights[3][4]); the readers after the parser (ours and
# pydantic's) recurse once per level, so a file nested thousands of levels deep would
# otherwise end in a RecursionError instead of a located message.
MAX_DEPTH = 64

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def read_source(filename: str, noun: str, error: type[SpecError] = SpecError) -> str:
    """The text of a YAML source file (scene, recipe, config), or `error` naming what is wrong with the file."""
    try:
        with open(filename, encoding="utf-8-sig") as f:
            return f.read()
    except FileNotFoundError:
        problem = f"{noun} file not found"
    except IsADirectoryError:
        problem = f"this is a folder; give a {noun} .yaml file"
    except UnicodeDecodeError as e:
        problem = f"not a UTF-8 text file ({e.reason} at byte {e.start})"
    except OSError as e:
        problem = f"cannot read the {noun} file: {e.strerror}"
    raise error([Issue(filename, 0, 0, "", problem)])


def validate_located(
    model: type[BaseModel], data: dict, source: SourceMap, issues: list[Issue], error: type[SpecError] = SpecError
) -> BaseModel:
    """``model.model_validate(data)``; every problem, the ``issues`` found before and
    validation's (located through ``source``), raised at once as ``error``."""
    issues = list(issues)
    result = None
    try:
        result = model.model_validate(data)
    except ValidationError as e:
        issues += issues_from_validation(e, source, data, model)
    if issues:
        raise error(sorted_issues(issues))
    return result


# ---------------------------------------------------------------- YAML with positions


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _yaml_problem(e: yaml.YAMLError, text: str, filename: str) -> Issue:
    """A PyYAML error as a located issue, in the parser's words."""
    if isinstance(e, yaml.MarkedYAMLError) and (e.problem_mark or e.context_mark):
        mark = e.problem_mark or e.context_mark
        message = f"YAML syntax error: {e.problem or e.context}"
        if e.context and e.problem and e.context_mark is not None:
            message += f" ({e.context} at line {e.context_mark.line + 1}, column {e.context_mark.column + 1})"
        if e.problem and "'\\t'" in e.problem:
            message += "; indent with spaces, not tabs"
        return Issue(filename, mark.line + 1, mark.column + 1, "", message)
    if isinstance(e, yaml.reader.ReaderError):
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        return Issue(filename, line, column, "", f"YAML syntax error: {e.reason} (character {e.character!r})")
    return Issue(filename, 1, 1, "", f"YAML syntax error: {e}")


class _Builder:
    """Turns a composed YAML node tree into plain data while recording positions."""

    def __init__(self, loader: yaml.SafeLoader, source: SourceMap):
        self.loader = loader
        self.source = source
        self.issues: list[Issue] = []
        self.count = 0
        self.active: set[int] = set()  # node ids on the current branch, to stop alias cycles

    def fail(self, node: yaml.Node, path: tuple, message: str) -> None:
        line, column = _mark(node)
        self.issues.append(Issue(self.source.filename, line, column, format_path(path), message))

    def build(self, node: yaml.Node, path: tuple) -> object:
        self.count += 1
        if self.count > MAX_VALUES:
            raise SpecError(
                [Issue(self.source.filename, *_mark(node), format_path(path),
                       f"the file expands to more than {MAX_VALUES} values (aliases nested too deep?)")]
            )
        self.source.values[path] = _mark(node)
        if isinstance(node, yaml.ScalarNode):
            return self.loader.construct_object(node)
        if len(path) >= MAX_DEPTH:
            raise SpecError(
                [Issue(self.source.filename, *_mark(node), format_path(path[:8]) + (" ..." if len(path) > 8 else ""),
                       f"lists and mappings nested more than {MAX_DEPTH} levels deep; no field of a scene "
                       "nests that far (a stray run of `[` or `{`?)")]
            )
        if id(node) in self.active:
            self.fail(node, path, "an alias refers to a mapping or list that contains it (a cycle)")
            return None
        if not node.flow_style:
            self.source.blocks.add(path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                if node.tag != _SEQ_TAG:
                    self.fail(node, path, f"YAML tags like {node.tag} are not supported in scenes")
                return [self.build(child, path + (i,)) for i, child in enumerate(node.value)]
            if node.tag != _MAP_TAG:
                self.fail(node, path, f"YAML tags like {node.tag} are not supported in scenes")
            return self.mapping(node, path)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: tuple) -> dict:
        out: dict = {}
        own: dict[str, yaml.Node] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                # `<<: *defaults` merges another mapping in; the file's own keys win.
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                for src in sources:
                    if not isinstance(src, yaml.MappingNode):
                        self.fail(src, path, "`<<` merges need a mapping (or a list of mappings) to merge in")
                        continue
                    merged.extend(pair for pair in src.value if pair[0].tag != _MERGE_TAG)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.fail(key_node, path, "a key must be plain text, not a list or mapping")
                continue
            # The key's text as written: `yes:` stays "yes" rather than YAML 1.1's True.
            key = key_node.value
            if key in own:
                line, column = _mark(own[key])
                self.fail(
                    key_node,
                    path + (key,),
                    f"duplicate key `{key}` (first given at line {line}, column {column}); "
                    "YAML would silently keep only the last one",
                )
                continue
            own[key] = key_node
        seen: set[str] = set()
        # Earlier merge sources win over later ones, own keys over all of them.
        pairs = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG and isinstance(k, yaml.ScalarNode)]
        for key_node, value_node in pairs + merged:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value in seen:
                continue
            key = key_node.value
            if key in own and own[key] is not key_node:
                continue  # a duplicate (reported) or a merged key the file overrides
            seen.add(key)
            self.source.keys[path + (key,)] = _mark(key_node)
            out[key] = self.build(value_node, path + (key,))
        return out


def _compose(text: str, filename: str) -> tuple[yaml.SafeLoader, Optional[yaml.Node]]:
    """The node tree of a one-document YAML text, and the safe loader that read it.

    libyaml's parser (when PyYAML was built with it) is several times faster, which
    matters for scenes with thousands of objects; the pure-Python parser words its
    errors better ("found character '\\t'"), so a failed parse is repeated with it
    for the message.
    """
    fast = getattr(yaml, "CSafeLoader", None)
    fast_error: Optional[yaml.YAMLError] = None
    if fast is not None:
        loader = fast(text)
        try:
            return loader, loader.get_single_node()
        except yaml.YAMLError as e:
            fast_error = e
            loader.dispose()
    loader = yaml.SafeLoader(text)
    try:
        return loader, loader.get_single_node()
    except yaml.YAMLError as e:
        loader.dispose()
        raise SpecError([_yaml_problem(e, text, filename)]) from None
    except RecursionError:
        # The pure-Python composer recurses once per nesting level; libyaml stops at its
        # own depth limit with a located message, which is the better answer here.
        loader.dispose()
        if fast_error is not None:
            raise SpecError([_yaml_problem(fast_error, text, filename)]) from None
        raise SpecError(
            [Issue(filename, 1, 1, "", f"lists and mappings nested too deeply to read (more than {MAX_DEPTH} levels)")]
        ) from None


def parse_yaml(text: str, filename: str, error: type[SpecError] = SpecError) -> tuple[dict, SourceMap]:
    """Parse YAML into plain data and a map of where each key and value was written.

    Raises ``error`` (a SpecError class: scenes, recipes and training configs give
    their own, with their own help line) for syntax errors, duplicate keys, an empty
    file, or a top level that is not a mapping.
    """
    try:
        return _parse_yaml(text, filename)
    except SpecError as e:
        if type(e) is error:
            raise
        raise error(e.issues) from None


def _parse_yaml(text: str, filename: str) -> tuple[dict, SourceMap]:
    source = SourceMap(filename)
    loader, root = _compose(text, filename)
    try:
        if root is None:
            raise SpecError(
                [Issue(filename, 1, 1, "", "the file is empty; a scene needs at least `name:` and usually `objects:`")]
            )
        if not isinstance(root, yaml.MappingNode):
            if isinstance(root, yaml.SequenceNode):
                given = "a list"
            else:
                given = f"the single value {root.value!r}"
            raise SpecError(
                [Issue(filename, *_mark(root), "",
                       f"the top level of a scene must be a mapping of keys (`name: ...`, `objects: ...`), got {given}")]
            )
        builder = _Builder(loader, source)
        try:
            data = builder.build(root, ())
        except yaml.YAMLError as e:  # a scalar with a tag the safe loader refuses
            raise SpecError([_yaml_problem(e, text, filename)]) from None
        if builder.issues:
            raise SpecError(sorted_issues(builder.issues))
    finally:
        loader.dispose()
    return data, source  # type: ignore[return-value]


# ---------------------------------------------------------------- command-line values


def apply_overrides(
    data: dict,
    source: SourceMap,
    overrides: Mapping[str, object],
    exclusive: Optional[Mapping[tuple, tuple]] = None,
) -> None:
    """Set command-line values into the raw data (in place) and note them in ``source``.

    Tuples become lists, as YAML would give them. ``exclusive`` maps a path to one
    that an override of it makes meaningless (a scene's ``frames`` and ``duration``):
    the file's value there is dropped unless it is overridden too.
    """
    given = {tuple(key.split(".")): value for key, value in overrides.items() if value is not None}
    for path, value in given.items():
        target = data
        for part in path[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        target[path[-1]] = list(value) if isinstance(value, tuple) else value
        source.overrides[path] = value
        other = (exclusive or {}).get(path)
        if other is not None and other not in given:
            data.pop(other[0], None)
