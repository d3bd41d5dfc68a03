"""Configuration: the one settings object Hookline reads from the environment."""

from config.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
