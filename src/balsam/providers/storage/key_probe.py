"""Ask an S3 server whether it knows an access key, in about a millisecond.

``create_key`` must return only once a new key works, and ``revoke_key`` only
once the server refuses it; SeaweedFS applies both a few milliseconds after
the IAM call. A boto3 client per question costs 10-20 ms to build (and builds
under a lock), so the probe signs one request itself (botocore's SigV4) and
sends it on one shared, thread-safe HTTP connection pool.

The question is a ``ListObjectsV2`` of at most 0 keys on the key's bucket:

* signed with the key's real secret, any answer but 403 means the server
  authenticated the key (404 ``NoSuchBucket`` included);
* signed with a wrong secret, ``InvalidAccessKeyId`` means the server does not
  know the key, ``SignatureDoesNotMatch`` that it still does.
"""

from __future__ import annotations

import re

import httpx
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from balsam.errors import ProviderError

UNKNOWN_KEY = "InvalidAccessKeyId"
_WRONG_SECRET = "balsam-probe-wrong-secret-not-a-secret"  # noqa: S105 - deliberately wrong
_ERROR_CODE = re.compile(rb"<Code>([A-Za-z]+)</Code>")


class KeyProbe:
    """Signed probes to the S3 server at ``endpoint_url`` (timeouts in seconds)."""

    def __init__(self, endpoint_url: str, region: str, *, timeout: float = 2.0) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.region = region
        self._http = httpx.Client(timeout=timeout, trust_env=False)

    def accepted(self, access_key: str, secret_key: str, bucket: str) -> bool:
        """Whether the server authenticates ``access_key`` with ``secret_key``."""
        status, _ = self._list(access_key, secret_key, bucket)
        return status != 403

    def known(self, access_key: str, bucket: str = "balsam-probe") -> bool:
        """Whether the server still knows ``access_key`` (whatever its secret)."""
        status, code = self._list(access_key, _WRONG_SECRET, bucket)
        return not (status == 403 and code == UNKNOWN_KEY)

    def serves(self, access_key: str, secret_key: str) -> bool:
        """Whether the server answers a request signed with the key (a bucket listing,
        or that the bucket is not there): S3 is up and the key known."""
        try:
            status, code = self._list(access_key, secret_key, "balsam-readiness-probe")
        except ProviderError:
            return False
        return status == 200 or (status == 404 and code == "NoSuchBucket")

    def close(self) -> None:
        self._http.close()

    def _list(self, access_key: str, secret_key: str, bucket: str) -> tuple[int, str]:
        url = f"{self.endpoint_url}/{bucket}?list-type=2&max-keys=0"
        request = AWSRequest(method="GET", url=url)
        S3SigV4Auth(Credentials(access_key, secret_key), "s3", self.region).add_auth(request)
        try:
            reply = self._http.get(url, headers=dict(request.headers.items()))
        except httpx.HTTPError as exc:
            raise ProviderError(
                f"Object storage failed to check a key ({type(exc).__name__}).",
                details={"operation": "check key", "code": type(exc).__name__},
            ) from exc
        match = _ERROR_CODE.search(reply.content[:4096])
        return reply.status_code, match.group(1).decode() if match else ""
