"""Drives a running mongo-sim with pymongo: CRUD, sort across mixed _id types, exhaust cursors,
and change streams with resume. Usage: test_pymongo.py MONGODB_URI

Prints 'N passed, N failed' and exits non-zero on any failure.
"""

import datetime
import sys
import traceback
import uuid

import bson
import pymongo
from bson import Binary, Decimal128, MaxKey, MinKey, ObjectId
from pymongo import CursorType
from pymongo.errors import DuplicateKeyError, OperationFailure

URI = sys.argv[1]
client = pymongo.MongoClient(URI, serverSelectionTimeoutMS=5000)
db = client["pytest_" + uuid.uuid4().hex[:8]]


def test_handshake():
    hello = client.admin.command("hello")
    assert hello["isWritablePrimary"] is True, hello
    assert hello["setName"] == "rs0", hello
    assert client.admin.command("ping")["ok"] == 1.0


def test_crud():
    c = db.crud
    c.insert_one({"_id": 1, "n": 1, "tags": ["a"]})
    c.insert_many([{"_id": 2, "n": 2}, {"_id": 3, "n": 3}])
    try:
        c.insert_one({"_id": 1})
        raise AssertionError("duplicate key accepted")
    except DuplicateKeyError as e:
        assert e.code == 11000
    assert c.count_documents({"n": {"$gte": 2}}) == 2
    r = c.update_one({"_id": 1}, {"$inc": {"n": 10}, "$push": {"tags": "b"}})
    assert (r.matched_count, r.modified_count) == (1, 1)
    assert c.find_one({"_id": 1}) == {"_id": 1, "n": 11, "tags": ["a", "b"]}
    r = c.update_one({"_id": 4}, {"$set": {"n": 4}}, upsert=True)
    assert r.upserted_id == 4
    c.replace_one({"_id": 2}, {"r": True})
    assert c.find_one({"_id": 2}) == {"_id": 2, "r": True}
    doc = c.find_one_and_update({"_id": 3}, {"$set": {"n": 30}}, return_document=pymongo.ReturnDocument.AFTER)
    assert doc == {"_id": 3, "n": 30}
    assert c.delete_many({"_id": {"$in": [1, 2]}}).deleted_count == 2
    assert sorted(d["_id"] for d in c.find()) == [3, 4]
    assert [d["_id"] for d in c.find({}, sort=[("_id", -1)], limit=1)] == [4]
    agg = list(c.aggregate([{"$group": {"_id": None, "n": {"$sum": 1}}}]))
    assert agg == [{"_id": None, "n": 2}], agg
    try:
        c.find_one({"n": {"$nope": 1}})
        raise AssertionError("unknown operator accepted")
    except OperationFailure as e:
        assert e.code == 2


def test_sort_mixed_id_types():
    c = db.mixed
    oid = ObjectId()
    when = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    ids = [True, "b", 3, oid, when, None, {"x": 1}, Binary(b"\x01"), 2.5, MaxKey(), MinKey(),
           Decimal128("2.75"), "a", bson.Int64(1)]
    c.insert_many([{"_id": i} for i in ids])
    got = [d["_id"] for d in c.find().sort("_id", 1)]
    # pymongo decodes BinData subtype 0 as bytes and dates as naive UTC datetimes.
    want = [MinKey(), None, bson.Int64(1), 2.5, Decimal128("2.75"), 3, "a", "b", {"x": 1},
            b"\x01", oid, True, when.replace(tzinfo=None), MaxKey()]
    assert len(got) == len(want), got
    for g, w in zip(got, want):
        assert g == w and type(g) is type(w), (got, want)
    natural = [d["_id"] for d in c.find()]
    assert natural[0] is True and natural[1] == "b", "unsorted find is natural order"
    # Type bracketing: $gt a number only returns numbers; min/hint walks every class.
    assert [d["_id"] for d in c.find({"_id": {"$gt": 2}}).sort("_id", 1)] == [2.5, Decimal128("2.75"), 3]
    walked = [d["_id"] for d in c.find().hint([("_id", 1)]).min([("_id", 3)])]
    assert walked[0] == 3 and len(walked) == 9, walked


def test_exhaust_cursor():
    c = db.exhaust
    c.insert_many([{"_id": i, "pad": "x" * 100} for i in range(1000)])
    docs = list(c.find(cursor_type=CursorType.EXHAUST, batch_size=100))
    assert [d["_id"] for d in docs] == list(range(1000))


def next_change(stream, attempts=100):
    for _ in range(attempts):
        change = stream.try_next()
        if change is not None:
            return change
    raise AssertionError("no change event")


def test_watch_with_resume():
    c = db.watched
    with c.watch(max_await_time_ms=100) as stream:
        c.insert_one({"_id": 1})
        first = next_change(stream)
        assert first["operationType"] == "insert" and first["documentKey"] == {"_id": 1}
        token = stream.resume_token
        c.update_one({"_id": 1}, {"$set": {"a": 1}})
        c.delete_one({"_id": 1})
    with c.watch(resume_after=token, max_await_time_ms=100, full_document="updateLookup") as stream:
        upd = next_change(stream)
        assert upd["operationType"] == "update", upd
        assert upd["updateDescription"]["updatedFields"] == {"a": 1}
        assert upd["fullDocument"] is None, "looked up after the delete"
        assert next_change(stream)["operationType"] == "delete"
        idle = stream.resume_token
        db.other.insert_one({"_id": 1})
        assert stream.try_next() is None
        assert stream.resume_token["_data"] > idle["_data"], "postBatchResumeToken advances"
    c.drop()
    with db.watch(max_await_time_ms=100) as stream:
        c.insert_one({"_id": 2})
        assert next_change(stream)["ns"] == {"db": db.name, "coll": "watched"}
    client.admin.command("configureFailPoint", "failCommand", mode={"times": 1},
                         data={"failCommands": ["getMore"], "closeConnection": True})
    with c.watch(max_await_time_ms=100) as stream:
        stream.try_next()
        c.insert_one({"_id": 3})
        assert next_change(stream)["documentKey"] == {"_id": 3}, "resumed after a closed connection"


TESTS = [test_handshake, test_crud, test_sort_mixed_id_types, test_exhaust_cursor, test_watch_with_resume]


def main():
    passed = failed = 0
    for t in TESTS:
        try:
            t()
            passed += 1
            print(f"ok   {t.__name__}")
        except Exception:  # noqa: BLE001 - report every failure
            failed += 1
            print(f"FAIL {t.__name__}")
            traceback.print_exc()
    client.drop_database(db.name)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
