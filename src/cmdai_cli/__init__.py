"""cmdai: set up and exercise the Command AI <-> Segment integration."""

__version__ = "0.1.0"
