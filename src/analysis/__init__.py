"""analysis: from workshop notes to themes and personas, offline and reproducible."""

__version__ = "0.1.0"
