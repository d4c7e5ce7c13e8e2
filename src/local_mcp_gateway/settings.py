"""The gateway's environment, read with pydantic-settings (prefix `MCP_GATEWAY_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["EnvSettings"]


class EnvSettings(BaseSettings):
    """Settings taken from the environment; host, port and log level override gateway.yaml."""

    model_config = SettingsConfigDict(env_prefix="MCP_GATEWAY_", extra="ignore", env_ignore_empty=True)

    config: Path | None = None
    """Path of gateway.yaml (else ./gateway.yaml)."""
    age_key: SecretStr | None = Field(default=None, repr=False)
    """An age identity, `AGE-SECRET-KEY-1...`."""
    age_key_file: Path | None = None
    """A file holding an age identity."""
    state_dir: Path | None = None
    """Folder for run-time state, overriding gateway.yaml's `state_dir` (read where the config is loaded)."""
    host: str | None = None
    port: int | None = None
    log_level: str | None = None
    watch: bool = True
    """Follow changes to the configuration files; false: reload only on SIGHUP (e.g. on network filesystems)."""

    def config_path(self, given: str | Path | None = None) -> Path:
        """The configuration file: the command line, else MCP_GATEWAY_CONFIG, else ./gateway.yaml."""
        if given:
            return Path(given)
        return self.config or Path("gateway.yaml")
