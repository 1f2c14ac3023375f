"""Profiles: the TOML file, its model, and how every setting is resolved.

Nothing else in cmdai reads or writes the file. Settings resolve in one order:
command-line flag, then environment (`CMDAI_<FIELD>`), then the active profile, then
the default. Writes are atomic, locked against other cmdai processes, 0600 in a 0700
directory, and refuse to touch a file that does not parse.
"""

from __future__ import annotations

import difflib
import logging
import os
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w
from platformdirs import user_config_dir, user_state_dir
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from cmdai_cli import private_file, redact, settings_file, values
from cmdai_cli.errors import ConfigError, UsageError
from cmdai_cli.results import Done
from cmdai_cli.segment.messages import REGION_HOSTS
from cmdai_cli.values import PROFILE_NAME_RE, check_profile_name, must_be

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger("cmdai")
# Loose files already warned about in this process, as (path, mode).
_WARNED: set[tuple[Path, int]] = set()

FILE_NAME = "config.toml"
# A profile file holds a few settings per profile; a megabyte is thousands of profiles.
PROFILE_LIMIT = settings_file.MiB
DEFAULT_PROFILE = "default"
ENV_PREFIX = "CMDAI_"
PUBLIC_API_HOSTS = {"us": "https://api.segmentapis.com", "eu": "https://eu1.api.segmentapis.com"}

# The rules for values live in `values` (no pydantic there); modules that know them as
# `profile.check_url` and so on keep working.
is_loopback = values.is_loopback
check_url = values.check_url
check_write_key = values.check_write_key

_SECRET: dict[str, Any] = {"secret": True}
_NO_ENV: dict[str, Any] = {"env": False}


class Profile(BaseModel):
    """One `[profiles.<name>]` table. New settings are new fields here, nothing more.

    A field marked secret is masked wherever it is shown; every scalar field can also be
    given as the environment variable `CMDAI_<FIELD NAME IN CAPITALS>`.
    """

    model_config = ConfigDict(extra="forbid")

    write_key: str | None = Field(None, json_schema_extra=_SECRET)
    region: Literal["us", "eu"] | None = None
    segment_host: str | None = None
    # Segment's CDN, where a write key's source settings are (connect, doctor, send-test).
    cdn_host: str | None = None
    org_id: str | None = None
    # Segment Public API (destination configure --apply)
    source: str | None = None
    deploy_via_segment: bool | None = None
    public_api_token: str | None = Field(None, json_schema_extra=_SECRET)
    api_host: str | None = None
    # Segment Webhooks destination -> Command AI webhook
    webhook_url: str | None = None
    webhook_shared_secret: str | None = Field(None, json_schema_extra=_SECRET)
    webhook_trigger: str | None = None
    mapping: dict[str, Any] | None = Field(None, json_schema_extra=_NO_ENV)
    # Command AI bulk-identify API (replay --to bulk-identify)
    commandai_api_host: str | None = None
    commandai_api_token: str | None = Field(None, json_schema_extra=_SECRET)
    commandai_auth_header: str | None = None

    @field_validator("segment_host", "cdn_host", "api_host", "webhook_url", "commandai_api_host")
    @classmethod
    def _check_host(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            # A webhook URL is used exactly as given; the others are bases that paths join.
            return check_url(value, base=info.field_name != "webhook_url")
        except UsageError as exc:
            raise ValueError(str(exc)) from None


DEFAULTS: dict[str, Any] = {
    "cdn_host": "https://cdn.segment.com",
    "region": "us",
    "deploy_via_segment": False,
    "commandai_api_host": "https://api.command.ai",
    "commandai_auth_header": "Authorization",
}


def secret_fields() -> set[str]:
    return {
        name
        for name, info in Profile.model_fields.items()
        if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("secret")
    }


def env_var(field_name: str) -> str | None:
    info = Profile.model_fields[field_name]
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return None if extra.get("env") is False else ENV_PREFIX + field_name.upper()


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_profile: str | None = None
    profiles: dict[str, Profile] = Field(default_factory=dict)


# ---------------------------------------------------------------- validation helpers


def _validation_message(exc: ValidationError, prefix: str) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        if err["type"] == "extra_forbidden":
            problems.append(f"{loc}: unknown key")
        else:
            problems.append(f"{loc} {must_be(err)}")
    return "; ".join(problems)


# ---------------------------------------------------------------- the file


def config_dir() -> Path:
    env = os.environ.get("CMDAI_CONFIG_DIR")
    if env:
        return Path(env)
    return Path(user_config_dir("cmdai", appauthor=False))


def state_dir() -> Path:
    env = os.environ.get("CMDAI_STATE_DIR")
    if env:
        return Path(env)
    return Path(user_state_dir("cmdai", appauthor=False))


@dataclass
class Store:
    """The profile file at `path` (by default `config_dir()/config.toml`)."""

    path: Path = field(default_factory=lambda: config_dir() / FILE_NAME)

    def read_raw(self) -> dict[str, Any]:
        """The file's TOML as a dict, validated; {} when there is no file yet."""
        path = self.path
        try:
            data = settings_file.read(path, what="profile file", limit=PROFILE_LIMIT)
        except FileNotFoundError:
            return {}
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a directory, expected the profile file") from None
        except PermissionError:
            raise ConfigError(f"{path}: permission denied reading the profile file") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the profile file: {exc.strerror}") from None
        self._warn_if_loose(path)
        try:
            raw = settings_file.loads_toml(
                data.decode("utf-8"), fail=lambda reason: ConfigError(f"{path}: {reason}")
            )
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        self._validate(raw)
        return raw

    def load(self) -> ConfigFile:
        return self._validate(self.read_raw())

    def _validate(self, raw: dict[str, Any]) -> ConfigFile:
        try:
            parsed = ConfigFile.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"{self.path}: {_validation_message(exc, '')}") from None
        for name in parsed.profiles:
            if not PROFILE_NAME_RE.match(name):
                raise ConfigError(f"{self.path}: profiles.{name}: invalid profile name")
        return parsed

    def _warn_if_loose(self, path: Path) -> None:
        if os.name != "posix":
            return
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077 and (path, mode) not in _WARNED:
            # Once a run: a command may read the file more than once (doctor does).
            _WARNED.add((path, mode))
            log.warning(
                "%s has permissions %o; it holds secrets and will be tightened to 600 "
                "on the next write",
                path,
                mode,
            )

    def update(self, change: Callable[[dict[str, Any]], None]) -> ConfigFile:
        """Read, apply `change` to the raw dict, validate, write atomically; all under lock.

        Raises ConfigError when the file or its directory cannot be written.
        """
        try:
            with private_file.locked(self.path):
                raw = self.read_raw()
                change(raw)
                parsed = self._validate(raw)
                self._write(raw)
                return parsed
        except OSError as exc:
            where = exc.filename or self.path
            raise ConfigError(
                f"cannot write the profile file {self.path}: {where}: "
                f"{exc.strerror or exc} (check $CMDAI_CONFIG_DIR and its permissions)"
            ) from None

    def _write(self, raw: Mapping[str, Any]) -> None:
        private_file.replace(self.path, tomli_w.dumps(raw))


