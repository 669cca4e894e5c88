"""Storage: the warehouse's Delta Lake tables, the only code that writes them.

`Store(location)` opens a warehouse (a directory or s3:// gs:// az:// URI); `commit_chunks`
commits parsed chunks exactly once; `commit_usage` adds attributed rows; `resolve` finds a
file's source id and verified resume offset.
"""

from ..errors import ConflictError, WarehouseNotFound
from .location import Location, default_location
from .progress import Resolved, SourceIndex
from .rows import ChunkRows, CommitResult, with_date
from .warehouse import Store

__all__ = ["ChunkRows", "CommitResult", "ConflictError", "Location", "Resolved", "SourceIndex", "Store",
           "WarehouseNotFound", "default_location", "with_date"]
