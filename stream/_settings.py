"""Configuration files: TOML (or JSON) plus overrides, validated by a pydantic model.

One loader for every config in the project (the service, training, evaluation data), so
they share the rules: later sources win; tables merge, values replace; an override of
None is an unset CLI option and is ignored; ``a__b`` addresses field ``b`` of table
``a``; relative paths written *in a file* are relative to that file's folder (a config
means the same wherever it is started from); errors name each field with what was
expected and what came.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar, get_args

import numpy as np
from pydantic import BaseModel, ValidationError

from ._errors import ConfigError, shown

M = TypeVar("M", bound=BaseModel)


def read_settings_file(path: Path) -> dict[str, Any]:
    """The tables of a TOML file (``.json``: a JSON object), or ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ConfigError(f"config file {path} is not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"expected a table of settings in {path}, got {type(data).__name__}")
    return data


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base`` (tables merge, values replace)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve_paths(data: dict[str, Any], fields: Iterable[str], folder: Path, source: str) -> None:
    """Make the relative paths at dotted ``fields`` of ``data`` relative to ``folder``;
    ConfigError for an empty one (it would name ``folder`` itself, unsaid)."""
    for dotted in fields:
        *tables, name = dotted.split(".")
        table: Any = data
        for key in tables:
            table = table.get(key) if isinstance(table, dict) else None
        if not isinstance(table, dict):
            continue
        value = table.get(name)
        for path in value if isinstance(value, list) else [value]:
            if isinstance(path, str) and not path.strip():
                raise ConfigError(
                    f"invalid configuration in {source}:\n  {dotted}: expected a path, got {path!r}"
                )
        if isinstance(value, str):
            table[name] = _under(folder, value)
        elif isinstance(value, list):  # a list of paths (model_dirs)
            table[name] = [_under(folder, v) if isinstance(v, str) else v for v in value]


def _under(folder: Path, path: str) -> str:
    value = Path(path).expanduser()
    return str(value if value.is_absolute() else folder / value)


def load_settings(
    model: type[M],
    path: Path | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    shortcuts: Mapping[str, tuple[str, ...]] | None = None,
    path_fields: Iterable[str] = (),
    section: str | None = None,
    options: Mapping[str, str] | None = None,
) -> M:
    """Validate ``base``, then the file at ``path``, then ``overrides`` as one ``model``.

    ``section``: if the file has this table, only it is used (a training config's
    ``data`` table serves as a data config). ``path_fields``: dotted names of path
    settings resolved against the file's folder. ``shortcuts`` map an override name to
    a nested field (``patch`` -> ``("data", "patch")``). ``options``: the command-line
    option each override key came from (``steps`` -> ``--steps``): an invalid value there
    is blamed on that option, not on the file.

    Raises
    ------
    ConfigError
        The file cannot be read or parsed, or a value is invalid.
    """
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        found = read_settings_file(path)
        if section is not None and isinstance(found.get(section), dict):
            found = found[section]
        _resolve_paths(found, path_fields, Path(path).resolve().parent, str(path))
        data = merge(data, found)
    given: dict[tuple[str, ...], str] = {}  # where an option's value went -> the option
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        where = (shortcuts or {}).get(key, tuple(key.split("__")))
        nested: Any = value
        for name in reversed(where):
            nested = {name: nested}
        data = merge(data, nested)
        if options is not None and key in options:
            given[tuple(where)] = options[key]
    source = str(path or "options")
    try:
        # strict, as JSON: a file's "false" or "5" is no bool or number (they were
        # converted without a word), while its strings stand for paths and its arrays
        # for tuples, as a file can write them
        text = json.dumps(_as_written(data, (), source, given))
        return model.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source, model, given)) from exc


#: Floats this close to 0 or nearer hold every integer exactly (``steps = 2e4`` is one).
EXACT_FLOAT_INTEGERS = 2.0**53


def _as_written(
    value: Any, where: tuple[str, ...], source: str, given: Mapping[tuple[str, ...], str]
) -> Any:
    """``value`` as a settings file writes it: a path as its string, a settings model as
    its table, a NumPy scalar as its number, a whole float as an integer (which a float
    setting takes too); ConfigError, naming the setting, for what no file can hold (a
    TOML date)."""
    if isinstance(value, dict):
        return {k: _as_written(v, (*where, str(k)), source, given) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_written(v, where, source, given) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) <= EXACT_FLOAT_INTEGERS:
        return int(value)
    if value is None or isinstance(value, str | bool | int | float):
        return value
    option = _option_for(where, given)
    said = f"invalid {option}" if option else f"invalid configuration in {source}:\n  "
    raise ConfigError(
        f"{said}{'' if option else '.'.join(where)}: expected a string, number, boolean, "
        f"array or table, got {type(value).__name__} {shown(value)}"
    )


def describe_validation_error(
    exc: ValidationError,
    source: str,
    model: type[BaseModel] | None = None,
    options: Mapping[tuple[str, ...], str] | None = None,
) -> str:
    """One line per invalid field: where, what was expected, what came; for a setting
    unknown where it stands but known in a table of ``model``, the table it belongs in.
    ``options``: the fields command-line options set, by the option's name; errors there
    name the option (one error alone, from an option: one line, no file named)."""
    errors = exc.errors()
    by_option = [_option_for(err["loc"], options or {}) for err in errors]
    if len(errors) == 1 and by_option[0] is not None:
        err = errors[0]
        message = err["msg"].removeprefix("Value error, ").removeprefix("Input should be ")
        came = shown(err.get("input"))
        said = "" if came in message else f" (got {came})"
        expected = "" if message.startswith("expected ") else "expected "  # a validator's
        return f"invalid {by_option[0]}: {expected}{message}{said}"
    everything_given = all(option is not None for option in by_option)
    lines = ["invalid options:" if everything_given else f"invalid configuration in {source}:"]
    for err, option in zip(errors, by_option, strict=True):
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        if option is not None:
            where = f"{option} (option)"
        value = err.get("input")
        came = shown(str(value) if isinstance(value, Path) else value)
        # a validator names a path unquoted (a config's paths come resolved, as str)
        path_like = isinstance(value, Path) or (isinstance(value, str) and "/" in value)
        said = str(value) if path_like else came
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and model is not None and len(err["loc"]) == 1:
            tables = _tables_with(model, str(err["loc"][0]))
            if tables:
                message += f"; it is a setting of [{'] or ['.join(tables)}]"
        # our validators already say what came; pydantic's own messages do not
        lines.append(f"  {where}: {message}" + ("" if said in message else f" (got {came})"))
    return "\n".join(lines)


def _option_for(loc: tuple[Any, ...], options: Mapping[tuple[str, ...], str]) -> str | None:
    """The option that set the field at ``loc`` (or a table holding it), if one did."""
    path = tuple(str(p) for p in loc)
    for where, option in options.items():
        if where and path[: len(where)] == where:
            return option
    return None


def _tables_with(model: type[BaseModel], name: str) -> list[str]:
    """The tables (sub-models) of ``model`` that have a setting ``name``."""
    tables = []
    for table, field in model.model_fields.items():
        kinds = (field.annotation, *get_args(field.annotation))
        if any(
            isinstance(k, type) and issubclass(k, BaseModel) and name in k.model_fields
            for k in kinds
        ):
            tables.append(table)
    return tables
