"""Drives the simulator with Microsoft's Azure Storage Python SDKs, the way Microsoft's open
mirroring sample uploads files (DataLake file client: create/append/flush, rename), plus the Blob
client's block uploads and conditional writes. Exits non-zero on the first unexpected answer.

Usage: python open_mirroring_sdk_check.py http://127.0.0.1:<port>
Needs: pip install azure-storage-file-datalake azure-storage-blob
"""
import base64
import json
import sys

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
from azure.storage.filedatalake import DataLakeServiceClient

endpoint = sys.argv[1]
# The SDKs send bearer tokens over https only; the simulator also takes SharedKey (unverified).
cred = {"account_name": "onelake", "account_key": base64.b64encode(b"k" * 32).decode()}
LZ = "lake/Files/LandingZone/sdk"


def expect(cond, what):
    if not cond:
        print("FAILED:", what)
        sys.exit(1)
    print("ok:", what)


svc = DataLakeServiceClient(account_url=endpoint, credential=cred)
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

blob = BlobServiceClient(account_url=endpoint, credential=cred, max_single_put_size=1024 * 1024, max_block_size=1024 * 1024)
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
print("all SDK checks passed")
