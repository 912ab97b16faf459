"""One declared schema per external file kind, and the one way to read such a file: ``load``.

Every JSON or TOML file StrokeLens reads (manifests, configs, sidecars, checkpoints, cache
attributes) is input and may be broken or hostile. ``load`` reads it through ``core.files``
(a bounded regular file), refuses nesting deeper than ``limits.MAX_NESTING`` by a scan of the
text *before* parsing (parsers recurse: 10^5 nested brackets raise RecursionError, 10^5 dotted
TOML keys take the machine's memory), parses strictly (no NaN/Infinity literals, no duplicate
keys), validates against the kind's schema, and turns any failure into one ``DataError`` line:
the file, the field path (``members[0].sha256``, ``train.batch_size``) and the problem.

The schemas are pydantic v2 models (or pydantic dataclasses, where the project's dataclass is
the schema): its errors name the field path and the problem; strict types (no "1" -> 1, no
true -> 1); declarative constraints (``gt``/``ge``, finite floats, patterns); cross-field
validators (a range's low < high); and it is the most widely maintained of the candidates.
msgspec is faster, but speed is irrelevant for files of a few kB and its errors are terser;
jsonschema validates JSON documents only and would need a second layer to build the objects.
Our own formats forbid unknown keys (a typo is an error, never a silent default); ISLES
sidecars may carry any key, so only the keys StrokeLens uses are checked.
"""

from __future__ import annotations

import functools
import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    create_model,
)

from strokelens.core.case import CHANNELS
from strokelens.core.errors import DataError
from strokelens.core.files import read_text
from strokelens.core.limits import (
    MAX_DOCUMENT_BYTES,
    MAX_NESTING,
    MAX_VALUE_SCALE,
    MIN_VALUE_SCALE,
)
from strokelens.core.safepath import name_problem
from strokelens.core.units import UNIT_FACTORS

T = TypeVar("T")

#: Configuration of our own formats: unknown keys are errors. Strictness lies in the field types
#: below (a model-wide ``strict`` would refuse a JSON object for a nested dataclass).
STRICT = ConfigDict(extra="forbid")

# --- shared field types: no coercion ("1" is no integer, true is no number) -------------------

Int = Annotated[int, Strict()]
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
#: A finite number (an integer is a number too).
Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Positive = Annotated[Finite, Field(gt=0)]
#: A map's value scale (stored value x scale = physical value), within the limits' bounds.
Scale = Annotated[Finite, Field(ge=MIN_VALUE_SCALE, le=MAX_VALUE_SCALE)]


def _increasing(pair: tuple[float, float]) -> tuple[float, float]:
    if not pair[0] < pair[1]:
        raise ValueError(f"low ({pair[0]}) must be below high ({pair[1]})")
    return pair


#: ``[low, high]`` with low < high, both finite (a JSON/TOML list becomes a tuple).
Range = Annotated[tuple[Finite, Finite], Strict(False), AfterValidator(_increasing)]


def version(number: int) -> Any:
    """The type of a format's ``version`` field: exactly ``number`` (an integer)."""

    def check(found: int) -> int:
        if found != number:
            raise ValueError(f"version {found}; this StrokeLens reads version {number}")
        return found

    return Annotated[Int, AfterValidator(check)]


