"""Drives the simulator the way the two writers known to work against OneLake in production do:

- Microsoft's open-mirroring Python SDK (fabric-toolbox, `OpenMirroringPythonSDK`,
  `OpenMirroringClient`): a `DataLakeServiceClient` whose account URL is the item's `Files`
  folder, `LandingZone` as the file system, create/append/flush uploads, `get_paths` to find the
  next sequence number, and a rename over plain REST with the source as a full URL ("Python SDK
  doesn't handle rename properly for onelake, using REST API to rename the file instead");
- the MongoDB_Fabric_Mirroring app (`push_file_to_lz.py`): `PUT ?resource=file`, then one
  `PATCH ?position=0&action=append&flush=true`, without `x-ms-version`.

Usage: python open_mirroring_client_check.py http://127.0.0.1:<port>
"""
import json
import sys
import uuid

import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.filedatalake import DataLakeServiceClient
from sdk_check_common import CRED, expect

endpoint = sys.argv[1]
# What the SDK is given: the item's Files folder as the account URL.
host = f"{endpoint}/ws/lake.MountedRelationalDatabase/Files"
AUTH = {"Authorization": "Bearer token"}


svc = DataLakeServiceClient(account_url=host, credential=CRED)
lz = svc.get_file_system_client(file_system="LandingZone")

# create_table
folder = "shop.schema/orders"
directory = lz.get_directory_client(folder)
if not directory.exists():
    directory.create_directory()
meta = json.dumps({"keyColumns": ["_id"]})
f = directory.create_file("_metadata.json")
f.append_data(data=meta, offset=0, length=len(meta))
f.flush_data(len(meta))
expect(json.loads(directory.get_file_client("_metadata.json").download_file().readall()) == {"keyColumns": ["_id"]}, "create_table writes _metadata.json")


def next_file_name():
    numbers = []
    for p in svc.get_file_system_client(file_system=f"LandingZone/{folder}").get_paths(recursive=False):
        name = p.name.rsplit("/", 1)[-1]
        if not p.is_directory and name.endswith(".parquet") and not name.startswith("_"):
            numbers.append(int(name[:-8]))
    return f"{(max(numbers) + 1 if numbers else 1):020}.parquet"


def upload_data_file(contents):
    temp = f"_temp_{uuid.uuid4()}.parquet"
    fc = directory.create_file(temp)
    fc.append_data(data=contents, offset=0, length=len(contents))
    fc.flush_data(len(contents))
    name = next_file_name()
    # OpenMirroringClient.rename_file: the source is a full URL, x-ms-version 2020-06-12.
    r = requests.put(
        f"{host}/LandingZone/{folder}/{name}",
        headers={**AUTH, "x-ms-rename-source": f"{host}/LandingZone/{folder}/{temp}", "x-ms-version": "2020-06-12"},
    )
    expect(r.status_code in (200, 201), f"REST rename with a full-URL source to {name} ({r.status_code} {r.text})")
    return name


first = upload_data_file(b"first")
second = upload_data_file(b"second")
expect((first, second) == (f"{1:020}.parquet", f"{2:020}.parquet"), "get_paths finds the next sequence number")
expect(directory.get_file_client(second).download_file().readall() == b"second", "the renamed file holds its data")

# Why the SDK's own rename is not used: with the item folder in the account URL, the SDK sends
# x-ms-rename-source "/LandingZone/...", which names a file system that does not exist.
tmp = directory.create_file("_temp_sdk.parquet")
try:
    tmp.rename_file(f"LandingZone/{folder}/{3:020}.parquet")
    expect(False, "the SDK's rename_file names the wrong source on OneLake")
except ResourceNotFoundError as e:
    expect(e.error_code == "SourcePathNotFound", "the SDK's rename_file names the wrong source on OneLake")
tmp.delete_file()

# The MongoDB_Fabric_Mirroring app: create, then append and flush in one call, no x-ms-version.
url = f"{host}/LandingZone/{folder}/{3:020}.parquet"
r = requests.put(url + "?resource=file", data={}, headers={**AUTH, "content-length": "0"})
expect(r.status_code == 201, f"the app's create ({r.status_code})")
r = requests.patch(url + "?position=0&action=append&flush=true", data=b"third file", headers={**AUTH, "x-ms-file-name": f"{3:020}.parquet"})
expect(r.status_code == 202, f"the app's append with flush=true ({r.status_code} {r.text})")
expect(directory.get_file_client(f"{3:020}.parquet").download_file().readall() == b"third file", "the app's file holds its data")

# remove_table
directory.delete_directory()
expect(not directory.exists(), "remove_table deletes the folder")
print("all open-mirroring client checks passed")
