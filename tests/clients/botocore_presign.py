"""Presigns ElastiCache/MemoryDB IAM tokens with botocore, AWS's own Python signer, for
tests/aws_token_botocore.rs to compare redauth's with. Reads a JSON list of cases on stdin
(access_key, secret_key, session_token or null, cache, user, region, service, serverless,
unix_time) and prints one token per line: the presigned URL without its http:// scheme."""

import datetime
import json
import sys
from unittest import mock

import botocore.auth
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def presign(case):
    params = {"Action": "connect", "User": case["user"]}
    if case["serverless"]:
        params["ResourceType"] = "ServerlessCache"
    request = AWSRequest(method="GET", url=f"http://{case['cache'].lower()}/", params=params)
    credentials = Credentials(case["access_key"], case["secret_key"], case["session_token"])
    signer = SigV4QueryAuth(credentials, case["service"], case["region"], expires=900)
    at = datetime.datetime.fromtimestamp(case["unix_time"], tz=datetime.timezone.utc)
    with mock.patch.object(botocore.auth, "get_current_datetime", lambda: at):
        signer.add_auth(request)
    url = request.prepare().url
    assert url.startswith("http://"), url
    return url[len("http://"):]


for case in json.load(sys.stdin):
    print(presign(case))
