"""Mapping profiles: where an application's JSON log keeps the timestamp, key, user, bodies.

The built-in `openai` format is the default profile below plus shape discovery (any nested
object that looks like a request or response body). A user profile (YAML) names its own
dotted paths; paths it leaves out fall back to the defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Paths = list[str]


class LineFilter(BaseModel):
    """Only lines where `field` equals (or is one of) the value are API calls; others are skipped."""

    model_config = ConfigDict(extra="forbid")
    field: str
    equals: str | int | bool | None = None
    one_of: list[str | int | bool] | None = None


class ProfileFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timestamp: Paths = ["timestamp", "ts", "time", "@timestamp", "datetime", "logged_at", "asctime", "created_at"]
    timestamp_unit: Literal["s", "ms", "us", "ns"] | None = None
    api_key: Paths = ["api_key", "openai_api_key", "apiKey", "authorization"]
    key_alias: Paths = ["key_alias", "key_name"]
    user: Paths = ["end_user", "user_id", "user"]
    route: Paths = ["route", "path", "http.route", "http.path", "url.path", "request_path", "endpoint_path"]
    client_ip: Paths = ["client_ip", "remote_addr", "ip", "http.client_ip", "client.ip", "source_ip"]
    status_code: Paths = ["status_code", "http_status", "status", "http.status_code", "response_status"]
    latency_ms: Paths = ["latency_ms", "duration_ms", "elapsed_ms", "response_time_ms"]
    org_id: Paths = ["org_id", "organization"]
    project_id: Paths = ["project_id", "project"]
    request_id: Paths = ["request_id", "x_request_id"]
    url: Paths = ["url", "request_url", "endpoint"]
    request: Paths = ["request", "request_body", "req", "params"]
    response: Paths = ["response", "response_body", "resp", "result", "chunks", "stream"]
    headers: Paths = ["headers", "request_headers", "response_headers"]
    metadata: dict[str, str] = Field(
        default_factory=dict, description="metadata column name -> dotted path in the log line"
    )
    metadata_objects: Paths = ["metadata", "tags", "labels", "context"]


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "openai"
    description: str = ""
    when: LineFilter | None = None
    discover_bodies: bool = True  # also search nested objects for request/response shapes
    fields: ProfileFields = Field(default_factory=ProfileFields)


DEFAULT_PROFILE = Profile()


def load_profile(path: str | Path) -> Profile:
    """Read a YAML profile; unknown keys and wrong types are errors naming file, line and field."""
    from ..yamlerrors import load_yaml_model

    model, _ = load_yaml_model(path, Profile, "profile", "a profile is a YAML mapping with `fields:`")
    return model
