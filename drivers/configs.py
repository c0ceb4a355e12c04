"""Registers every driver's config dataclass by name without importing any hardware SDK."""
