"""The file connector: contacts and deals from CSV, JSON Lines or Parquet exports of any CRM; the enrichment as CSV."""

from connectors.files.connector import FilesConnector
from connectors.files.output import output_column
from connectors.files.records import BadRow
from connectors.files.snapshot import ExportDiff

__all__ = ["BadRow", "ExportDiff", "FilesConnector", "output_column"]