def _safe_name(value: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(f"{value!r} cannot be part of a file name: {problem}")
    return value


#: A name that becomes part of a file name (``core.safepath``'s rule).
SafeName = Annotated[Str, AfterValidator(_safe_name)]
Channel = Literal[CHANNELS]


def _all_channels(table: dict[str, Any]) -> dict[str, Any]:
    missing = [c for c in CHANNELS if c not in table]
    if missing:
        raise ValueError(f"missing channels {missing}")
    return table


def _channel_range(value: object) -> object:
    """``[low, high]`` or ``{"low": a, "high": b, "reference": r}`` as the triple
    ``ChannelRange`` checks (``reference`` None for a plain range)."""
    if isinstance(value, dict):
        if set(value) != {"low", "high", "reference"}:
            raise ValueError("a relative range has exactly low, high and reference")
        return (value["low"], value["high"], value["reference"])
    if isinstance(value, list | tuple) and len(value) == 2:
        return (*value, None)
    raise ValueError("a range is [low, high] or {low, high, reference}")


#: ``[low, high]``, or ``{low, high, reference}``: a channel scaled per case so that its
#: healthy-brain median becomes ``reference`` (``core.preprocessing``); read as
#: ``(low, high, reference or None)``.
ChannelRange = Annotated[
    tuple[Finite, Finite, Positive | None],
    BeforeValidator(_channel_range),
    Strict(False),
    AfterValidator(_increasing),
]
#: Channel -> its range for every channel (a missing range is an error, not a KeyError later).
ChannelRanges = Annotated[dict[Channel, ChannelRange], AfterValidator(_all_channels)]


def json_text(value: object) -> object:
    """A JSON string inside another format (HDF5 attributes, safetensors metadata), parsed
    with the same depth limit; for ``BeforeValidator``."""
    if not isinstance(value, str):
        raise ValueError("must be JSON text")
    return parse(value, "json")


def from_numpy(value: object) -> object:
    """An HDF5 attribute (a numpy scalar or array) as the plain value a schema checks."""
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value


# --- the schemas of core's file kinds --------------------------------------------------------


def _range_table(value: object) -> object:
    """``{low = a, high = b}`` (a TOML table) as the pair ``Range`` checks."""
    if not isinstance(value, dict):
        return value  # Range's own error: not a list
    unknown = sorted(set(value) - {"low", "high"})
    if unknown:
        raise ValueError(f"unknown keys {unknown}; a range has low and high")
    if "low" not in value or "high" not in value:
        raise ValueError("a range needs low and high")
    return (value["low"], value["high"])


class PreprocessingConfig(BaseModel):
    """``configs/preprocessing.toml``: ``[channels.<name>] low = .. high = ..`` for each channel."""

    model_config = STRICT
    channels: Annotated[
        dict[Channel, Annotated[Range, BeforeValidator(_range_table)]],
        AfterValidator(_all_channels),
    ]


class Sidecar(BaseModel):
    """An ISLES ``.json`` sidecar: any keys; ``description`` (patient id) and ``scale`` (stored ->
    physical value) are checked where given."""

    model_config = ConfigDict(extra="ignore")
    description: Str | None = None
    scale: Scale | None = None


def _map_units(channel: str) -> type[BaseModel]:
    """``[maps.<channel>]``: ``unit`` (one of ``units.UNIT_FACTORS[channel]``) and ``scale``."""
    return create_model(
        f"{channel}Units",
        __config__=STRICT,
        unit=(Literal[tuple(UNIT_FACTORS[channel])], ...),
        scale=(Scale, 1.0),
    )


def _known_maps(value: object) -> object:
    """Refuse a ``[maps]`` table naming other maps (CT, a typo), saying which are meant."""
    unknown = sorted(set(value) - set(UNIT_FACTORS)) if isinstance(value, dict) else []
    if unknown:
        raise ValueError(
            f"unknown map {', '.join(map(repr, unknown))}: a declaration names "
            f"{', '.join(UNIT_FACTORS)} (CT is read in HU as stored)"
        )
    return value


#: ``[maps]``: a table per declared map.
DeclaredMaps = create_model(
    "DeclaredMaps",
    __config__=STRICT,
    **{channel: (_map_units(channel) | None, None) for channel in UNIT_FACTORS},
)


class UnitsDeclaration(BaseModel):
    """``strokelens.toml``: the units and scale of a data set's maps (``core.units``)."""

    model_config = STRICT
    maps: Annotated[DeclaredMaps, BeforeValidator(_known_maps)]  # type: ignore[valid-type]

    def scales(self) -> dict[str, float]:
        """Declared map -> stored-to-shown scale (the declared scale x its unit's factor)."""
        return {
            channel: table.scale * UNIT_FACTORS[channel][table.unit]
            for channel in UNIT_FACTORS
            if (table := getattr(self.maps, channel)) is not None
        }


# --- loading ----------------------------------------------------------------------------------

_STRING = r'"(?:[^"\\\n]|\\.)*+"|\'[^\'\n]*+\''
#: Possessive, and never starting inside a word: the scan stays linear on any text.
_KEY = rf"(?:(?<![A-Za-z0-9_-])[A-Za-z0-9_-]++|{_STRING})"
#: Multi-line TOML strings, strings and comments (brackets inside do not nest), dotted keys (each
#: dot nests a table) and brackets; the rest is skipped. A region skipped here that a parser
#: reads (after a lone quote, say) follows text that is no valid JSON/TOML, where parsing stops.
_TOKENS = re.compile(
    r'(?P<skip>"""(?:[^"\\]|\\[\s\S]|"(?!""))*"""|\'\'\'[\s\S]*?\'\'\''
    rf"|(?P<dotted>{_KEY}(?:[ \t]*\.[ \t]*{_KEY})+)|{_STRING}|#[^\n]*)"
    r"|(?P<open>[\[{])|[\]}]"
)


def check_nesting(text: str, limit: int = MAX_NESTING) -> None:
    """ValueError when ``text`` (JSON or TOML) nests deeper than ``limit``, by a linear scan."""
    if text.count("[") + text.count("{") + text.count(".") <= limit:
        return  # cannot nest deeper (the usual case for a small file)
    depth = 0
    for m in _TOKENS.finditer(text):
        if m["open"]:
            depth += 1
            deepest = depth
        elif m["dotted"]:
            deepest = depth + m["dotted"].count(".")  # a float's dot counts too: harmless
        elif m["skip"]:
            continue
        else:
            depth = max(depth - 1, 0)
            continue
        if deepest > limit:
            raise ValueError(f"nested more than {limit} levels deep")


def _constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"duplicate key {dup!r}")
    return out


