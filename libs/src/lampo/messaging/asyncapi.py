"""What a service sends, declared where the service is composed, for its AsyncAPI document.

A service's records leave through its outbox relay (``lampo.messaging.outbox``), an aiokafka
producer of its own, not through FastStream publishers. :func:`sends` declares a FastStream
publisher that nothing calls, so that FastStream's own AsyncAPI generation (``faststream docs gen``,
``deploy/tools/apidocs.py``) lists the ``send`` operation beside the ``receive`` operations of the
service's consumers, with its payload schema: the CloudEvents envelope whose ``data`` is the
event's model (:func:`envelope_model`). Declaring one connects to nothing and sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Final, Literal, Union

from pydantic import BaseModel, Field, create_model

from lampo.contracts.catalog import EVENT_TYPES
from lampo.contracts.envelope import CONTENT_TYPE, CloudEvent

SPEC_KEY: Final = "lampo_sends"
"""Attribute of a declared publisher holding its :class:`Sends` (read by the documentation tool)."""


@dataclass(frozen=True)
class Sends:
    """One topic a service writes to: the event types, what the record key is, the content type."""

    topic: str
    events: Mapping[str, Any]
    key: str
    content_type: str = CONTENT_TYPE


@cache
def envelope_model(event_type: str, data: Any) -> type[CloudEvent]:
    """The CloudEvents envelope of ``event_type`` with ``data`` (a pydantic model or dataclass) as
    its ``data``: a model named ``<Data>Event`` for the documents' payload schemas."""
    name = getattr(data, "__name__", "Data")
    return create_model(
        f"{name}Event",
        __base__=CloudEvent,
        __doc__=f"{event_type}: a CloudEvents 1.0 event whose data is {name}",
        type=(Literal[event_type], ...),
        data=(data, ...),
    )


def payload_type(events: Mapping[str, Any]) -> Any:
    """One envelope model, or their union told apart by ``type``."""
    models = [envelope_model(t, m) for t, m in sorted(events.items())]
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator="type")]  # noqa: UP007 - built at run time


def sends(
    runtime: Any,
    topic: str,
    events: Mapping[str, type[BaseModel] | Any] | None = None,
    *,
    key: str,
    content_type: str = CONTENT_TYPE,
) -> Sends:
    """Declare that this service sends ``events`` (CloudEvents type -> data model; default: every
    type of the public topic) on ``topic`` with record key ``key`` (what the key is, in words).
    ``runtime``: the service's ``lampo.service.Runtime``."""
    spec = Sends(topic, dict(EVENT_TYPES[topic] if events is None else events), key, content_type)
    publisher = runtime.broker.publisher(
        topic,
        title=f"{runtime.name}:{topic}:send",
        schema=payload_type(spec.events),
        include_in_schema=True,
    )
    setattr(publisher, SPEC_KEY, spec)
    return spec
