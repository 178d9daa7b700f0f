"""Knowledge libraries: a registry of git repositories, mirrored in the background
and read (listed, served, rendered) from their last synced commit."""

from balsam.domain.library.service import LibraryService
from balsam.domain.library.sync import LibrarySyncer, LibrarySyncWorker
from balsam.domain.library.tree import LibraryTree

__all__ = ["LibraryService", "LibrarySyncWorker", "LibrarySyncer", "LibraryTree"]