def parse(text: str, fmt: Literal["json", "toml"]) -> Any:
    """``text`` parsed as ``fmt`` after the nesting check; ValueError with the reason."""
    check_nesting(text)
    if fmt == "toml":
        return tomllib.loads(text)
    return json.loads(text, parse_constant=_constant, object_pairs_hook=_no_duplicates)


@functools.cache
def _adapter(schema: Any) -> TypeAdapter:
    return TypeAdapter(schema)


_JSON_TYPES = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}


def _type_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _where(loc: tuple) -> str:
    out = ""
    for part in loc:
        if part == "[key]":  # pydantic's mark of a dict key's (not value's) error
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "top level"


def _problem(error: dict) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "missing":
        return "required, missing"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return "unknown key"
    msg = msg.removeprefix("Value error, ")
    found = error.get("input")
    if kind == "literal_error" and (found is None or isinstance(found, str | int | float)):
        msg += f", not {json.dumps(found)}"
    elif kind.endswith("_type") or kind == "literal_error":
        msg += f", not {_type_of(found)}"
    return msg


def describe(exc: ValidationError) -> str:
    """One line for all of ``exc``'s errors: ``field.path: problem; ...``."""
    errors = exc.errors(include_url=False)
    shown = [f"{_where(e['loc'])}: {_problem(e)}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(shown) + more


def validate(data: object, schema: type[T] | Any, source: str | Path) -> T:
    """``data`` validated against ``schema``; a DataError naming ``source`` and the fields."""
    try:
        return _adapter(schema).validate_python(data)
    except ValidationError as exc:
        raise DataError(source, describe(exc)) from None


def load(path: str | Path, schema: type[T] | Any, what: str) -> T:
    """The file at ``path`` (JSON, or TOML by its ``.toml`` suffix) read, parsed and validated
    against ``schema``; every failure is a DataError naming the file (``what`` is its role)."""
    path = Path(path)
    fmt: Literal["json", "toml"] = "toml" if path.suffix.lower() == ".toml" else "json"
    text = read_text(path, what, MAX_DOCUMENT_BYTES)
    try:
        data = parse(text, fmt)
    except ValueError as exc:  # JSONDecodeError, TOMLDecodeError, nesting, duplicates
        raise DataError(path, f"not a readable {what} ({exc})") from None
    return validate(data, schema, path)
