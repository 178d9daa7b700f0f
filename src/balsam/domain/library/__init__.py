"""Knowledge libraries: a registry of git repositories, mirrored in the background
and read (listed, served, rendered) from their last synced commit."""

from balsam.domain.library.service import LibraryService
from balsam.domain.library.sync import LibrarySyncer
from balsam.domain.library.tree import LibraryTree
from balsam.domain.library.worker import LibrarySyncWorker

__all__ = ["LibraryService", "LibrarySyncWorker", "LibrarySyncer", "LibraryTree"]