# ---------------------------------------------------------------- profile operations


def check_exists(name: str, config: ConfigFile, path: Path) -> None:
    """A ConfigError for a profile the user named that the file does not have.

    A typo in `-p` or $CMDAI_PROFILE would otherwise run on the defaults and the
    environment alone, as if the settings had been forgotten.
    """
    if name in config.profiles:
        return
    names = list(config.profiles)
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        hint = f"did you mean {close[0]!r}?"
    elif names:
        hint = "profiles in the file: " + ", ".join(names)
    else:
        hint = f"there are no profiles yet; `cmdai connect -p {name}` creates it"
    raise ConfigError(f"no profile named {name!r} in {path}", hint=hint)


def named_profile(flag: str | None) -> str | None:
    """The profile the user named for this run (--profile, else $CMDAI_PROFILE), if any."""
    return flag or os.environ.get("CMDAI_PROFILE") or None


def active_name(flag: str | None, config: ConfigFile | None = None) -> str:
    """--profile, else $CMDAI_PROFILE, else the file's default_profile, else `default`."""
    if flag:
        return check_profile_name(flag)
    env = os.environ.get("CMDAI_PROFILE")
    if env:
        return check_profile_name(env)
    if config is not None and config.default_profile:
        return config.default_profile
    return DEFAULT_PROFILE


def save_profile(store: Store, name: str, updates: Mapping[str, Any]) -> Profile:
    """Set `updates` in profile `name` (creating it); None removes a key."""
    check_profile_name(name)
    try:
        Profile.model_validate({k: v for k, v in updates.items() if v is not None})
    except ValidationError as exc:
        raise UsageError(_validation_message(exc, "")) from None

    def change(raw: dict[str, Any]) -> None:
        table = raw.setdefault("profiles", {}).setdefault(name, {})
        for key, value in updates.items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value

    return store.update(change).profiles[name]


def delete_profile(store: Store, name: str) -> None:
    check_profile_name(name)

    def change(raw: dict[str, Any]) -> None:
        profiles = raw.get("profiles", {})
        if name not in profiles:
            raise ConfigError(f"no profile named {name!r} in {store.path}")
        del profiles[name]
        if raw.get("default_profile") == name:
            del raw["default_profile"]

    store.update(change)


def use_profile(store: Store, name: str) -> None:
    check_profile_name(name)

    def change(raw: dict[str, Any]) -> None:
        if name not in raw.get("profiles", {}):
            raise ConfigError(f"no profile named {name!r} in {store.path}")
        raw["default_profile"] = name

    store.update(change)


# ---------------------------------------------------------------- the profile commands' results


@dataclass(frozen=True)
class Listing(Done):
    """`profile list`: the file's profiles, which is active and which is the default."""

    path: Path
    active: str
    default: str | None
    names: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        rows = [
            {"name": name, "active": name == self.active, "default": name == self.default}
            for name in self.names
        ]
        return {"path": str(self.path), "active": self.active, "profiles": rows}


