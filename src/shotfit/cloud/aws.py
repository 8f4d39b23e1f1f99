"""boto3 for the launcher: clients for one region, S3 locations, and AWS errors as one line.

The only module that imports boto3 (an optional extra, ``shotfit[aws]``). boto3 honours
``AWS_ENDPOINT_URL`` and the usual credential chain (``AWS_PROFILE``, ``~/.aws``, instance roles), so
nothing here has its own endpoint or credential settings; the region is always passed explicitly,
because a training job, its bucket and its logs must all be in one region.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from shotfit import __version__
from shotfit.errors import ConfigError, ShotfitError

EXTRA = "shotfit cloud needs the aws extra: pip install 'shotfit[aws]'"
# S3 bucket names: 3-63 lowercase letters, digits, dots and hyphens, starting and ending alphanumeric
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ACCESS = ("AccessDenied", "AccessDeniedException", "403", "Forbidden", "UnauthorizedOperation",
           "InvalidAccessKeyId", "SignatureDoesNotMatch", "UnrecognizedClientException")
_MISSING = ("404", "NoSuchKey", "NotFound", "NoSuchBucket", "ResourceNotFoundException")
_THROTTLED = ("Throttling", "ThrottlingException", "TooManyRequestsException", "SlowDown",
              "RequestLimitExceeded", "ProvisionedThroughputExceededException")


class CloudError(ShotfitError):
    """AWS refused or could not be reached; the message names the job, bucket or file concerned."""


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix``; keys under it are ``prefix/...`` (no leading or trailing slash)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> S3Location:
        if not text.startswith("s3://"):
            raise ConfigError(f"s3 {text!r} must look like s3://bucket/prefix", parameter="s3")
        bucket, _, prefix = text[len("s3://"):].partition("/")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise ConfigError(f"s3 {text!r}: {bucket!r} is not a valid S3 bucket name (3-63 lowercase "
                              "letters, digits, '.' or '-')", parameter="s3")
        return cls(bucket, prefix.strip("/"))

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def uri(self, *parts: str, folder: bool = False) -> str:
        """``s3://bucket/prefix/parts``; ``folder`` adds the trailing slash SageMaker wants for prefixes."""
        return f"s3://{self.bucket}/{self.key(*parts)}" + ("/" if folder else "")

    def __str__(self) -> str:
        return self.uri()


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not uri.startswith("s3://"):
        raise CloudError(f"{uri!r} is not an s3:// address")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def boto3_module() -> Any:
    """boto3, or the one line that says how to install it."""
    try:
        import boto3
    except ImportError:
        raise ShotfitError(EXTRA) from None
    return boto3


class Clients:
    """The S3, SageMaker and CloudWatch Logs clients of one region, made when first used."""

    def __init__(self, region: str | None) -> None:
        boto3 = boto3_module()
        from botocore.config import Config as BotoConfig

        session = boto3.session.Session(region_name=region or None)
        if not session.region_name:
            raise ConfigError("no AWS region: give a region or set AWS_DEFAULT_REGION (the bucket, the jobs "
                              "and their logs must be in one region)", parameter="region")
        self.region: str = session.region_name
        self._session = session
        # standard retries back off on throttling; a launch of a handful of jobs never needs more
        self._config = BotoConfig(retries={"mode": "standard", "max_attempts": 8},
                                  user_agent_extra=f"shotfit/{__version__}")
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, region_name=self.region, config=self._config)
        return self._clients[service]

    @property
    def s3(self) -> Any:
        return self._client("s3")

    @property
    def sagemaker(self) -> Any:
        return self._client("sagemaker")

    @property
    def logs(self) -> Any:
        return self._client("logs")


def error_code(err: BaseException) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(err, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def describe_aws_error(err: BaseException, what: str) -> str | None:
    """One line for an AWS failure while doing ``what`` (``"creating job 'x'"``); None if not AWS's."""
    try:
        from boto3.exceptions import S3UploadFailedError
        from botocore import exceptions as bx
    except ImportError:
        return None
    if isinstance(err, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return (f"{what}: no AWS credentials found (run 'aws configure' or 'aws sso login', or set "
                "AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
    if isinstance(err, (bx.TokenRetrievalError, bx.SSOError, bx.UnauthorizedSSOTokenError)):
        return f"{what}: the AWS login has expired ({err}); log in again (aws sso login)"
    if isinstance(err, bx.NoRegionError):
        return f"{what}: no AWS region: give a region or set AWS_DEFAULT_REGION"
    if isinstance(err, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError,
                        bx.ConnectionClosedError)):
        return f"{what}: cannot reach AWS ({err})"
    if isinstance(err, S3UploadFailedError):
        return f"{what}: {err}"
    if isinstance(err, bx.ParamValidationError):
        return f"{what}: AWS would refuse the request: {' '.join(str(err).split())}"
    if not isinstance(err, bx.ClientError):
        return None
    code = error_code(err)
    message = str(err.response.get("Error", {}).get("Message") or "").strip()
    if code == "NoSuchBucket":
        return f"{what}: the S3 bucket does not exist"
    if code in _ACCESS:
        return f"{what}: access denied ({message or code}); see the IAM permissions in docs/cloud.md"
    if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
        return f"{what}: the AWS credentials have expired; log in again"
    if code in _THROTTLED:
        return f"{what}: AWS is throttling requests ({code}) even after retries; try again in a minute"
    if code == "ResourceLimitExceeded":
        return (f"{what}: a SageMaker quota is reached ({message}); ask for more in Service Quotas "
                "(spot and on-demand training have separate quotas per instance type)")
    return f"{what}: {code or type(err).__name__}: {message or err}"


def not_found(err: BaseException) -> bool:
    """True for AWS's "there is no such thing" (an S3 key or bucket, a log group or stream, a job)."""
    return error_code(err) in _MISSING


def cloud_error(err: BaseException, what: str) -> BaseException:
    """The :class:`CloudError` to raise for ``err`` (``err`` itself when it is not AWS's)."""
    line = describe_aws_error(err, what)
    return err if line is None else CloudError(line)


@contextlib.contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Turn an AWS failure into a :class:`CloudError` naming ``what`` was being done."""
    try:
        yield
    except ShotfitError:
        raise
    except Exception as err:
        raise cloud_error(err, what) from None
