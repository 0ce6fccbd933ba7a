"""Dex-Free CDS: CDS Hooks service for trial NCT06561854 (dexamethasone-free arm B)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dex-free-cds")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
