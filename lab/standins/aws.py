#!/usr/bin/python3
"""Lab stand-ins for the AWS endpoints a node calls at boot, answering at their real addresses
inside a lab network namespace (never outside one):

- imds: instance metadata (IMDSv2 only) on 169.254.169.254:80, outside the nodes' namespaces (a
  node must stay free to bind :80 itself, as on EC2): it answers each node by its source address
  with its session token, region, instance id, identity document and role credentials (an access
  key id that names the node);
- ssm: SSM Parameter Store over HTTPS (JSON 1.1 protocol), one for the whole lab:
  GetParameter(s), GetParametersByPath and PutParameter, each allowed only under the paths of the
  role whose access key signed the request, as the nodes' IAM policies allow;
- s3: S3 over HTTPS, virtual-hosted (bucket.s3.REGION.amazonaws.com) or path style: GetObject and
  HeadObject (with the object's x-amz-meta-*), PutObject and multipart uploads (the backups),
  ListObjectsV2, each allowed only as the signing role's s3:GetObject, s3:PutObject and s3:ListBucket
  (with its s3:prefix condition) statements allow; what the nodes put is kept while it runs;
- cloudwatch: CloudWatch's metrics over HTTPS (query protocol) at monitoring.REGION.amazonaws.com:
  PutMetricData, allowed only in the namespaces of the signing role's cloudwatch:namespace condition;
  each push is logged with its metrics and values (what the nodes report is no secret).

Usage: aws.py imds|ssm|s3|cloudwatch STATE.json    where STATE.json holds
  imds: {"region", "instances": {node address: {"instanceId", "role", "accessKeyId"}}}
  ssm:  {"listen": address, "cert", "key" (the endpoint's TLS pair),
         "principals": {accessKeyId: [allowed names, and prefixes ending in "/"]}, "parameters": {name: {"Type", "Value"}}}
  s3:   {"listen", "cert", "key", "suffix": "s3.REGION.amazonaws.com",
         "principals": {accessKeyId: {"get"|"put"|"list": ["bucket/key", or "bucket/prefix*"]}},
         "objects": {"bucket/key": content, or {"file": PATH} for bytes}}
  cloudwatch: {"listen", "cert", "key", "principals": {accessKeyId: [namespaces]}}
A later version of STATE.json (written by `lab apply`: new plan, new bundles) is read on the next
request: published parameters and objects are added or replaced, what the nodes wrote is kept.
Every request is logged to stdout, so tests can prove who answered: names only, never values, but for
CloudWatch's metrics (what the nodes report is no secret).
"""
import gzip
import hashlib
import os
import http.server
import json
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
import xml.sax.saxutils

MODE = sys.argv[1]
STATE_FILE = sys.argv[2]
STATE = json.load(open(STATE_FILE))
STATE_MTIME = os.stat(STATE_FILE).st_mtime_ns
TOKENS = {}  # token -> the address it was issued to: a token is good only for its own instance
LOCK = threading.Lock()
STARTED = time.time()


def log(*parts):
    print(" ".join(str(p) for p in parts), flush=True)


