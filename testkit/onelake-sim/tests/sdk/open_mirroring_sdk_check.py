"""Drives the simulator with Microsoft's Azure Storage Python SDKs, the way Microsoft's open
mirroring sample uploads files (DataLake file client: create/append/flush, rename), plus append
with flush in one call, leases, paged listings, properties, directory deletes, and the Blob
client's block uploads and conditional writes. Exits non-zero on the first unexpected answer.

Usage: python open_mirroring_sdk_check.py http://127.0.0.1:<port>
Needs: pip install azure-storage-file-datalake azure-storage-blob
"""
import json
import sys

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.storage.blob import BlobServiceClient
from azure.storage.filedatalake import DataLakeLeaseClient, DataLakeServiceClient
from sdk_check_common import CRED, expect

endpoint = sys.argv[1]
LZ = "lake/Files/LandingZone/sdk"


svc = DataLakeServiceClient(account_url=endpoint, credential=CRED)
fs = svc.get_file_system_client("ws")
d = fs.get_directory_client(LZ)
d.create_directory()
meta = d.get_file_client("_metadata.json")
meta.upload_data(json.dumps({"keyColumns": ["id"]}).encode(), overwrite=True)
expect(json.loads(meta.download_file().readall()) == {"keyColumns": ["id"]}, "upload_data + download")

tmp = d.get_file_client("_tmp_1.parquet")
tmp.upload_data(b"first file", overwrite=True)
tmp.rename_file(f"ws/{LZ}/00000000000000000001.parquet")
first = d.get_file_client("00000000000000000001.parquet")
expect(first.exists() and not tmp.exists(), "rename moves the temp file to its final name")

tmp2 = d.get_file_client("_tmp_2.parquet")
tmp2.upload_data(b"intruder", overwrite=True)
try:
    tmp2.rename_file(f"ws/{LZ}/00000000000000000001.parquet", match_condition=MatchConditions.IfMissing)
    expect(False, "rename with If-None-Match: * refuses to overwrite")
except ResourceExistsError as e:
    expect(e.error_code == "PathAlreadyExists", "rename with If-None-Match: * refuses to overwrite")
expect(first.download_file().readall() == b"first file", "the published file is unchanged")

try:
    first.upload_data(b"again", overwrite=False)
    expect(False, "upload_data(overwrite=False) refuses an existing file")
except ResourceExistsError:
    expect(True, "upload_data(overwrite=False) refuses an existing file")

names = sorted(p.name for p in fs.get_paths(path=LZ))
expect(names == [f"{LZ}/00000000000000000001.parquet", f"{LZ}/_metadata.json", f"{LZ}/_tmp_2.parquet"], "get_paths lists the folder")
tmp2.delete_file()
expect(not tmp2.exists(), "delete_file")

blob = BlobServiceClient(account_url=endpoint, credential=CRED, max_single_put_size=1024 * 1024, max_block_size=1024 * 1024)
bc = blob.get_container_client("ws").get_blob_client(f"{LZ}/big.bin")
bc.upload_blob(b"a" * (3 * 1024 * 1024 + 7), overwrite=True)
expect(bc.get_blob_properties().size == 3 * 1024 * 1024 + 7, "block upload (Put Block + Put Block List)")
try:
    bc.upload_blob(b"b", overwrite=False)
    expect(False, "Put Blob with If-None-Match: * refuses an existing blob")
except ResourceExistsError as e:
    expect(e.error_code == "BlobAlreadyExists", "Put Blob with If-None-Match: * refuses an existing blob")
listed = [b.name for b in blob.get_container_client("ws").walk_blobs(name_starts_with=f"{LZ}/", delimiter="/")]
expect(f"{LZ}/big.bin" in listed and f"{LZ}/_metadata.json" in listed, "list blobs with a delimiter")

# Append and flush in one request (append_data(..., flush=True), x-ms-version 2020-06-12+).
one = d.get_file_client("_one_call.parquet")
one.create_file()
one.append_data(b"written in one call", offset=0, length=19, flush=True)
expect(one.download_file().readall() == b"written in one call", "append_data(flush=True) publishes the data")
expect(one.get_file_properties().size == 19, "get_file_properties sees the flushed size")

# User properties (x-ms-properties on DFS, x-ms-meta-* on Blob: the same metadata).
one.set_metadata({"writer": "mirror"})
expect(one.get_file_properties().metadata == {"writer": "mirror"}, "set_metadata / get_file_properties")

# Leases: a leased file refuses writers without the lease id.
lease = DataLakeLeaseClient(one)
lease.acquire(lease_duration=15)
try:
    one.append_data(b"!", offset=19, length=1, flush=True)
    expect(False, "a write without the lease id is refused")
except HttpResponseError as e:
    expect(e.status_code == 412 and e.error_code == "LeaseIdMissing", "a write without the lease id is refused")
one.append_data(b"!", offset=19, length=1, flush=True, lease=lease)
expect(one.download_file().readall() == b"written in one call!", "the lease holder writes")
lease.renew()
lease.release()
one.delete_file()
expect(not one.exists(), "delete after release")

# Paged listing: get_paths(max_results=...) follows x-ms-continuation.
paged = fs.get_directory_client(f"{LZ}/paged")
paged.create_directory()
for i in range(7):
    paged.get_file_client(f"f{i}").upload_data(b"x", overwrite=True)
pages = list(fs.get_paths(path=f"{LZ}/paged", max_results=3).by_page())
names = [p.name for page in pages for p in page]
expect(len(pages) == 3 and names == [f"{LZ}/paged/f{i}" for i in range(7)], "get_paths pages of 3")
paged.delete_directory()
expect(not paged.exists(), "delete_directory (recursive)")

print("all SDK checks passed")
