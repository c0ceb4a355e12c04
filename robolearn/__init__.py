"""robolearn: a real-robot learning stack (DESIGN.md)."""

__version__ = "0.1.0"