class Metadata(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body="", content_type="text/plain"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self):
        if self.path != "/latest/api/token" or not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(400)
        if self.client_address[0] not in STATE["instances"]:
            return self.reply(403)
        token = uuid.uuid4().hex
        with LOCK:
            TOKENS[token] = self.client_address[0]
        log("imds", self.client_address[0], "PUT", self.path)
        self.reply(200, token)

    def do_GET(self):
        # IMDSv2 only, as the instances require (httpTokens: required).
        caller = self.client_address[0]
        if TOKENS.get(self.headers.get("X-aws-ec2-metadata-token")) != caller:
            log("imds", caller, "GET-without-token", self.path)
            return self.reply(401)
        log("imds", caller, "GET", self.path)
        instance = STATE["instances"][caller]
        role = instance["role"]
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        answers = {
            "/latest/meta-data/placement/region": STATE["region"],
            "/latest/meta-data/instance-id": instance["instanceId"],
            "/latest/meta-data/iam/security-credentials/": role,
            f"/latest/meta-data/iam/security-credentials/{role}": json.dumps({
                "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": instance["accessKeyId"],
                "SecretAccessKey": "lab-stand-in-secret", "Token": "lab-stand-in-token",
                "Expiration": expires, "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }),
            "/latest/dynamic/instance-identity/document": json.dumps({
                "region": STATE["region"], "instanceId": instance["instanceId"], "accountId": "123456789012",
            }),
        }
        if self.path in answers:
            return self.reply(200, answers[self.path])
        self.reply(404)

    def log_message(self, *args):
        pass


def refresh():
    """Takes in a newer STATE.json: published parameters and objects, and principals."""
    global STATE_MTIME
    with LOCK:
        mtime = os.stat(STATE_FILE).st_mtime_ns
        if mtime == STATE_MTIME:
            return
        STATE_MTIME = mtime
        newer = json.load(open(STATE_FILE))
        STATE["principals"] = newer["principals"]
        for section in ("parameters", "objects"):
            if section in newer:
                STATE[section].update(newer[section])
        log(MODE, "state reloaded")


def signer(authorization):
    """The access key id of a SigV4 Authorization header: Credential=AKID/date/region/service/..."""
    if not authorization.startswith("AWS4-HMAC-SHA256 Credential="):
        return None
    return authorization.split("Credential=", 1)[1].split("/", 1)[0]


class Ssm(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, kind, message, code=400):
        self.reply(code, {"__type": kind, "message": message})

    def parameter(self, name):
        p = STATE["parameters"][name]
        return {"Name": name, "Type": p["Type"], "Value": p["Value"], "Version": 1, "DataType": "text"}

    def do_POST(self):
        refresh()
        target = self.headers.get("X-Amz-Target", "")
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        operation = target.split(".")[-1]
        names = body.get("Names") or ([body["Name"]] if "Name" in body else [body.get("Path", "")])
        log("ssm", operation, *names)
        paths = STATE["principals"].get(signer(self.headers.get("Authorization", "")))
        if paths is None:
            return self.error("UnrecognizedClientException", "not signed with a node's role credentials")
        # As the role's policy: "parameter/X/*" allows everything under X/, "parameter/X" only X.
        denied = [n for n in names if not any(n == p or (p.endswith("/") and n.startswith(p)) for p in paths)]
        if denied:
            return self.error("AccessDeniedException", f"not authorized to access {', '.join(denied)}")
        if operation == "GetParameter":
            if body["Name"] not in STATE["parameters"]:
                return self.error("ParameterNotFound", body["Name"])
            return self.reply(200, {"Parameter": self.parameter(body["Name"])})
        if operation == "GetParameters":
            found = [n for n in names if n in STATE["parameters"]]
            result = {"Parameters": [self.parameter(n) for n in found]}
            missing = [n for n in names if n not in STATE["parameters"]]
            if missing:
                result["InvalidParameters"] = missing
            return self.reply(200, result)
        if operation == "GetParametersByPath":
            prefix = body["Path"].rstrip("/") + "/"
            return self.reply(200, {"Parameters": [self.parameter(n) for n in STATE["parameters"] if n.startswith(prefix)]})
        if operation == "PutParameter":
            with LOCK:
                STATE["parameters"][body["Name"]] = {"Type": body.get("Type", "String"), "Value": body["Value"]}
            return self.reply(200, {"Version": 2, "Tier": "Standard"})
        self.error("InvalidAction", operation)

    def log_message(self, *args):
        pass


PUT_OBJECTS = {}  # "bucket/key" -> (bytes, metadata, time): what the nodes put, kept while the stand-in runs
UPLOADS = {}  # upload id -> {part number: bytes}


def decoded_body(handler):
    """The request's payload: Content-Length or chunked transfer, then S3's aws-chunked framing
    (botocore's streaming checksums) taken off."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        raw = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b""):
                    pass
                break
            raw += handler.rfile.read(size)
            handler.rfile.readline()
    else:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    if "aws-chunked" not in handler.headers.get("Content-Encoding", "") and not handler.headers.get(
            "x-amz-content-sha256", "").startswith("STREAMING-"):
        return raw
    data, rest = b"", raw
    while rest:
        line, _, rest = rest.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            break  # the trailer (x-amz-checksum-…) follows
        data, rest = data + rest[:size], rest[size + 2:]
    return data


def http_date(when):
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(when))


class S3(http.server.BaseHTTPRequestHandler):
    """Objects as each role's S3 statements allow; S3's XML errors."""

    protocol_version = "HTTP/1.1"

    def error(self, code, kind, message):
        data = f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{kind}</Code><Message>{message}</Message></Error>".encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(data) if self.command != "HEAD" else 0))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def answer(self, data, kind="application/xml", headers=()):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def target(self):
        """(bucket, key, query) from a virtual-hosted or a path-style request."""
        host = self.headers.get("Host", "").split(":")[0]
        path, _, query = self.path.partition("?")
        path = urllib.parse.unquote(path.lstrip("/"))
        suffix = "." + STATE["suffix"]
        if host.endswith(suffix):
            bucket, key = host[: -len(suffix)], path
        else:
            bucket, _, key = path.partition("/")
        return bucket, key, urllib.parse.parse_qs(query, keep_blank_values=True)

    def allowed(self, action, name):
        """As the role's policy: "bucket/prefix*" allows the names under the prefix, else one name."""
        grants = STATE["principals"].get(signer(self.headers.get("Authorization", "")))
        if grants is None:
            self.error(403, "InvalidAccessKeyId", "not signed with a node's role credentials")
            return False
        if not any(name == a or (a.endswith("*") and name.startswith(a[:-1])) for a in grants.get(action, [])):
            self.error(403, "AccessDenied", "Access Denied")
            return False
        return True

    def do_GET(self):
        refresh()
        bucket, key, query = self.target()
        if not key:
            return self.list_objects(bucket, query)
        name = f"{bucket}/{key}"
        log("s3", self.command, name)
        if not self.allowed("get", name):
            return None
        metadata, modified = {}, STARTED
        if name in PUT_OBJECTS:
            data, metadata, modified = PUT_OBJECTS[name]
            kind, tag = "application/octet-stream", hashlib.md5(data).hexdigest()
        elif name in STATE["objects"]:
            content = STATE["objects"][name]
            if isinstance(content, dict):  # an app release's archive, kept as a file
                with open(content["file"], "rb") as handle:
                    data = handle.read()
                kind, tag = "application/gzip", hashlib.md5(data).hexdigest()
            else:
                data = content.encode()
                kind, tag = "application/json", uuid.uuid5(uuid.NAMESPACE_URL, content).hex
        else:
            # What S3 answers a caller without s3:ListBucket on the key: not NoSuchKey.
            allowed = STATE["principals"][signer(self.headers["Authorization"])].get("list", [])
            listable = any(a.endswith("*") and name.startswith(a[:-1]) for a in allowed)
            return self.error(404, "NoSuchKey", "The specified key does not exist.") if listable else self.error(
                403, "AccessDenied", "Access Denied")
        headers = [("ETag", '"%s"' % tag), ("Last-Modified", http_date(modified))]
        headers += [(f"x-amz-meta-{k}", v) for k, v in metadata.items()]
        self.answer(data, kind, headers)

    do_HEAD = do_GET

    def list_objects(self, bucket, query):
        prefix = query.get("prefix", [""])[0]
        log("s3", "ListObjectsV2", f"{bucket}/{prefix}")
        if query.get("list-type") != ["2"]:
            return self.error(400, "InvalidRequest", "only ListObjectsV2")
        if not self.allowed("list", f"{bucket}/{prefix}"):
            return None
        with LOCK:
            names = sorted({n for n in list(STATE["objects"]) + list(PUT_OBJECTS)})
        keys = [n.split("/", 1)[1] for n in names if n.startswith(f"{bucket}/{prefix}")]
        after = query.get("continuation-token", query.get("start-after", [""]))[0]
        keys = [k for k in keys if k > after]
        page, more = keys[:1000], len(keys) > 1000
        entries = ""
        for key in page:
            data, _, modified = PUT_OBJECTS.get(f"{bucket}/{key}", (b"", {}, STARTED))
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(modified))
            entries += (f"<Contents><Key>{xml.sax.saxutils.escape(key)}</Key><LastModified>{stamp}</LastModified>"
                        f"<Size>{len(data)}</Size><StorageClass>STANDARD</StorageClass></Contents>")
        token = f"<NextContinuationToken>{xml.sax.saxutils.escape(page[-1])}</NextContinuationToken>" if more else ""
        body = (f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<Name>{bucket}</Name><Prefix>{xml.sax.saxutils.escape(prefix)}</Prefix><KeyCount>{len(page)}</KeyCount>"
                f"<MaxKeys>1000</MaxKeys><IsTruncated>{'true' if more else 'false'}</IsTruncated>{token}{entries}</ListBucketResult>")
        self.answer(body.encode())

    def do_PUT(self):
        refresh()
        bucket, key, query = self.target()
        name = f"{bucket}/{key}"
        body = decoded_body(self)
        log("s3", "UploadPart" if "uploadId" in query else "PutObject", name, len(body))
        if not self.allowed("put", name):
            return None
        if "uploadId" in query:
            with LOCK:
                UPLOADS[query["uploadId"][0]]["parts"][int(query["partNumber"][0])] = body
            return self.answer(b"", headers=[("ETag", '"%s"' % hashlib.md5(body).hexdigest())])
        metadata = {k[len("x-amz-meta-"):]: v for k, v in self.headers.items() if k.lower().startswith("x-amz-meta-")}
        with LOCK:
            PUT_OBJECTS[name] = (body, {k.lower(): v for k, v in metadata.items()}, time.time())
        self.answer(b"", headers=[("ETag", '"%s"' % hashlib.md5(body).hexdigest())])

    def do_POST(self):
        refresh()
        bucket, key, query = self.target()
        name = f"{bucket}/{key}"
        decoded_body(self)
        if not self.allowed("put", name):
            return None
        if "uploads" in query:
            upload = uuid.uuid4().hex
            metadata = {k.lower()[len("x-amz-meta-"):]: v for k, v in self.headers.items()
                        if k.lower().startswith("x-amz-meta-")}
            with LOCK:
                UPLOADS[upload] = {"parts": {}, "metadata": metadata}
            log("s3", "CreateMultipartUpload", name)
            return self.answer((f'<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>{bucket}'
                                f"</Bucket><Key>{xml.sax.saxutils.escape(key)}</Key><UploadId>{upload}</UploadId>"
                                "</InitiateMultipartUploadResult>").encode())
        if "uploadId" in query:
            with LOCK:
                upload = UPLOADS.pop(query["uploadId"][0])
                data = b"".join(upload["parts"][n] for n in sorted(upload["parts"]))
                PUT_OBJECTS[name] = (data, upload["metadata"], time.time())
            log("s3", "CompleteMultipartUpload", name, len(data))
            return self.answer((f'<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>{bucket}'
                                f'</Bucket><Key>{xml.sax.saxutils.escape(key)}</Key><ETag>"x"</ETag>'
                                "</CompleteMultipartUploadResult>").encode())
        self.error(400, "InvalidRequest", "unsupported")

    def log_message(self, *args):
        pass


class CloudWatch(http.server.BaseHTTPRequestHandler):
    """The query protocol: a form in the POST's body (gzipped when botocore compresses a large one)."""

    def answer(self, code, body):
        data = f'<?xml version="1.0"?>{body}'.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, code, kind, message):
        log("cloudwatch", "refused", kind, message)
        self.answer(code, f"<ErrorResponse><Error><Type>Sender</Type><Code>{kind}</Code><Message>"
                          f"{xml.sax.saxutils.escape(message)}</Message></Error><RequestId>{uuid.uuid4()}"
                          "</RequestId></ErrorResponse>")

    def do_POST(self):
        refresh()
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Content-Encoding", "") == "gzip":
            raw = gzip.decompress(raw)
        form = dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True))
        key = signer(self.headers.get("Authorization", ""))
        namespaces = STATE["principals"].get(key)
        if namespaces is None:
            return self.error(403, "InvalidClientTokenId", "not signed with a node's role credentials")
        if form.get("Action") != "PutMetricData":
            return self.error(400, "InvalidAction", str(form.get("Action")))
        namespace = form.get("Namespace", "")
        if namespace not in namespaces:  # the role's cloudwatch:namespace condition
            return self.error(403, "AccessDenied", f"{key} is not authorized to perform cloudwatch:PutMetricData"
                                                   f" in namespace {namespace}")
        metrics, n = [], 1
        while f"MetricData.member.{n}.MetricName" in form:
            field = lambda name, n=n: form.get(f"MetricData.member.{n}.{name}")  # noqa: E731
            dimensions, m = [], 1
            while field(f"Dimensions.member.{m}.Value") is not None:
                dimensions.append(field(f"Dimensions.member.{m}.Value"))
                m += 1
            metrics.append(f"{field('MetricName')}[{','.join(dimensions)}]={field('Value')}")
            n += 1
        log("cloudwatch", "PutMetricData", key, namespace, *metrics)
        self.answer(200, '<PutMetricDataResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/">'
                         f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
                         "</PutMetricDataResponse>")

    def log_message(self, *args):
        pass


if MODE == "imds":
    server = http.server.ThreadingHTTPServer(("169.254.169.254", 80), Metadata)
elif MODE in ("ssm", "s3", "cloudwatch"):
    handler = {"ssm": Ssm, "s3": S3, "cloudwatch": CloudWatch}[MODE]
    server = http.server.ThreadingHTTPServer((STATE["listen"], 443), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(STATE["cert"], STATE["key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
else:
    sys.exit(__doc__)
log("ready")
server.serve_forever()
