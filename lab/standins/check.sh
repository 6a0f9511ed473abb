#!/bin/bash
# Runs the node tool against the AWS stand-ins inside a scratch network namespace that has only a
# loopback interface: nothing can leave it, and 169.254.169.254 there is the stand-in's.
# Usage: check.sh DIR   (DIR holds state.json, s3.json, cloudwatch.json, ca.pem and the manifests; as root)
# Prints each step's exit code and output, then the stand-in's request log.
set -euo pipefail
dir=$(realpath "$1")
ns=wsaws-$$
here=$(dirname "$(realpath "$0")")
tool=$(realpath "$here/../../cloud-init/files/webstack-aws.py")
cleanup() {
  ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "/etc/netns/$ns"
  rmdir /etc/netns 2>/dev/null || true # only when empty: other namespaces may use it
}
trap cleanup EXIT
ip netns add "$ns"
mkdir -p "/etc/netns/$ns"
listen=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listen"])' "$dir/state.json")
s3=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listen"])' "$dir/s3.json")
cloudwatch=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listen"])' "$dir/cloudwatch.json")
printf '127.0.0.1 localhost\n%s ssm.eu-west-1.amazonaws.com\n%s s3.eu-west-1.amazonaws.com lab-bucket.s3.eu-west-1.amazonaws.com\n%s monitoring.eu-west-1.amazonaws.com\n' \
  "$listen" "$s3" "$cloudwatch" >"/etc/netns/$ns/hosts"
ip -n "$ns" link set lo up
ip -n "$ns" addr add 169.254.169.254/32 dev lo
ip -n "$ns" addr add "$listen/32" dev lo
ip -n "$ns" addr add "$s3/32" dev lo
ip -n "$ns" addr add "$cloudwatch/32" dev lo
for mode in imds ssm; do
  ip netns exec "$ns" timeout 60 /usr/bin/python3 "$here/aws.py" "$mode" "$dir/state.json" >>"$dir/standin.log" 2>&1 &
done
for mode in s3 cloudwatch; do
  ip netns exec "$ns" timeout 60 /usr/bin/python3 "$here/aws.py" "$mode" "$dir/$mode.json" >>"$dir/standin.log" 2>&1 &
done
for _ in $(seq 50); do [ "$(grep -c ready "$dir/standin.log" 2>/dev/null)" = 4 ] && break; sleep 0.1; done
step() {
  local name=$1
  shift
  set +e
  output=$(ip netns exec "$ns" env AWS_CA_BUNDLE="$dir/ca.pem" /usr/bin/python3 "$tool" "$@" 2>&1)
  code=$?
  set -e
  printf '== %s exit=%s\n%s\n' "$name" "$code" "$output"
}
step fetch fetch "$dir/manifest.json"
step fetch-denied fetch "$dir/manifest-denied.json"
step put put /webstack/lab/s1/stored "$dir/stored.txt" key-1
step put-denied put /webstack/lab/lb/stored "$dir/stored.txt" key-1
# S3 with boto3 as a node calls it: the region from IMDSv2, the role's credentials, virtual-hosted.
s3get() {
  local name=$1 key=$2
  set +e
  output=$(ip netns exec "$ns" env AWS_CA_BUNDLE="$dir/ca.pem" /usr/bin/python3 -c '
import sys, boto3, botocore.exceptions
try:
    body = boto3.client("s3", region_name="eu-west-1").get_object(Bucket="lab-bucket", Key=sys.argv[1])["Body"].read()
    # Text as text; bytes (an app release) by their sha256.
    print(body.decode() if sys.argv[1].endswith(".json") else "sha256:" + __import__("hashlib").sha256(body).hexdigest())
except botocore.exceptions.ClientError as e:
    print(e.response["Error"]["Code"]); sys.exit(1)' "$key" 2>&1)
  code=$?
  set -e
  printf '== %s exit=%s\n%s\n' "$name" "$code" "$output"
}
s3get s3-own bundles/s1/one.json
s3get s3-other bundles/s2/two.json
s3get s3-missing bundles/s1/none.json
s3get s3-release releases/r1.tar.gz
# `lab apply` publishes a newer state: the next request sees it.
sleep 0.05
python3 -c '
import json, sys
state = json.load(open(sys.argv[1]))
state["objects"]["lab-bucket/bundles/s1/three.json"] = "published later"
json.dump(state, open(sys.argv[1] + ".new", "w"))' "$dir/s3.json"
mv "$dir/s3.json.new" "$dir/s3.json"
s3get s3-published bundles/s1/three.json
# CloudWatch as the collector pushes: its role's namespace, and another one.
put_metric() {
  local name=$1 namespace=$2
  set +e
  output=$(ip netns exec "$ns" env AWS_CA_BUNDLE="$dir/ca.pem" /usr/bin/python3 -c '
import sys, boto3, botocore.exceptions
try:
    boto3.client("cloudwatch", region_name="eu-west-1").put_metric_data(Namespace=sys.argv[1], MetricData=[
        {"MetricName": "BackendsUp", "Dimensions": [{"Name": "Node", "Value": "s1"}], "Value": 2, "Unit": "Count"}])
    print("pushed")
except botocore.exceptions.ClientError as e:
    print(e.response["Error"]["Code"]); sys.exit(1)' "$namespace" 2>&1)
  code=$?
  set -e
  printf '== %s exit=%s\n%s\n' "$name" "$code" "$output"
}
put_metric metric-own Webstack
put_metric metric-other AWS/EC2
printf '== stand-in log\n'
cat "$dir/standin.log"