@dataclass(frozen=True)
class Change(Done):
    """`profile use` and `profile delete`: what changed in which file."""

    action: Literal["default_profile", "deleted"]
    name: str
    path: Path

    def as_json(self) -> dict[str, Any]:
        return {self.action: self.name, "path": str(self.path)}


@dataclass(frozen=True)
class Location(Done):
    """`profile path`: where the profile file is, or would be."""

    path: Path

    def as_json(self) -> dict[str, Any]:
        return {"path": str(self.path)}


def locate() -> Location:
    return Location(Store().path)


def list_profiles(flag: str | None, store: Store | None = None) -> Listing:
    """The profiles in the file; a profile named by --profile or $CMDAI_PROFILE must exist."""
    store = store or Store()
    config = store.load()
    active = active_name(flag, config)
    if named_profile(flag) is not None:
        check_exists(active, config, store.path)
    return Listing(store.path, active, config.default_profile, tuple(config.profiles))


def choose_profile(name: str, store: Store | None = None) -> Change:
    store = store or Store()
    use_profile(store, name)
    return Change("default_profile", name, store.path)


def remove_profile(name: str, store: Store | None = None) -> Change:
    store = store or Store()
    delete_profile(store, name)
    return Change("deleted", name, store.path)


# ---------------------------------------------------------------- resolution


@dataclass
class Resolved(Done):
    """Every setting's value and where it came from: flag, env, profile or default."""

    profile: str
    path: Path
    exists: bool
    # Values hold secrets: kept out of repr (a request holding them may be printed).
    values: dict[str, Any] = field(repr=False)
    sources: dict[str, str]
    # What the profile's own table holds, under flags and the environment.
    stored: dict[str, Any] = field(default_factory=dict, repr=False)

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def require(self, name: str, hint: str | None = None, *, flag: str | None = None) -> Any:
        """The value of `name`, or a ConfigError naming the flag (if the command has one),
        the environment variable and the profile as the places to set it."""
        value = self.values.get(name)
        if value in (None, ""):
            var = env_var(name)
            places = [p for p in (flag, f"${var}" if var else None) if p]
            where = ", ".join(places) + (", or" if places else "")
            raise ConfigError(
                f"no {name.replace('_', ' ')} is set for profile {self.profile!r} "
                f"(give {where} store it in the profile)",
                hint=hint,
            )
        return value

    def masked(self) -> dict[str, Any]:
        secrets = secret_fields()
        return {k: redact.mask(v) if k in secrets else v for k, v in self.values.items()}

    # `profile show`'s result: the settings with their sources, secrets masked.
    def as_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "path": str(self.path),
            "exists": self.exists,
            "settings": self.masked(),
            "sources": self.sources,
        }


def resolve(
    profile_flag: str | None = None,
    flags: Mapping[str, Any] | None = None,
    *,
    store: Store | None = None,
    create: bool = False,
) -> Resolved:
    """Resolve every Profile field: flag, then environment, then profile, then default.

    A profile named by --profile or $CMDAI_PROFILE must exist, unless the command is
    about to create it (`create`: connect, destination configure).
    """
    store = store or Store()
    config = store.load()
    name = active_name(profile_flag, config)
    if not create and named_profile(profile_flag) is not None:
        check_exists(name, config, store.path)
    stored = config.profiles.get(name)
    if stored is None and name == config.default_profile and name != active_name(profile_flag):
        # Chosen by the file alone: a name with no table is a typo or a deleted profile.
        log.warning("%s: default_profile %r names no [profiles.%s] table", store.path, name, name)
    flags = flags or {}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for field_name in Profile.model_fields:
        var = env_var(field_name)
        if flags.get(field_name) is not None:
            values[field_name], sources[field_name] = flags[field_name], "flag"
        elif var and os.environ.get(var):
            values[field_name] = _from_env(field_name, var, os.environ[var])
            sources[field_name] = "env"
        elif stored is not None and getattr(stored, field_name) is not None:
            values[field_name], sources[field_name] = getattr(stored, field_name), "profile"
        elif field_name in DEFAULTS:
            values[field_name], sources[field_name] = DEFAULTS[field_name], "default"
        else:
            values[field_name], sources[field_name] = None, "unset"
    if values.get("segment_host") is None:
        values["segment_host"] = REGION_HOSTS[values["region"]]
        sources["segment_host"] = "region"
    if values.get("api_host") is None:
        values["api_host"] = PUBLIC_API_HOSTS[values["region"]]
        sources["api_host"] = "region"
    for secret in secret_fields():
        redact.register(values.get(secret))
    own = stored.model_dump(exclude_none=True) if stored is not None else {}
    return Resolved(name, store.path, stored is not None, values, sources, own)


def _from_env(field_name: str, var: str, raw: str) -> Any:
    try:
        parsed = Profile.model_validate({field_name: raw})
    except ValidationError as exc:
        raise ConfigError(f"${var} {must_be(exc.errors()[0])}") from None
    return getattr(parsed, field_name)
