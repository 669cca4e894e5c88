"""The registry of log formats: which formats exist, in which order detection tries them, and
how a `--format` spec (a name, or `prefix:ARG` such as `profile:FILE`) becomes a Format.

Built-in formats register exactly as third-party ones do. Third-party formats are found through
the entry-point group `tokentrail.formats` (as llm and sqlite-utils load plugins): each entry point
names a `Format` subclass (instantiated with no arguments), a `Format` instance, or a function
taking the registry (`def register(registry): registry.register(MyFormat())`). Detection order is
the formats' `priority` (lower first; ties keep registration order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from ..errors import FormatError
from .base import Format

ENTRY_POINT_GROUP = "tokentrail.formats"
RunInputs = dict[str, object]  # format name -> what its `scan_run` found across the run's files


@dataclass(frozen=True, slots=True)
class SpecPrefix:
    """A family of formats built from an argument: `profile:FILE` -> the app format with that profile."""

    prefix: str
    build: Callable[[str], Format]
    description: str
    detection: str
    usage: str  # how an error message offers it: "profile:PATH for a mapping profile"


class FormatRegistry:
    """Formats by name and in detection order, plus `prefix:ARG` families; plugins load on first use."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self._formats: list[Format] = []
        self._prefixes: dict[str, SpecPrefix] = {}
        self._ordered: list[Format] | None = None
        self._plugins_pending = load_entry_points

    def register(self, fmt: Format, priority: int | None = None) -> None:
        """Add a format; `priority` overrides the format's own (lower is tried first when detecting)."""
        if any(f.name == fmt.name for f in self._formats):
            raise FormatError(f"format {fmt.name!r} is registered twice")
        if priority is not None:
            fmt.priority = priority
        self._formats.append(fmt)
        self._ordered = None

    def register_prefix(self, prefix: SpecPrefix) -> None:
        if prefix.prefix in self._prefixes:
            raise FormatError(f"format prefix {prefix.prefix!r}: is registered twice")
        self._prefixes[prefix.prefix] = prefix

    def formats(self) -> list[Format]:
        """Every registered format, in detection order."""
        self._load_plugins()
        if self._ordered is None:
            self._ordered = sorted(self._formats, key=lambda f: f.priority)  # stable: ties keep registration order
        return self._ordered

    def prefixes(self) -> list[SpecPrefix]:
        self._load_plugins()
        return list(self._prefixes.values())

    def get(self, spec: str) -> Format:
        """A format by name, or built from `prefix:ARG`."""
        for f in self.formats():
            if f.name == spec:
                return f
        prefix, sep, arg = spec.partition(":")
        if sep and prefix in self._prefixes:
            return self._prefixes[prefix].build(arg)
        names = ", ".join(f.name for f in self.formats())
        forms = "".join(f", or {p.usage}" for p in self._prefixes.values())
        raise FormatError(f"unknown format {spec!r}; known formats: {names}{forms}")

    def scan_run(self, paths: Sequence[Path]) -> RunInputs:
        """Ask every format what it needs from the run's files before any is read (batch inputs)."""
        found: RunInputs = {}
        for f in self.formats():
            inputs = f.scan_run(paths)
            if inputs is not None:
                found[f.name] = inputs
        return found

    def _load_plugins(self) -> None:
        if not self._plugins_pending:
            return
        self._plugins_pending = False
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            self._load_plugin(ep)

    def _load_plugin(self, ep: EntryPoint) -> None:
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure of a plugin is reported the same way
            raise FormatError(f"format plugin {ep.name!r} ({ep.value}) failed to load: {exc}") from exc
        if isinstance(obj, type) and issubclass(obj, Format):
            self.register(obj())
        elif isinstance(obj, Format):
            self.register(obj)
        elif callable(obj):
            obj(self)
        else:
            raise FormatError(f"format plugin {ep.name!r} ({ep.value}) is not a Format, a Format class "
                              "or a register(registry) function")


def _profile_format(path: str) -> Format:
    from .openai_app import OpenAIAppFormat
    from .profile import load_profile

    return OpenAIAppFormat(load_profile(path))


def register_builtins(registry: FormatRegistry) -> None:
    """The formats tokentrail ships, registered through the same calls a plugin uses."""
    from .kong import KongAIFormat
    from .litellm import LiteLLMFormat, LiteLLMSpendCsvFormat
    from .nginx import NginxJsonFormat
    from .openai_app import OpenAIAppFormat
    from .openai_batch import OpenAIBatchOutputFormat
    from .otel import OtelGenAIFormat
    from .sse import SseTranscriptFormat

    for fmt in (OtelGenAIFormat(), LiteLLMFormat(), KongAIFormat(), NginxJsonFormat(), OpenAIBatchOutputFormat(),
                SseTranscriptFormat(), LiteLLMSpendCsvFormat(), OpenAIAppFormat()):
        registry.register(fmt)
    registry.register_prefix(SpecPrefix("profile", _profile_format, "Custom app logs through a YAML mapping profile",
                                        "never auto-detected: --format profile:FILE",
                                        "profile:PATH for a mapping profile"))


REGISTRY = FormatRegistry()
register_builtins(REGISTRY)
