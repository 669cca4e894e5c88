"""Per-source settings (`--sources sources.yaml`): which format or profile reads which files, and
static tags (service, env, host, …) added to every call read from them.

One watcher can then read several differently shaped sources. First matching entry wins.

```yaml
version: 1
sources:
  - path: /var/log/essay-api/*.log        # a file, a directory, or a glob (`**` crosses directories)
    profile: profiles/essay-api.yaml       # relative to this file
    tags: {service: essay-api, env: prod}
  - path: /var/lib/docker/containers/**/*-json.log
    format: openai
    tags: {host: web-1}
```
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .errors import ConfigError
from .formats.coerce import merge_metadata
from .schema import Call


class SourceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, description="a file, a directory or a glob")
    format: str | None = Field(default=None, description="a format name (`tokentrail formats list`)")
    profile: str | None = Field(default=None, description="a mapping profile (YAML), relative to the sources file")
    tags: dict[str, str] = Field(default_factory=dict, description="added to every call's metadata")

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from .formats import all_formats

        names = [f.name for f in all_formats()]
        if v not in names:
            raise ValueError(f"unknown format {v!r}; known formats: {', '.join(names)} (or use `profile:`)")
        return v

    @model_validator(mode="after")
    def _one_reader(self) -> SourceEntry:
        if self.format is not None and self.profile is not None:
            raise ValueError("give `format` or `profile`, not both")
        return self

    def format_name(self) -> str | None:
        """What `--format` would say for these files: a format name, `profile:PATH`, or None (detect)."""
        return f"profile:{self.profile}" if self.profile is not None else self.format


class SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    sources: list[SourceEntry] = Field(min_length=1)

    def paths(self) -> list[str]:
        """The files, directories and globs to read (what `ingest`/`watch` get as PATH... otherwise)."""
        return [s.path for s in self.sources]

    def settings_for(self, path: str | Path) -> SourceEntry | None:
        """The first entry whose path, directory or glob covers `path`; None: no entry (detect, no tags)."""
        p = Path(path).absolute()
        for entry in self.sources:
            if _covers(entry.path, p):
                return entry
        return None


def _covers(pattern: str, path: Path) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(str(path), pattern) or path.match(pattern)
    target = Path(pattern)
    return path == target or target in path.parents


def load_sources(path: str | Path) -> SourcesFile:
    """Read a sources file; errors name file, line and field. Relative paths are made relative to the
    file's directory, and every profile named is loaded now, so a typo fails at start, not mid-run."""
    from .formats.profile import load_profile
    from .yamlerrors import load_yaml_model

    src = Path(path)
    model, _ = load_yaml_model(src, SourcesFile, "sources file",
                               "a sources file is a YAML mapping with `sources:` (a list of {path, format|profile, tags})")
    base = src.absolute().parent
    for i, entry in enumerate(model.sources):
        if not Path(entry.path).is_absolute():
            entry.path = str(base / entry.path)
        if entry.profile is not None:
            prof = Path(entry.profile)
            entry.profile = str(prof if prof.is_absolute() else base / prof)
            try:
                load_profile(entry.profile)
            except ConfigError as exc:
                raise ConfigError(f"{src}: sources[{i}].profile: {exc}") from None
    return model


def apply_tags(calls: Iterable[Call], tags: dict[str, str]) -> None:
    """Add a source's static tags to its calls' metadata (what the log itself says wins)."""
    if not tags:
        return
    for call in calls:
        merge_metadata(call, tags.items(), overwrite=False)


def format_change(remembered: str | None, now: str | None) -> str | None:
    """A file was first read as `remembered`; reading it as `now` would parse it differently: say so.

    None when nothing changes (or nothing was remembered). The caller keeps the remembered format
    unless the user forces another with --format or a sources entry.
    """
    if remembered is None or now is None or remembered == now:
        return None
    return (f"was read as {remembered!r} before, would now be read as {now!r}; keeping {remembered!r} "
            "(pass --format or a sources file entry to change it)")
