"""The results database: its schema, its versioned migrations, and opening it (SQLite file or PostgreSQL URL).

SQLAlchemy Core, no ORM: five tables that a reader can query by hand. Migrations are an ordered list of
functions, each run once in a transaction that also bumps ``schema_version``; a second process opening the
database at the same moment waits for the first (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock), so a
fleet of runners writing their first run together cannot create a table twice. Alembic would add a migrations
directory and an ini file for what is, so far, one ``create_all``; the list below migrates the same way and can
hand over to Alembic if the schema ever needs branches.
"""

from __future__ import annotations

import functools
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from pytest_edgeperf.errors import EdgeperfError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

#: where ``--edgeperf-history`` / ``edgeperf history`` write when given no URL (relative to the rootdir / cwd)
DEFAULT_PATH = Path(".edgeperf") / "history.db"
#: SQLite: how long a writer waits for another's lock before it retries (ms)
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: writers retry a transaction that lost a lock race (SQLite "database is locked", PostgreSQL serialization)
WRITE_ATTEMPTS = 8
#: the advisory lock PostgreSQL writers take (any constant; "edgeperf" in ASCII, truncated)
_PG_WRITE_LOCK = 0x6564676570657266

T = TypeVar("T")


class HistoryError(EdgeperfError):
    """A history URL or database a user must fix; the message is one line naming it."""


def _sa():  # type: ignore[no-untyped-def]
    """SQLAlchemy, or a one-line error saying which extra installs it."""
    try:
        import sqlalchemy
    except ImportError:
        raise HistoryError("the results history needs SQLAlchemy: pip install 'pytest-edgeperf[history]'") from None
    return sqlalchemy


def resolve_url(raw: str | None, base: Path) -> str:
    """A URL as SQLAlchemy takes it: ``postgresql://...``/``sqlite:///...`` as given, a bare path as a SQLite file.

    ``postgresql://`` uses psycopg 3 (``psycopg[binary]`` in the ``history`` extra) rather than SQLAlchemy's
    default psycopg2.
    """
    text = (raw or "").strip()
    if not text:
        return f"sqlite:///{(base / DEFAULT_PATH).resolve()}"
    if "://" not in text:
        path = Path(os.path.expanduser(text))
        return f"sqlite:///{(path if path.is_absolute() else base / path).resolve()}"
    scheme = text.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if scheme.startswith(("postgresql+", "sqlite")):
        return text
    raise HistoryError(f"history URL {redact(text)!r}: use a file path, sqlite:///PATH or postgresql://...")


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


# ---- the schema ---------------------------------------------------------------------------------------------


