"""Record predictions to a JSONL file, then replay them without inference.

Record a run once, on a real engine:

    from agentkit.tracing.replay.engines import RecordingEngine, ReplayEngine

    with agentkit.Client(engine=RecordingEngine(LlamaCppEngine(), "run.jsonl")) as client:
        client.llm.model().act(chat, [multiply], on_message=chat.append)

and replay it in evaluations and regression tests, with no model loaded:

    with agentkit.Client(engine=ReplayEngine("run.jsonl")) as client:
        result = client.llm.model().act(chat, [multiply], on_message=chat.append)

`ReplayModel("run.jsonl")` (`AsyncReplayModel` in async code) is a model handle on a replay
engine of its own, like `agentkit.testing.ScriptedModel`. Tools run for real during a replay;
only the model's predictions come from the file.

Recording: `RecordingEngine` delegates everything to the engine it wraps and appends one JSON
line per prediction to the file: the model key, the request (messages as OpenAI-style dicts,
tools, config, response format, prompt, round index) and the events the engine sent (tool calls
with name, arguments and id). A line is written and flushed when the prediction's
`PredictionDone` arrives, so a crash loses at most the predictions in flight; a prediction that
fails or is cancelled before then is not recorded. Results of `tokenize`, `embed`,
`get_context_length` and `get_info` are recorded too (each distinct call once). Concurrent
predictions, from tasks or threads (even of several engines recording to one file), each
write whole lines.

Matching: a request is served a recording with the same key, computed from the model key and
the request's messages, tools, config, response format and prompt (not its round index). Tool
call ids are random per run, so the key replaces them by their order of first appearance
(`call_0`, `call_1`...). Identical requests recorded several times are served in the order
they were recorded (the order their predictions completed); once all are served, another one
is a miss, unless `allow_repeats=True`, which serves the last one again. A miss raises
`ReplayMissError` (an `EngineError`) saying what was asked, how many predictions the file
holds, and which recording is closest and where it differs; `ReplayEngine.unserved` lists the
recorded predictions not used yet (a run that did less). Replayed tool calls keep their
recorded ids, so a replayed chat equals the recorded one. Tokenizations and embeddings (per
text) are looked up by model and text; one that was not recorded is a `ReplayMissError` too.

Files: a line that is not a valid record raises `RecordingFormatError` naming the file and
line. A final line without its newline, cut short by a crash, is skipped with a
`RuntimeWarning`; `RecordingEngine` removes it before appending to the file.

Layout: the JSONL record format is in `agentkit.tracing.replay.format`, request keys and
miss diagnostics in `agentkit.tracing.replay.keys`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.lowlevel

from agentkit.config import LoadConfig
from agentkit.engines.base import (
    BaseEngine,
    DownloadedModelInfo,
    Engine,
    ModelInfo,
    ModelInstanceInfo,
    ModelKind,
    PredictionDone,
    PredictionEvent,
    PredictionRequest,
    WrapperEngine,
)
from agentkit.errors import EngineError, ModelNotFoundError
from agentkit.handles import LLM, AsyncLLM
from agentkit.tracing.replay.format import (
    RecordingFormatError,
    as_floats,
    as_ints,
    drop_truncated_tail,
    event_from_dict,
    event_to_dict,
    get_field,
    read_lines,
    request_to_dict,
    stored_request,
)
from agentkit.tracing.replay.keys import (
    canonical,
    clip,
    describe_ask,
    difference,
    request_content,
    request_key,
    similarity,
)

__all__ = [
    "AsyncReplayModel",
    "RecordingEngine",
    "RecordingFormatError",
    "ReplayEngine",
    "ReplayMissError",
    "ReplayModel",
]

_WRITE_LOCK = threading.Lock()  # one for every recording: engines may share a file


class ReplayMissError(EngineError):
    """The replayed agent asked for something the recording does not hold."""


# -- recording ------------------------------------------------------------------------------


class RecordingEngine(WrapperEngine):
    """An engine that appends every completed prediction of `inner` to a JSONL file."""

    def __init__(self, inner: Engine, path: str | os.PathLike[str]) -> None:
        super().__init__(inner)
        self._path = Path(path)
        self._instances: dict[str, ModelInstanceInfo] = {}
        self._written_calls: set[str] = set()
        with _WRITE_LOCK:  # another recording in this process may be halfway through a line
            drop_truncated_tail(self._path)

    @property
    def inner(self) -> Engine:
        """The engine that runs the predictions."""
        return self.wrapped

    @property
    def path(self) -> Path:
        """The recording file."""
        return self._path

    async def get_or_load(
        self,
        model_key: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        """Delegated; the instance's model key is remembered for the records."""
        return self._track(await super().get_or_load(model_key, config, ttl, kind))

    async def load_new_instance(
        self,
        model_key: str,
        identifier: str | None,
        config: LoadConfig | None,
        ttl: float | None,
        kind: ModelKind = "llm",
    ) -> ModelInstanceInfo:
        """Delegated; the instance's model key is remembered for the records."""
        info = await super().load_new_instance(model_key, identifier, config, ttl, kind)
        return self._track(info)

    async def unload(self, identifier: str) -> None:
        """Delegated."""
        await super().unload(identifier)
        self._instances.pop(identifier, None)

    async def list_loaded(self) -> list[ModelInstanceInfo]:
        """Delegated."""
        return [self._track(info) for info in await super().list_loaded()]

    async def get_info(self, identifier: str) -> ModelInfo:
        """Delegated and recorded."""
        info = await super().get_info(identifier)
        await self._record_call("get_info", identifier, {}, dataclasses.asdict(info))
        return info

    async def get_context_length(self, identifier: str) -> int:
        """Delegated and recorded."""
        length = await super().get_context_length(identifier)
        await self._record_call("get_context_length", identifier, {}, length)
        return length

    async def tokenize(self, identifier: str, text: str) -> list[int]:
        """Delegated and recorded."""
        tokens = await super().tokenize(identifier, text)
        await self._record_call("tokenize", identifier, {"text": text}, tokens)
        return tokens

    async def embed(self, identifier: str, texts: Sequence[str]) -> list[list[float]]:
        """Delegated and recorded."""
        vectors = await super().embed(identifier, texts)
        await self._record_call("embed", identifier, {"texts": list(texts)}, vectors)
        return vectors

    async def predict(
        self, identifier: str, request: PredictionRequest
    ) -> AsyncGenerator[PredictionEvent, None]:
        """The inner engine's events, recorded when its `PredictionDone` arrives."""
        model_key = await self._model_key(identifier)
        events: list[dict[str, Any]] = []
        stream = self.wrapped.predict(identifier, request)
        try:
            async for event in stream:
                events.append(event_to_dict(event))
                if isinstance(event, PredictionDone):
                    record = {
                        "type": "prediction",
                        "model_key": model_key,
                        "request": request_to_dict(request),
                        "events": events,
                    }
                    self._append(record)
                yield event
        finally:
            await stream.aclose()

    def _track(self, info: ModelInstanceInfo) -> ModelInstanceInfo:
        self._instances[info.identifier] = info
        return info

    async def _model_key(self, identifier: str) -> str:
        if identifier not in self._instances:
            await self.list_loaded()  # an instance loaded before recording started
        info = self._instances.get(identifier)
        return identifier if info is None else info.model_key

    async def _record_call(
        self, method: str, identifier: str, args: dict[str, Any], result: object
    ) -> None:
        model_key = await self._model_key(identifier)
        seen = canonical([method, model_key, args])
        with _WRITE_LOCK:
            if seen in self._written_calls:
                return
            self._written_calls.add(seen)
        record = {"type": "call", "method": method, "model_key": model_key, "args": args}
        self._append({**record, "result": result})

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with _WRITE_LOCK, self._path.open("a", encoding="utf-8") as file:
            file.write(line)


