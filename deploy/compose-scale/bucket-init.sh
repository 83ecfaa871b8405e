#!/bin/sh
# One-shot, before the sequencers: create the log's bucket (once) and let anyone read it:
# GetObject for the objects, ListBucket so that a missing key is 404 rather than 403
# (docs/scale-out.md, "Serving reads from the bucket or a CDN"). Safe to run again.
set -eu
: "${S3_ENDPOINT:?set S3_ENDPOINT}" "${S3_BUCKET:?set S3_BUCKET}"
s3api() { aws --endpoint-url "$S3_ENDPOINT" s3api "$@"; }
if ! s3api head-bucket --bucket "$S3_BUCKET" 2>/dev/null; then
  s3api create-bucket --bucket "$S3_BUCKET"
fi
s3api put-bucket-policy --bucket "$S3_BUCKET" --policy "{
  \"Version\": \"2012-10-17\", \"Statement\": [
    {\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": [\"s3:GetObject\"],
     \"Resource\": [\"arn:aws:s3:::$S3_BUCKET/*\"]},
    {\"Effect\": \"Allow\", \"Principal\": \"*\", \"Action\": [\"s3:ListBucket\"],
     \"Resource\": [\"arn:aws:s3:::$S3_BUCKET\"]}]}"
echo "bucket $S3_BUCKET at $S3_ENDPOINT: ready, readable by anyone"
