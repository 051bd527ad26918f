"""Single source of the package version (read by hatch and at runtime)."""

__version__ = "0.1.0"
