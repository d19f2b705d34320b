"""redis-py against a sessionplane store: strings, hashes, sets, TTLs, pipelines, SCAN,
RESP2 and RESP3. Prints "REDIS-PY CHECK OK" and exits 0 when every check held.

Usage: redis_py_check.py HOST PORT [PASSWORD]
"""

import sys
import time
import uuid

import redis


def check(host, port, password, protocol):
    r = redis.Redis(host=host, port=port, password=password, protocol=protocol,
                    decode_responses=True, socket_timeout=10)
    p = f"py{protocol}:{uuid.uuid4().hex}:"

    assert r.ping() is True
    # Strings and TTLs.
    assert r.set(p + "s", "v") is True
    assert r.get(p + "s") == "v"
    assert r.set(p + "s", "w", nx=True) is None
    assert r.set(p + "s", "w", xx=True, get=True) == "v"
    assert r.set(p + "t", "v", ex=100) is True
    assert 99 <= r.ttl(p + "t") <= 100
    assert r.set(p + "t", "v2", keepttl=True) is True
    assert 99 <= r.ttl(p + "t") <= 100
    assert r.set(p + "t", "v3") is True
    assert r.ttl(p + "t") == -1, "a plain SET clears the TTL"
    assert r.ttl(p + "missing") == -2
    assert r.execute_command("SETEX", p + "x", 50, "v") in (True, "OK")
    assert 49_000 <= r.pttl(p + "x") <= 50_000
    assert r.getex(p + "x", persist=True) == "v"
    assert r.ttl(p + "x") == -1
    assert r.expire(p + "x", 100, gt=True) is False, "GT never beats no TTL"
    assert r.expire(p + "x", 100, lt=True) is True
    assert r.expire(p + "x", 10, nx=True) is False
    assert r.persist(p + "x") is True
    assert r.getdel(p + "x") == "v"
    assert r.exists(p + "x") == 0
    assert r.mset({p + "a": "1", p + "b": "2"}) is True
    assert r.mget(p + "a", p + "b", p + "nope") == ["1", "2", None]
    assert r.incr(p + "a") == 2
    assert r.delete(p + "a", p + "b", p + "nope") == 2
    assert r.set(p + "e", "v", px=300) is True
    time.sleep(0.5)
    assert r.get(p + "e") is None, "expired key is gone"
    assert r.expire(p + "s", -1) is True
    assert r.exists(p + "s") == 0, "EXPIRE in the past deletes"
    # Hashes.
    assert r.hset(p + "h", mapping={"user": "alice", "visits": "1"}) == 2
    assert r.hget(p + "h", "user") == "alice"
    assert r.hgetall(p + "h") == {"user": "alice", "visits": "1"}
    assert r.hincrby(p + "h", "visits", 5) == 6
    assert r.hmget(p + "h", ["user", "nope"]) == ["alice", None]
    assert r.hexists(p + "h", "user") is True
    assert r.hlen(p + "h") == 2
    assert r.hdel(p + "h", "user") == 1
    assert r.type(p + "h") == "hash"
    try:
        r.get(p + "h")
        raise AssertionError("GET on a hash must fail")
    except redis.ResponseError as e:
        assert str(e).startswith("WRONGTYPE"), e
    # Sets.
    assert r.sadd(p + "set", "a", "b", "a") == 2
    assert r.smembers(p + "set") == {"a", "b"}
    assert r.sismember(p + "set", "a") in (True, 1)
    assert r.srem(p + "set", "a") == 1
    # Rename keeps the TTL; a hash tag keeps both keys in one partition, as Redis
    # Cluster requires.
    tag = "{" + p + "}"
    r.set(tag + "r1", "v", ex=100)
    assert r.rename(tag + "r1", tag + "r2") is True
    assert r.get(tag + "r2") == "v" and r.ttl(tag + "r2") > 90
    # Pipelines, transactional flag off (no MULTI in the store).
    pipe = r.pipeline(transaction=False)
    for i in range(200):
        pipe.set(f"{p}pipe:{i}", i)
    for i in range(200):
        pipe.get(f"{p}pipe:{i}")
    out = pipe.execute()
    assert out[:200] == [True] * 200
    assert out[200:] == [str(i) for i in range(200)]
    # SCAN sees every key of the prefix exactly as written.
    seen = set(r.scan_iter(match=p + "pipe:*", count=50))
    assert seen == {f"{p}pipe:{i}" for i in range(200)}, len(seen)
    assert r.dbsize() >= 200
    info = r.info()
    assert info["redis_version"] == "7.4.0"
    assert "db0" in r.info("keyspace")
    # Errors keep the connection usable.
    try:
        r.execute_command("NOSUCHCOMMAND", "x")
        raise AssertionError("unknown command must fail")
    except redis.ResponseError as e:
        assert "unknown command" in str(e)
    assert r.ping() is True
    r.close()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    password = sys.argv[3] if len(sys.argv) > 3 else None
    check(host, port, password, 2)
    check(host, port, password, 3)
    print("REDIS-PY CHECK OK")


if __name__ == "__main__":
    main()