# -- replay ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Recording:
    line: int
    key: str
    content: dict[str, Any]
    """What the key is computed from: model key and request, tool call ids normalised."""
    events: tuple[PredictionEvent, ...]


class ReplayEngine(BaseEngine):
    """An engine that serves the predictions of a recording file (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], *, allow_repeats: bool = False) -> None:
        super().__init__()
        self._path = Path(path)
        self._allow_repeats = allow_repeats
        self._lock = threading.Lock()
        self._recordings: list[_Recording] = []
        self._pending: dict[str, deque[_Recording]] = {}
        self._last_served: dict[str, _Recording] = {}
        self._tokens: dict[tuple[str, str], list[int]] = {}
        self._vectors: dict[tuple[str, str], list[float]] = {}
        self._context_lengths: dict[str, int] = {}
        self._infos: dict[str, ModelInfo] = {}
        self._models: dict[str, set[str]] = {}  # model key -> kinds of records
        for line, value in read_lines(self._path):
            try:
                self._add(line, value)
            except (ValueError, TypeError) as error:
                raise RecordingFormatError(self._path, line, str(error)) from error

    @property
    def path(self) -> Path:
        """The recording file."""
        return self._path

    @property
    def unserved(self) -> list[int]:
        """Line numbers of the recorded predictions not served yet (a run that did less)."""
        with self._lock:
            return sorted(r.line for queue in self._pending.values() for r in queue)

    @property
    def provider_name(self) -> str:
        """gen_ai.provider.name for replayed predictions."""
        return "agentkit.replay"

    async def list_downloaded(self) -> list[DownloadedModelInfo]:
        """The recorded models, as if they were files."""
        return [DownloadedModelInfo(key, f"replay://{key}", 0, "replay") for key in self._models]

    async def get_info(self, identifier: str) -> ModelInfo:
        """The recorded metadata, or a minimal one."""
        key = self._info(identifier).model_key
        return self._infos.get(key) or ModelInfo(key, "replay")

    async def get_context_length(self, identifier: str) -> int:
        """The recorded context length, else the load config's."""
        info = self._info(identifier)
        length = self._context_lengths.get(info.model_key, info.load_config.context_length)
        if length is None:
            raise ReplayMissError(
                f"{self._path} holds no context length of {info.model_key!r}; record a run "
                "that asks for it, or load the replayed model with a context_length"
            )
        return length

    async def tokenize(self, identifier: str, text: str) -> list[int]:
        """The recorded tokens of the text."""
        key = self._info(identifier).model_key
        tokens = self._tokens.get((key, text))
        if tokens is None:
            raise ReplayMissError(
                f"no tokenization of {clip(text)} by {key!r} is recorded in {self._path} "
                f"({sum(k == key for k, _ in self._tokens)} texts of that model are)"
            )
        return list(tokens)

    async def embed(self, identifier: str, texts: Sequence[str]) -> list[list[float]]:
        """The recorded vector of each text (recorded in any batch)."""
        key = self._info(identifier).model_key
        missing = [text for text in texts if (key, text) not in self._vectors]
        if missing:
            raise ReplayMissError(
                f"no embedding of {clip(missing[0])} by {key!r} is recorded in {self._path} "
                f"({len(missing)} of {len(texts)} texts missing; "
                f"{sum(k == key for k, _ in self._vectors)} texts of that model are recorded)"
            )
        return [list(self._vectors[(key, text)]) for text in texts]

    async def predict(
        self, identifier: str, request: PredictionRequest
    ) -> AsyncGenerator[PredictionEvent, None]:
        """The recorded events of the matching recording; `ReplayMissError` if there is none."""
        model_key = self._info(identifier).model_key
        await anyio.lowlevel.checkpoint()
        recording = self._take(model_key, request)
        for event in recording.events:
            yield event

    # -- matching -----------------------------------------------------------------------------

    def _take(self, model_key: str, request: PredictionRequest) -> _Recording:
        content = request_content(model_key, request_to_dict(request))
        key = request_key(content)
        with self._lock:
            queue = self._pending.get(key)
            if queue:
                self._last_served[key] = recording = queue.popleft()
                return recording
            last = self._last_served.get(key)
            if last is not None and self._allow_repeats:
                return last
        raise self._miss(content, key, request.round_index, exhausted=last is not None)

    def _miss(
        self, content: dict[str, Any], key: str, round_index: int, *, exhausted: bool
    ) -> ReplayMissError:
        asked = (
            f"the request (round {round_index}, model {content['model']!r}) that asks "
            f"{describe_ask(content)}"
        )
        if exhausted:
            lines = ", ".join(str(r.line) for r in self._recordings if r.key == key)
            return ReplayMissError(
                f"every recording of {asked} has been served: it was recorded "
                f"{lines.count(',') + 1} time(s) in {self._path} (line(s) {lines}); record the "
                "run more times, or pass allow_repeats=True to serve the last one again"
            )
        message = (
            f"no recording matches {asked}. {self._path} holds "
            f"{len(self._recordings)} recorded prediction(s)"
        )
        closest = max(self._recordings, key=lambda r: similarity(content, r.content), default=None)
        if closest is not None:
            message += f"; the closest (line {closest.line}) {difference(content, closest.content)}"
        return ReplayMissError(
            message + ". Record the run again if the change is intended (RecordingEngine)."
        )

    # -- instances ----------------------------------------------------------------------------

    def resolve_key(self, model_key: str | None, kind: ModelKind = "llm") -> str:
        """The recorded model a load names (None: the first recorded for this kind)."""
        if model_key is not None:
            if model_key not in self._models:
                recorded = ", ".join(map(repr, self._models)) or "none"
                raise ModelNotFoundError(
                    f"{self._path} holds no recordings of model {model_key!r} "
                    f"(recorded models: {recorded})"
                )
            return model_key
        wanted = "embed" if kind == "embedding" else "prediction"
        keys = [key for key, kinds in self._models.items() if wanted in kinds] or list(self._models)
        if not keys:
            raise ModelNotFoundError(
                f"{self._path} holds no recordings, so there is no model to replay; "
                "record a run with RecordingEngine first"
            )
        return keys[0]

    def _info(self, identifier: str) -> ModelInstanceInfo:
        return self.instances.get(identifier)

    # -- loading ------------------------------------------------------------------------------

    def _add(self, line: int, record: object) -> None:
        if not isinstance(record, dict):
            raise ValueError(f"a record must be a JSON object, got {clip(record)}")
        kind = record.get("type")
        if kind not in ("prediction", "call"):
            raise ValueError(f"unknown record type {kind!r}; expected 'prediction' or 'call'")
        model_key = get_field(record, "model_key", str)
        if kind == "prediction":
            content = request_content(model_key, stored_request(get_field(record, "request", dict)))
            events = tuple(map(event_from_dict, get_field(record, "events", list)))
            done = [i for i, event in enumerate(events) if isinstance(event, PredictionDone)]
            if done != [len(events) - 1]:
                raise ValueError("the events must end with one 'done' event, and only there")
            recording = _Recording(line, request_key(content), content, events)
            self._recordings.append(recording)
            self._pending.setdefault(recording.key, deque()).append(recording)
        else:
            method = get_field(record, "method", str)
            self._add_call(model_key, method, get_field(record, "args", dict), record.get("result"))
            kind = method
        self._models.setdefault(model_key, set()).add(kind)

    def _add_call(self, model_key: str, method: str, args: dict[str, Any], result: object) -> None:
        if method == "tokenize":
            self._tokens[(model_key, get_field(args, "text", str))] = as_ints(result)
        elif method == "embed":
            texts = get_field(args, "texts", list)
            if not isinstance(result, list) or len(result) != len(texts):
                raise ValueError("an embed result must be a list with one vector per text")
            for text, vector in zip(texts, result, strict=True):
                self._vectors[(model_key, str(text))] = as_floats(vector)
        elif method == "get_context_length":
            self._context_lengths[model_key] = as_ints([result])[0]
        elif method == "get_info":
            if not isinstance(result, dict):
                raise ValueError(f"a get_info result must be an object, got {clip(result)}")
            self._infos[model_key] = ModelInfo(**result)
        else:
            raise ValueError(f"unknown recorded method {method!r}")


# -- model handles --------------------------------------------------------------------------


def AsyncReplayModel(
    path: str | os.PathLike[str], *, model_key: str | None = None, allow_repeats: bool = False
) -> AsyncLLM:
    """An async model handle on a replay engine of its own (its `engine`, for `unserved`)."""
    return AsyncLLM.standalone(ReplayEngine(path, allow_repeats=allow_repeats), model_key)


def ReplayModel(
    path: str | os.PathLike[str], *, model_key: str | None = None, allow_repeats: bool = False
) -> LLM:
    """A blocking model handle on a replay engine of its own (its `engine`, for `unserved`)."""
    return LLM.standalone(ReplayEngine(path, allow_repeats=allow_repeats), model_key)
