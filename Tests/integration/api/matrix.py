# SPDX-License-Identifier: Apache-2.0
"""The API suite's matrix: the same tests over HTTP or HTTPS, on SQLite or on PostgreSQL.

Chosen by the environment (scripts/test.sh runs the suite once per mode):

* SESSION_VAULT_TEST_SCHEME=http|https (default http). With https every `VaultProcess` (and every
  `api_server`) starts with a certificate for 127.0.0.1 from a test CA made here with `openssl`,
  and every connection the harness opens to it is TLS trusting that CA only.
* SESSION_VAULT_TEST_BACKEND=file|postgres (default file). With postgres the store a test asks
  for by kind, `file` or `memory` (VaultProcess's `storage=`), is a fresh PostgreSQL database of
  its own on the cluster named by SESSION_VAULT_TEST_POSTGRES_URL and
  SESSION_VAULT_TEST_POSTGRES_PASSWORD_FILE (what scripts/test.sh exports from scripts/pg.sh): made
  at the first start, kept across that vault's restarts, dropped at its teardown. `memory` maps
  too: the suite uses it for speed, and the tests that are about the memory engine itself say so
  with `requires_memory_store`. An explicit storage string (`file:PATH`, a `postgres://` URL) is
  passed through unchanged.

Tests that are about one engine (they read or damage vault.db, need its file lock, a read-only
mount or `rekey`, which is file-only) carry `requires_file_store(why)` / `requires_memory_store(why)`
and are skipped, with that reason, in the postgres mode.
"""

from __future__ import annotations

import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import make_ca, make_leaf

SCHEME = os.environ.get("SESSION_VAULT_TEST_SCHEME", "") or "http"
BACKEND = os.environ.get("SESSION_VAULT_TEST_BACKEND", "") or "file"
if SCHEME not in ("http", "https"):
    raise ValueError(f"SESSION_VAULT_TEST_SCHEME={SCHEME!r}: use http or https")
if BACKEND not in ("file", "postgres"):
    raise ValueError(f"SESSION_VAULT_TEST_BACKEND={BACKEND!r}: use file or postgres")

MAPPED_KINDS = ("file", "memory")


def describe() -> str:
    return f"scheme={SCHEME} backend={BACKEND}"


# --------------------------------------------------------------------------
# Skips for tests about one engine
# --------------------------------------------------------------------------

def requires_store(kind: str, why: str) -> pytest.MarkDecorator:
    """The test is about the `kind` engine itself (`why` says how); skipped where the matrix maps
    that kind to another engine."""
    assert kind in MAPPED_KINDS, kind
    return pytest.mark.skipif(BACKEND != "file",
                              reason=f"{kind} store only: {why} (SESSION_VAULT_TEST_BACKEND={BACKEND})")


def requires_file_store(why: str) -> pytest.MarkDecorator:
    return requires_store("file", why)


def requires_memory_store(why: str) -> pytest.MarkDecorator:
    return requires_store("memory", why)


# --------------------------------------------------------------------------
# HTTPS: one test CA and one server certificate per run
# --------------------------------------------------------------------------

class TestTLS:
    """A CA and a server certificate for 127.0.0.1 (IP SAN), and a client context trusting the CA."""

    __test__ = False  # not a pytest class

    def __init__(self, folder: Path):
        if shutil.which("openssl") is None:
            pytest.fail("SESSION_VAULT_TEST_SCHEME=https needs the openssl command", pytrace=False)
        self.folder = folder
        make_ca(folder, "ca")
        make_leaf(folder, "server", "ca", "subjectAltName=IP:127.0.0.1")
        self.ca = folder / "ca.pem"
        self.cert = folder / "server.pem"
        self.key = folder / "server.key"
        self.context = ssl.create_default_context(cafile=str(self.ca))
        self.context.set_alpn_protocols(["http/1.1"])

    def server_env(self) -> dict[str, str]:
        return {"SESSION_VAULT_TLS_CERT_FILE": str(self.cert), "SESSION_VAULT_TLS_KEY_FILE": str(self.key)}

    def key_lines(self) -> list[str]:
        """The base64 lines of the server's private key (none may reach a log)."""
        return [line for line in self.key.read_text().splitlines() if line and "-----" not in line]


# --------------------------------------------------------------------------
# PostgreSQL: a database per vault on the test cluster
# --------------------------------------------------------------------------

