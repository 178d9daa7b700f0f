"""Full-text search over the knowledge libraries (see :mod:`.service`)."""

from balsam.domain.search.service import IndexStats, SearchService, parse_query
from balsam.domain.search.trees import BatchReader, BlobIds, TreeReader

__all__ = ["BatchReader", "BlobIds", "IndexStats", "SearchService", "TreeReader", "parse_query"]
