"""AG-UI events as SSE bytes without building the protocol package's pydantic models.

A web turn sends about ten AG-UI events; building each as a pydantic model and dumping it
(`EventEncoder`) costs more than the rest of the encoding together. `sse_event(cls, fields)`
writes the same bytes from the event class's own field table (names, camelCase aliases,
defaults, order, which empty fields are left out), read from `cls.model_fields` once per class,
so the protocol package stays the source of truth. The fields are not validated: they are
trusted to be ones the model accepts (the mapper's own). Only string fields take this path; an
event with any other value (a nested model, a number, a list) or a field the class does not
declare goes through the model and the encoder. tests/web/test_agui.py checks both give the
same bytes for random runs.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import orjson
from ag_ui.core import BaseEvent
from ag_ui.encoder import EventEncoder

__all__ = ["sse_event"]

_ENCODER = EventEncoder()
_MISSING = object()

# per event class: its field names, and per field (python name, JSON key, default or _MISSING,
# left out when None), in the model's order
_Layout = tuple[frozenset[str], tuple[tuple[str, str, Any, bool], ...]]
_LAYOUTS: dict[type[BaseEvent], _Layout] = {}


def _layout(cls: type[BaseEvent]) -> _Layout:
    layout = _LAYOUTS.get(cls)
    if layout is None:
        fields = []
        for name, field in cls.model_fields.items():
            default = _MISSING if field.is_required() else field.default
            if isinstance(default, Enum):
                default = default.value
            omittable = not field.is_required() and field.default is None
            fields.append((name, field.alias or name, default, omittable))
        layout = _LAYOUTS[cls] = (frozenset(cls.model_fields), tuple(fields))
    return layout


def sse_event(cls: type[BaseEvent], fields: dict[str, Any]) -> bytes:
    """`data: {json}\\n\\n` for the event `cls(**fields)`, as AG-UI's `EventEncoder` writes it."""
    names, layout = _layout(cls)
    if all(type(value) is str for value in fields.values()) and fields.keys() <= names:
        document: dict[str, Any] = {}
        for name, key, default, omittable in layout:
            value = fields.get(name, default)
            if value is _MISSING:
                break  # a required field is missing: the model says what is wrong
            if value is None and omittable:
                continue
            document[key] = value
        else:
            try:
                return b"data: " + orjson.dumps(document) + b"\n\n"
            except orjson.JSONEncodeError:
                pass  # a lone surrogate: what the model makes of it is the answer
    return _ENCODER.encode(cls(**fields)).encode()