@functools.cache
def _metadata():  # type: ignore[no-untyped-def]
    """The current schema (version ``len(MIGRATIONS)``)."""
    sa = _sa()
    md = sa.MetaData()
    sa.Table("schema_version", md, sa.Column("version", sa.Integer, nullable=False))
    sa.Table(
        "runs", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        # sha256 of the results payload: importing the same file twice (plugin, then `history add`) adds it once
        sa.Column("run_key", sa.String(64), nullable=False, unique=True),
        sa.Column("commit_sha", sa.String(64)),
        sa.Column("branch", sa.String(255)),
        sa.Column("created_unix", sa.Float, nullable=False),  # when the run was measured
        sa.Column("recorded_unix", sa.Float, nullable=False),  # when it entered the history
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("device_model", sa.Text),
        sa.Column("host", sa.String(255)),
        sa.Column("host_identity", sa.JSON),  # cpu, machine, kernel, platform, cpu_count, python
        sa.Column("runtime_versions", sa.JSON),  # {"onnxruntime": "1.20.1", ...}
        sa.Column("tool_version", sa.String(32)),
        sa.Column("environment", sa.JSON),
    )
    sa.Table(
        "measurements", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("test_id", sa.Text, nullable=False),
        sa.Column("runtime", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(128)),  # accelerator path (execution provider, delegate); NULL: not recorded
        sa.Column("input_signature", sa.Text),  # e.g. "[1, 3, 32, 32]"; NULL: not recorded
        sa.Column("model", sa.Text),
        sa.Column("status", sa.String(32)),
        sa.Column("quick", sa.Boolean),
        sa.Column("overall_verdict", sa.String(32)),
        sa.Column("verdicts", sa.JSON),
        sa.Column("environment", sa.JSON),
        sa.Index("ix_measurements_test", "test_id", "runtime"),
    )
    sa.Table(
        "metrics", md,
        sa.Column("measurement_id", sa.Integer, sa.ForeignKey("measurements.id", ondelete="CASCADE"),
                  nullable=False, index=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("measurement_id", "name"),
    )
    sa.Table(
        # what a baseline needs beyond the summary metrics (schema 2; runs recorded before it have no row here):
        # the per-process statistics the verdict compares between runs, the decimated raw latencies its rank tests
        # read, and the environment as the baseline keeps it, all as BaselineEntry.from_result makes them
        "measurement_samples", md,
        sa.Column("measurement_id", sa.Integer, sa.ForeignKey("measurements.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("sample_count", sa.Integer, nullable=False),  # valid samples measured (before decimation)
        sa.Column("latency_ms", sa.JSON, nullable=False),  # at most MAX_STORED_SAMPLES, evenly spaced in time
        sa.Column("process_latency_ms", sa.JSON, nullable=False),  # per worker process: fast-half mean
        sa.Column("process_reference_ms", sa.JSON),  # per worker process: the reference's; NULL: not timed
        sa.Column("environment", sa.JSON, nullable=False),
    )
    sa.Table(
        "acks", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("test_id", sa.Text, nullable=False),
        sa.Column("device", sa.String(64)),  # NULL: every device
        sa.Column("runtime", sa.String(64)),  # NULL: every runtime
        sa.Column("metric", sa.String(128)),  # NULL: every metric
        sa.Column("commit_sha", sa.String(64), nullable=False),  # the first commit of the new level (a prefix is fine)
        sa.Column("note", sa.Text),
        sa.Column("acked_unix", sa.Float, nullable=False),
    )
    return md


_TABLES = ("runs", "measurements", "metrics", "acks")


def tables():  # type: ignore[no-untyped-def]
    """``{name: Table}`` of the current schema."""
    md = _metadata()
    return {name: md.tables[name] for name in ("schema_version", *_TABLES, "measurement_samples")}


def _migration_1(conn: Connection) -> None:
    """Runs, measurements, their metrics, and acknowledged change points."""
    md = _metadata()
    md.create_all(conn, tables=[md.tables[name] for name in _TABLES])


def _migration_2(conn: Connection) -> None:
    """Per-measurement raw samples and per-process statistics, so baselines can be written from the history."""
    _metadata().tables["measurement_samples"].create(conn)


#: the ordered migrations; the database's version is how many have run. Append, never edit or reorder.
MIGRATIONS: list[Callable[[Connection], None]] = [_migration_1, _migration_2]


def migrate(engine: Engine) -> int:
    """Bring the schema to the newest version; returns it. Safe with several processes doing it at once."""
    sa = _sa()
    with locked_write(engine) as conn:
        table = _metadata().tables["schema_version"]
        table.create(conn, checkfirst=True)
        version = conn.execute(sa.select(sa.func.max(table.c.version))).scalar() or 0
        if version > len(MIGRATIONS):
            raise HistoryError(f"{redact(str(engine.url))}: schema version {version} was written by a newer "
                               f"edgeperf (this one knows {len(MIGRATIONS)}); upgrade pytest-edgeperf")
        for number in range(version + 1, len(MIGRATIONS) + 1):
            MIGRATIONS[number - 1](conn)
            conn.execute(sa.delete(table))
            conn.execute(sa.insert(table).values(version=number))
        return len(MIGRATIONS)


# ---- connecting and writing -----------------------------------------------------------------------------------


def connect(url: str, *, create: bool = True) -> Engine:
    """An engine on ``url`` (from ``resolve_url``) with the schema migrated; HistoryError if it cannot be reached."""
    sa = _sa()
    kwargs: dict[str, object] = {}
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            if not create and not Path(path).exists():
                raise HistoryError(f"{path}: no history database (record runs with --edgeperf-history or "
                                   "edgeperf history add)")
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise HistoryError(f"{path}: cannot create its directory ({exc.strerror or exc})") from None
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        kwargs["connect_args"] = {"connect_timeout": 10}
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(url, **kwargs)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise HistoryError(f"history URL {redact(url)!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        _sqlite_pragmas(engine)
    try:
        migrate(engine)
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise HistoryError(f"history {redact(url)}: cannot open ({one_line(exc)})") from None
    return engine


def one_line(exc: BaseException) -> str:
    """A driver error's first line (drivers add SQL, parameters and a link on later lines)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}".strip()


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL (readers never block the writer), a busy timeout, foreign keys; transactions begun by us, not pysqlite."""
    sa = _sa()

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # let BEGIN IMMEDIATE below take the write lock up front
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")


@contextmanager
def locked_write(engine: Engine) -> Iterator[Connection]:
    """One write transaction that holds the database's write lock from its start (commits on success)."""
    sa = _sa()
    with engine.connect() as conn:
        conn.info["write"] = True
        try:
            with conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITE_LOCK})
                yield conn
        finally:
            conn.info["write"] = False


def write_with_retry(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one locked write transaction, retrying a lost lock race; nothing is half-written."""
    sa = _sa()
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            with locked_write(engine) as conn:
                return work(conn)
        except sa.exc.OperationalError as exc:
            transient = "locked" in str(exc).lower() or "busy" in str(exc).lower() or "serializ" in str(exc).lower()
            if not transient or attempt == WRITE_ATTEMPTS:
                raise
            time.sleep(min(2.0, 0.05 * 2 ** attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")
