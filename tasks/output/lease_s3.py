"""The run lease as an S3 object, with S3's conditional writes (supported since 2024-08/11).

`If-None-Match: *` on put creates the object only if there is none; `If-Match: <etag>` on
put replaces it only if nobody else did since it was read. Both fail with 412
(PreconditionFailed), or 409 (ConditionalRequestConflict) when two writes race: either way
the caller lost that round. moto's server (5.2) implements both headers, which the tests use.
An object that is not a valid record (garbage, another format) is aged by its LastModified
(tasks/output/lease_record.py); at most 64 KiB of it is read.
"""

from __future__ import annotations

from typing import Any

from tasks.media.s3 import as_os_error, boto_errors
from tasks.output.lease_record import MAX_LEASE_BYTES, LeaseRead, LeaseRecord

_LOST_RACE = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409", "404"}


class S3LeaseObject:
    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self._client, self._bucket, self._key = client, bucket, key
        self.where = f"s3://{bucket}/{key}"

    def read(self) -> LeaseRead | None:
        try:
            got = self._client.get_object(Bucket=self._bucket, Key=self._key)
            with got["Body"] as body:
                data = body.read(MAX_LEASE_BYTES + 1)
            return LeaseRead(LeaseRecord.from_bytes(data), str(got["ETag"]), got["LastModified"].timestamp())
        except boto_errors() as error:
            if _code(error) in ("NoSuchKey", "404"):
                return None
            raise as_os_error(error, f"reading the lease {self.where}") from error

    def create(self, record: LeaseRecord) -> str | None:
        return self._put(record, IfNoneMatch="*")

    def swap(self, record: LeaseRecord, expected: str) -> str | None:
        return self._put(record, IfMatch=expected)

    def remove(self, expected: str) -> None:
        current = self.read()
        if current is not None and current.version == expected:
            try:
                self._client.delete_object(Bucket=self._bucket, Key=self._key)
            except boto_errors() as error:
                raise as_os_error(error, f"releasing the lease {self.where}") from error

    def _put(self, record: LeaseRecord, **condition: str) -> str | None:
        try:
            put = self._client.put_object(Bucket=self._bucket, Key=self._key, Body=record.to_bytes(),
                                          ContentType="application/json", **condition)
        except boto_errors() as error:
            if _code(error) in _LOST_RACE:
                return None
            raise as_os_error(error, f"writing the lease {self.where}") from error
        return str(put["ETag"])


def _code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))
