"""Where produced media live: one interface (`Storage`) over a folder on disk or an S3-compatible
bucket, the setting that picks one (`*_MEDIA_STORE`), and serving a stored file with Range.

chattr's joined replies and the services' outputs all go through it, so any replica can answer
for a file another replica made when the store is a bucket.
"""

from chatacter_common.storage.base import (
    ObjectMissing,
    S3Location,
    Storage,
    StorageError,
    StoredObject,
    StoreUnavailable,
)
from chatacter_common.storage.disk import DiskStorage
from chatacter_common.storage.location import (
    MediaStoreLocation,
    MediaStoreSettings,
    open_storage,
    parse_location,
)
from chatacter_common.storage.s3 import S3Environment, S3Storage
from chatacter_common.storage.serving import parse_range, serve_stored

__all__ = [
    "DiskStorage",
    "MediaStoreLocation",
    "MediaStoreSettings",
    "ObjectMissing",
    "S3Environment",
    "S3Location",
    "S3Storage",
    "Storage",
    "StorageError",
    "StoreUnavailable",
    "StoredObject",
    "open_storage",
    "parse_location",
    "parse_range",
    "serve_stored",
]
