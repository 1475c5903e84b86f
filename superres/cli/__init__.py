"""Command-line interface (``superres ...``)."""