def _pg_tool(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if found:
        return str(found[-1])
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"SESSION_VAULT_TEST_BACKEND=postgres needs {name} (apt-get install postgresql)", pytrace=False)
    return path


class TestCluster:
    """The cluster scripts/pg.sh started (URL postgresql://vault@127.0.0.1:PORT/vault, superuser)."""

    __test__ = False

    def __init__(self, url: str, password_file: Path):
        self.url = url
        self.base = url.rsplit("/", 1)[0]
        self.password_file = password_file
        self.password = password_file.read_text().strip()
        self.databases: set[str] = set()

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSWORD"] = self.password
        env["PGCONNECT_TIMEOUT"] = "10"
        return env

    def psql(self, database: str, sql: str, *, quiet: bool = True) -> str:
        """Runs `sql` (one statement) and returns psql's unaligned output (fields split by \\x1f)."""
        args = [_pg_tool("psql"), f"{self.base}/{database}", "-X", "-At", "-F", "\x1f", "-v", "ON_ERROR_STOP=1",
                "-c", sql]
        if quiet:
            args.insert(2, "-q")
        done = subprocess.run(args, capture_output=True, env=self._env(), timeout=60)
        assert done.returncode == 0, f"psql {database}: {sql[:200]}\n{done.stderr.decode(errors='replace')}"
        return done.stdout.decode()

    def create_database(self) -> str:
        name = "sv_" + secrets.token_hex(6)
        self.psql("postgres", f"CREATE DATABASE {name}")
        self.databases.add(name)
        return name

    def drop_database(self, name: str) -> None:
        self.psql("postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.databases.discard(name)

    def url_of(self, name: str) -> str:
        return f"{self.base}/{name}"

    def rows(self, database: str, sql: str) -> list[tuple[str | None, ...]]:
        """The rows of a query as text (NULL as None)."""
        out = self.psql(database, sql.replace("\n", " "))
        return [tuple(None if f == "" else f for f in line.split("\x1f")) for line in out.splitlines()]

    def execute(self, database: str, sql: str) -> int:
        """Runs one INSERT/UPDATE/DELETE and returns the rows it changed."""
        tag = self.psql(database, sql, quiet=False).strip().splitlines()[-1].split()
        assert tag and tag[-1].isdigit(), tag
        return int(tag[-1])

    def dump(self, database: str) -> bytes:
        """A plain-text pg_dump: every table's rows (the logical content)."""
        done = subprocess.run([_pg_tool("pg_dump"), "--no-owner", self.url_of(database)], capture_output=True,
                              env=self._env(), timeout=120)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout

    def logical_dump(self, database: str) -> bytes:
        """`dump` without pg_dump's `\\restrict` / `\\unrestrict` lines, whose key is new on every run."""
        return b"".join(line for line in self.dump(database).splitlines(keepends=True)
                        if not line.startswith((b"\\restrict ", b"\\unrestrict ")))

    def relation_files(self, database: str) -> list[tuple[str, bytes]]:
        """The on-disk pages of the database's own tables, indexes, sequences and TOAST, after a
        checkpoint: dead row versions included (what a scan of vault.db's free pages is for SQLite)."""
        self.psql(database, "CHECKPOINT")
        data_dir = Path(self.psql(database, "SHOW data_directory").strip())
        paths = self.rows(database, """
            WITH own AS (SELECT oid, relname, reltoastrelid FROM pg_class WHERE relnamespace NOT IN
                         ('pg_catalog'::regnamespace, 'information_schema'::regnamespace, 'pg_toast'::regnamespace))
            SELECT relname, pg_relation_filepath(oid) FROM own
            UNION ALL SELECT t.relname, pg_relation_filepath(t.oid) FROM own JOIN pg_class t ON t.oid = own.reltoastrelid
            UNION ALL SELECT x.relname, pg_relation_filepath(x.oid) FROM own
                      JOIN pg_index i ON i.indrelid = own.reltoastrelid JOIN pg_class x ON x.oid = i.indexrelid""")
        paths = [(name, path) for name, path in paths if path is not None]
        out = []
        for relname, relpath in paths:
            assert relpath is not None
            main = data_dir / relpath
            segment = 0
            while True:  # 1 GB segments: main, main.1, main.2, ...
                path = main if segment == 0 else Path(f"{main}.{segment}")
                if not path.exists():
                    break
                out.append((f"{database}/{relname}" + (f".{segment}" if segment else ""), path.read_bytes()))
                segment += 1
        return out

    def data_directory(self) -> Path:
        return Path(self.psql("postgres", "SHOW data_directory").strip())

    def wal_window(self) -> "WalWindow":
        """Starts recording: what the cluster writes to its WAL from now on can be read back."""
        return WalWindow(self)

    def server_log(self) -> Path | None:
        """The cluster's own log, where scripts/pg.sh puts it (beside the password file)."""
        path = self.password_file.parent / "server.log"
        return path if path.exists() else None

    def drop_all(self) -> None:
        for name in sorted(self.databases):
            self.drop_database(name)


class WalWindow:
    """The WAL bytes written between `__init__` and `read` (every database's; a test run writes
    one at a time). A physical replication slot keeps the segments from being recycled meanwhile."""

    def __init__(self, cluster: TestCluster):
        self.cluster = cluster
        self.slot = "sv_scan_" + secrets.token_hex(4)
        cluster.psql("postgres", f"SELECT pg_create_physical_replication_slot('{self.slot}', true)")
        self.start = cluster.psql("postgres", "SELECT pg_current_wal_lsn()").strip()

    def read(self) -> bytes:
        c = self.cluster
        end = c.psql("postgres", "SELECT pg_current_wal_lsn()").strip()
        (first, first_off), = c.rows("postgres", f"SELECT file_name, file_offset FROM pg_walfile_name_offset('{self.start}')")
        (last, last_off), = c.rows("postgres", f"SELECT file_name, file_offset FROM pg_walfile_name_offset('{end}')")
        assert first is not None and last is not None and first_off is not None and last_off is not None
        wal = c.data_directory() / "pg_wal"
        names = sorted(p.name for p in wal.iterdir() if len(p.name) == 24 and first <= p.name <= last)
        assert names and names[0] == first and names[-1] == last, (first, last, names)
        out = []
        for name in names:
            data = (wal / name).read_bytes()
            lo = int(first_off) if name == first else 0
            hi = int(last_off) if name == last else len(data)
            out.append(data[lo:hi])
        return b"".join(out)

    def close(self) -> None:
        self.cluster.psql("postgres", f"SELECT pg_drop_replication_slot('{self.slot}')")


# --------------------------------------------------------------------------
# The run's state (made on first use; `teardown` at the end of the session)
# --------------------------------------------------------------------------

_tls: TestTLS | None = None
_tls_folder: Path | None = None
_cluster: TestCluster | None = None


def tls() -> TestTLS | None:
    """The test CA and certificate in the https mode, None in the http mode."""
    global _tls, _tls_folder
    if SCHEME != "https":
        return None
    if _tls is None:
        _tls_folder = Path(tempfile.mkdtemp(prefix="sv-test-ca-"))
        _tls = TestTLS(_tls_folder)
    return _tls


def cluster() -> TestCluster:
    """The PostgreSQL test cluster (postgres mode only)."""
    global _cluster
    assert BACKEND == "postgres"
    if _cluster is None:
        url = os.environ.get("SESSION_VAULT_TEST_POSTGRES_URL", "")
        password_file = os.environ.get("SESSION_VAULT_TEST_POSTGRES_PASSWORD_FILE", "")
        if not url or not password_file:
            pytest.fail("SESSION_VAULT_TEST_BACKEND=postgres needs SESSION_VAULT_TEST_POSTGRES_URL and "
                        "SESSION_VAULT_TEST_POSTGRES_PASSWORD_FILE (scripts/pg.sh start DIR prints the URL; "
                        "the password is DIR/password)", pytrace=False)
        _cluster = TestCluster(url, Path(password_file))
        _cluster.psql("postgres", "SELECT 1")
    return _cluster


def maps(kind: str) -> bool:
    """True if a vault asking for storage `kind` gets a PostgreSQL database in this run."""
    return BACKEND == "postgres" and kind in MAPPED_KINDS


def teardown() -> None:
    global _tls, _tls_folder, _cluster
    try:
        if _cluster is not None:
            _cluster.drop_all()
    finally:
        if _tls_folder is not None:
            shutil.rmtree(_tls_folder, ignore_errors=True)
        _tls, _tls_folder, _cluster = None, None, None
