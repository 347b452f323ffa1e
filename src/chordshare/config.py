"""A node's settings, from a YAML file, the environment and the command line.

Flags win over `CHORDSHARE_*` environment variables, which win over the file given with
`--config` (see `deploy/node.example.yaml`). A bad value is one message naming its field.
The addresses are checked against the mistake that killed the seed project's ring: a node
must advertise an address the other nodes can reach, so a wildcard (0.0.0.0, ::) is never
advertised, and a loopback address is not advertised to a ring on other hosts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from chordshare.chord.membership import DEFAULT_CAP
from chordshare.chord.state import DEFAULT_SUCCESSORS
from chordshare.files.links import LINK_GRACE
from chordshare.files.placement import DEFAULT_REPLICAS
from chordshare.files.publisher import parse_key_text
from chordshare.files.unfinished import DEFAULT_TTL as DEFAULT_UNFINISHED_TTL
from chordshare.ids import DEFAULT_BITS
from chordshare.sharing.download_cache import DEFAULT_CACHE_BYTES
from chordshare.sharing.scrub import DEFAULT_RATE as DEFAULT_SCRUB_RATE
from chordshare.sizes import parse_duration, parse_rate, parse_size
from chordshare.transport.address import is_loopback, is_wildcard, normalize_address, parse_address


class ConfigError(Exception):
    """Settings that cannot be used; the message names the field and says why."""


API_PORT_OFFSET = 1000  # the API beside its node's peer port, so nodes can share a host


def default_api(bind: str) -> str:
    """Where a node's API listens unless told: on loopback, at its peer port + 1000 (7000 ->
    8000, as in compose.yaml), or any free port when the peer port is 0 or too high."""
    port = parse_address(bind, any_port=True)[1]
    api_port = port + API_PORT_OFFSET if 0 < port <= 65535 - API_PORT_OFFSET else 0
    return f"127.0.0.1:{api_port}"


class NodeConfig(BaseSettings):
    """Everything `chordshare node` can be told."""

    model_config = SettingsConfigDict(env_prefix="CHORDSHARE_", extra="forbid")

    bind: str = Field(description="HOST:PORT to listen on (port 0: any free port).")
    advertise: str | None = Field(None, description="HOST:PORT other nodes reach this one at.")
    join: str | None = Field(None, description="HOST:PORT of any node on the ring to join.")
    id: int | None = Field(None, description="A fixed ring id (default: SHA-1 of advertise).")
    bits: int = Field(DEFAULT_BITS, description="Width m of ring ids, 3..160.")
    successors: int = Field(DEFAULT_SUCCESSORS, description="Successor list length r.")
    hint_cap: int = Field(
        DEFAULT_CAP,
        ge=0,
        description="Largest ring whose whole membership each node keeps as one-hop lookup "
        "hints; 0: off.",
    )
    replicas: int = Field(DEFAULT_REPLICAS, description="Copies k of every file.")
    data_dir: Path | None = Field(None, description="Where the node keeps its files.")
    max_store: int | None = Field(None, ge=0, description="Most bytes stored (e.g. 10GiB).")
    share: Path | None = Field(
        None, description="A directory shared in place, subfolders included."
    )
    share_replicate: bool = Field(
        False,
        description="Also put the shared directory's files into the ring (k copies, put "
        "again when they change), so they outlive this node; off: they are served only "
        "from here.",
    )
    scrub_rate: int = Field(
        DEFAULT_SCRUB_RATE,
        ge=0,
        description="Bytes per second at which stored chunks are read again and checked "
        "(e.g. 4M); 0: never.",
    )
    unfinished_put_ttl: float = Field(
        DEFAULT_UNFINISHED_TTL,
        ge=0,
        description="How long the chunks of a put cut off before its end are kept, counted "
        "in max_store, for its rerun to send only the rest (e.g. 90s, 30m, 1h); 0: not kept.",
    )
    link_grace: float = Field(
        LINK_GRACE,
        ge=0,
        description="How long a version a replace or removal took its name from is kept, "
        "counted in max_store, so that links to it keep working (e.g. 24h); 0: not kept.",
    )
    max_upload_rate: int = Field(
        0,
        description="Most bytes per second the node sends for users' transfers (e.g. 4M); "
        "0: no limit.",
    )
    max_download_rate: int = Field(
        0,
        description="Most bytes per second the node receives for users' transfers (e.g. "
        "4M); 0: no limit.",
    )
    max_repair_rate: int = Field(
        0,
        description="Most bytes per second of repair and scrubbing, in and out together, "
        "apart from users' transfers (e.g. 2M); 0: no limit.",
    )
    api: str = Field(
        "",
        description="HOST:PORT of the REST API, or 'off' (default: loopback, at the peer "
        "port + 1000: 7000 -> 127.0.0.1:8000).",
    )
    api_cache: int = Field(
        DEFAULT_CACHE_BYTES,
        ge=0,
        description="Most bytes of whole files the REST API keeps for downloads (e.g. 1GiB), "
        "served to other getters too, least recently used evicted first; 0: none.",
    )
    cluster_token: str | None = Field(None, description="The network's shared secret.")
    cluster_token_file: Path | None = Field(None, description="A file holding the token.")
    tls_cert: Path | None = Field(None, description="This node's certificate (PEM).")
    tls_key: Path | None = Field(None, description="This node's private key (PEM).")
    tls_ca: Path | None = Field(None, description="The network's CA certificate (PEM).")
    api_token: str | None = Field(None, description="Token the REST API asks writers for.")
    api_token_file: Path | None = Field(None, description="A file holding the API token.")
    api_protect_reads: bool = Field(False, description="Reading endpoints need the token too.")
    api_open: bool = Field(
        False, description="No API token at all: anyone who reaches the API may change the node."
    )
    api_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="More names the API answers to (a DNS name, a proxy in front of it).",
    )
    api_cors_origin: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (scheme://host:port) of other pages that may call the API.",
    )
    admin_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Public keys (ed25519:..., from `chordshare id show`) that may replace or "
        "remove any file, besides its publisher's.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (passed as init values), then the environment, then the YAML file.
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))

    @field_validator("bits")
    @classmethod
    def _bits(cls, value: int) -> int:
        if not 3 <= value <= 160:
            raise ValueError(f"bits must be between 3 and 160, got {value}")
        return value

    @field_validator("successors", "replicas")
    @classmethod
    def _at_least_one(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise ValueError(f"{info.field_name} must be at least 1, got {value}")
        return value

    @field_validator("bind")
    @classmethod
    def _bind(cls, value: str) -> str:
        parse_address(value, any_port=True)
        return value

    @field_validator("advertise", "join")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value in (None, "") else normalize_address(value)

    @field_validator("api")
    @classmethod
    def _api(cls, value: str) -> str:
        if value not in ("off", ""):
            parse_address(value, any_port=True)
        return value

    @field_validator("admin_keys", mode="after")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_key_text(text)
        return value

    @field_validator("api_allowed_hosts", "api_cors_origin", "admin_keys", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        # One comma-separated string (a flag or a variable) or a YAML list.
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple):
            return [v.strip() for item in value for v in str(item).split(",") if v.strip()]
        return value

    @field_validator("max_store", "scrub_rate", "api_cache", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return None if value in (None, "") else parse_size(value)

    @field_validator("unfinished_put_ttl", "link_grace", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return value if value in (None, "") else parse_duration(value)

    @field_validator("max_upload_rate", "max_download_rate", "max_repair_rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        return 0 if value in (None, "") else parse_rate(value)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _default_api(self) -> NodeConfig:
        if self.api == "":
            self.api = default_api(self.bind)
        return self

    @model_validator(mode="after")
    def _reachable(self) -> NodeConfig:
        if self.advertise is not None and is_wildcard(self.advertise):
            raise ValueError(
                f"advertise {self.advertise} is a wildcard address: it means 'this host' on "
                "every host, so other nodes cannot reach this one there (and every node "
                "would take the same id); advertise the address they reach this node at"
            )
        if self.advertise is None and is_wildcard(self.bind):
            raise ValueError(
                f"bind {self.bind} listens on every interface and no advertise is given; "
                "give --advertise HOST:PORT (advertise in a config file), the address other "
                "nodes reach this node at"
            )
        advertised = self.advertise or self.bind
        if self.join is not None and is_loopback(advertised) and not is_loopback(self.join):
            raise ValueError(
                f"advertise {advertised} is a loopback address, but join {self.join} is on "
                "another host, which could not reach this node back; advertise an address "
                "of this host that the others reach"
            )
        if self.api_open and (self.api_token or self.api_token_file or self.api_protect_reads):
            raise ValueError(
                "api_open turns the API token off: give it or a token (api_token_file, "
                "api_protect_reads), not both"
            )
        if self.share_replicate and self.share is None:
            raise ValueError("share_replicate puts the shared directory's files: give share")
        if self.id is not None and not 0 <= self.id < 2**self.bits:
            raise ValueError(f"id {self.id} is outside 0..{2**self.bits - 1} ({self.bits} bits)")
        return self


def _describe(err: ValidationError) -> str:
    problems = []
    for problem in err.errors():
        field = ".".join(str(p) for p in problem.get("loc", ()))
        message = str(problem.get("msg", "invalid")).removeprefix("Value error, ")
        if problem.get("type") == "missing":
            message = "required (give it as a flag, CHORDSHARE_ variable or in --config)"
        elif problem.get("type") == "extra_forbidden":
            message = "is not a setting"
        problems.append(f"{field}: {message}" if field else message)
    return "; ".join(problems)


def load_config(file: Path | None, flags: dict[str, Any]) -> NodeConfig:
    """Settings from flags (those not None), CHORDSHARE_* variables and `file`."""
    given = {k: v for k, v in flags.items() if v is not None}
    if file is not None:
        try:
            content = yaml.safe_load(file.read_text())
        except OSError as err:
            raise ConfigError(f"--config {file}: {err.strerror or err}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"--config {file}: not valid YAML: {err}".splitlines()[0]) from None
        if content is not None and not isinstance(content, dict):
            raise ConfigError(f"--config {file}: expected settings as 'key: value' lines")
    settings_cls: type[NodeConfig] = type(
        "NodeConfigFromFile",
        (NodeConfig,),
        {"model_config": {**NodeConfig.model_config, "yaml_file": file}},
    )
    try:
        return settings_cls(**given)
    except ValidationError as err:
        where = f" (in {file})" if file is not None else ""
        raise ConfigError(f"bad settings{where}: {_describe(err)}") from None
