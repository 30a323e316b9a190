"""The catalog: external tables registered by the crawler (Glue Crawler + Data Catalog).

Example:
    >>> from dataflow.catalog import ExternalCatalog, crawl, infer_file
"""

from dataflow.catalog.crawler import (
    ColumnChange,
    CrawlResult,
    DeleteBehavior,
    RecrawlPolicy,
    UpdateBehavior,
    crawl,
    crawl_raw_zone,
)
from dataflow.catalog.external import ExternalCatalog, ExternalTable, Partition
from dataflow.catalog.infer import Column, InferredSchema, infer_file, merge_schemas, merge_types
from dataflow.catalog.partitions import discover

__all__ = [
    "Column",
    "ColumnChange",
    "CrawlResult",
    "DeleteBehavior",
    "ExternalCatalog",
    "ExternalTable",
    "InferredSchema",
    "Partition",
    "RecrawlPolicy",
    "UpdateBehavior",
    "crawl",
    "crawl_raw_zone",
    "discover",
    "infer_file",
    "merge_schemas",
    "merge_types",
]
