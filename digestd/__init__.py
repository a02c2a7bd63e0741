"""digestd: an email digest daemon for research papers."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/digestd/digestd"
