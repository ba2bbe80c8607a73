"""Similar-incident search at 100,000 embeddings of 3,072 dimensions.

Creates the database `kuberca_bench_search` on the embedded PostgreSQL (never
the development or test data), migrates it, loads clustered synthetic vectors
(fixed seed) with COPY, builds the HNSW index once after the load, then
reports the index build time, search latency through the API (a live gunicorn
whose Gemini is a local stand-in answering the query vectors), and recall@10
against an exact scan measured in the same run. Drops the database at the end
unless --keep. Run: `.venv/bin/python bench/search.py` (about 5-10 minutes).
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import numpy as np
import psycopg
import requests

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))

from kuberca.testing import live  # noqa: E402

DATABASE = "kuberca_bench_search"
MODEL = "gemini-embedding-001"
LATENT = 64  # intrinsic dimension of the synthetic embeddings


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


class Vectors:
    """Clustered unit vectors: a few thousand topics in a 64-dimensional space,
    projected to `dims` with noise, like real text embeddings."""

    def __init__(self, *, dims: int, clusters: int, seed: int) -> None:
        space = np.random.default_rng(seed)
        self.dims = dims
        self.projection = space.standard_normal(
            (LATENT, dims), dtype=np.float32
        ) / np.sqrt(LATENT)
        self.centers = space.standard_normal((clusters, LATENT), dtype=np.float32)
        # Rows and queries draw from their own streams, so --reuse of a kept
        # database gets the same queries without generating the rows again.
        self.rows = np.random.default_rng(seed + 1)
        self.queries = np.random.default_rng(seed + 2)

    def make(self, n: int, rng: np.random.Generator) -> np.ndarray:
        which = rng.integers(0, len(self.centers), n)
        latent = self.centers[which] + 0.35 * rng.standard_normal(
            (n, LATENT), dtype=np.float32
        )
        vectors = latent @ self.projection
        vectors += 0.05 * rng.standard_normal((n, self.dims), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors


def recreate_database(admin_uri: str) -> None:
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')


def drop_database(admin_uri: str) -> None:
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def database_rows(info) -> int:  # noqa: ANN001
    try:
        with psycopg.connect(
            dbname=DATABASE, user="postgres", host=str(info.socket_dir), port=info.port
        ) as conn:
            return conn.execute(
                "SELECT count(*) FROM embeddings_incidentembedding"
            ).fetchone()[0]
    except psycopg.Error:
        return 0


def load_incidents(conn: psycopg.Connection, rows: int) -> list[str]:
    """COPY `rows` resolved incidents (1% hidden), every column of the model."""
    from incidents.models import Incident

    now = datetime.now(UTC)
    fields = Incident._meta.concrete_fields
    columns = [field.column for field in fields]
    ids = [f"INC-{n:016x}" for n in range(rows)]
    with conn.cursor() as cursor:
        statement = f"COPY incidents_incident ({', '.join(columns)}) FROM STDIN"  # noqa: S608
        with cursor.copy(statement) as copy:
            for n, incident_id in enumerate(ids):
                fired = now - timedelta(minutes=rows - n)
                values = {field.attname: field.get_default() for field in fields}
                values.update(
                    incident_id=incident_id,
                    title=f"Synthetic incident {n}",
                    status="resolved",
                    fired_at=fired,
                    resolved_at=fired + timedelta(minutes=5),
                    resolved_by="alertmanager",
                    analysis_summary=f"Summary of synthetic incident {n}",
                    is_enabled=n % 100 != 0,
                    last_alert_at=fired,
                    summary_status="done",
                    created_at=fired,
                    updated_at=fired,
                )
                copy.write_row([values[field.attname] for field in fields])
    conn.commit()
    return ids


def load_embeddings(
    conn: psycopg.Connection, ids: list[str], vectors: Vectors, chunk: int = 5000
) -> np.ndarray:
    from pgvector.psycopg import register_vector

    register_vector(conn)
    now = datetime.now(UTC)
    kept = np.empty((len(ids), vectors.dims), dtype=np.float32)
    statement = (
        "COPY embeddings_incidentembedding"
        " (incident_id, incident_summary, embedding, model, created_at)"
        " FROM STDIN WITH (FORMAT BINARY)"
    )
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(["text", "text", "vector", "text", "timestamptz"])
        for start in range(0, len(ids), chunk):
            block = vectors.make(min(chunk, len(ids) - start), vectors.rows)
            kept[start : start + len(block)] = block
            for offset, vector in enumerate(block):
                n = start + offset
                copy.write_row(
                    [ids[n], f"Summary of synthetic incident {n}", vector, MODEL, now]
                )
    conn.commit()
    return kept


def fake_gemini(queries: np.ndarray):  # noqa: ANN201
    """A local Gemini answering 'bench query N' with the Nth query vector."""
    from kuberca.testing.http import LocalHTTPServer, RecordedRequest, Reply

    answers = {
        f"bench query {n}": json.dumps(
            {"embeddings": [{"values": [round(float(x), 7) for x in vector]}]}
        ).encode()
        for n, vector in enumerate(queries)
    }

    def respond(request: RecordedRequest) -> Reply:
        text = request.json()["requests"][0]["content"]["parts"][0]["text"]
        return Reply(200, answers[text])

    return LocalHTTPServer(respond)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=3072)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--exact-queries", type=int, default=40)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--maintenance-work-mem", default="1GB")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure again on a database kept by --keep (no load, no build)",
    )
    args = parser.parse_args()

    from kuberca import embedded_db

    # The development server's data folder; only DATABASE is created in it.
    server = embedded_db.start(BASE / "var" / "pgdata")
    info = server.get_postmaster_info()
    admin_uri = server.get_uri()
    reuse = args.reuse and database_rows(info) == args.rows
    if not reuse:
        recreate_database(admin_uri)
    host = quote(str(info.socket_dir), safe="")
    url = f"postgresql://postgres@{host}:{info.port or 5432}/{DATABASE}"
    secret = secrets.token_hex(32)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": secret,
        "JWT_SECRET": secret,
        "JWT_ACCESS_TTL": "1h",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "EMBEDDING_DIMENSIONS": str(args.dims),
        "EMBEDDING_MODEL": MODEL,
        "GEMINI_API_KEY": "bench-key",
        "AGENT_ENABLED": "false",
    }
    gunicorn = gemini = None
    try:
        if not reuse:
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "-v0"],
                cwd=BASE,
                env=env,
                check=True,
            )
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kuberca.settings")
        import django

        django.setup()
        from django.db import connection

        from embeddings import schema
        from embeddings.services import nearest_sql, set_scan_options

        conn = psycopg.connect(
            dbname=DATABASE, user="postgres", host=str(info.socket_dir), port=info.port
        )
        say(
            f"search bench: rows={args.rows} dims={args.dims}"
            f" clusters={args.clusters} seed={args.seed}"
        )
        vectors = Vectors(dims=args.dims, clusters=args.clusters, seed=args.seed)
        if reuse:
            say("reusing the kept database: no load, no index build")
        else:
            conn.execute(schema.drop_index_sql())
            conn.commit()

            started = time.monotonic()
            ids = load_incidents(conn, args.rows)
            incidents_seconds = time.monotonic() - started
            started = time.monotonic()
            load_embeddings(conn, ids, vectors)
            load_seconds = time.monotonic() - started
            say(
                f"load: incidents {incidents_seconds:.1f}s, embeddings generated"
                f" and COPYed in {load_seconds:.1f}s"
                f" ({args.rows / load_seconds:.0f} rows/s)"
            )

            # One index build after the bulk load: parallel_workers on the table
            # lets the build use a second process; 1 GiB keeps the graph in memory.
            conn.execute(f"ALTER TABLE {schema.TABLE} SET (parallel_workers = 2)")
            conn.execute(
                "SELECT set_config('maintenance_work_mem', %s, false),"
                " set_config('max_parallel_maintenance_workers', '2', false)",
                [args.maintenance_work_mem],
            )
            started = time.monotonic()
            conn.execute(schema.create_index_sql(args.dims))
            conn.commit()
            build_seconds = time.monotonic() - started
            conn.execute(f"ANALYZE {schema.TABLE}")
            conn.execute("ANALYZE incidents_incident")
            conn.commit()
            say(
                f"index build: {build_seconds:.1f}s"
                f" (hnsw m={schema.HNSW_M}"
                f" ef_construction={schema.HNSW_EF_CONSTRUCTION},"
                f" maintenance_work_mem={args.maintenance_work_mem},"
                " parallel_workers=2)"
            )

        queries = vectors.make(args.queries, vectors.queries)
        # Exact scan (full-precision vectors, no index) and the HNSW statement,
        # both straight in SQL, on the first --exact-queries queries.
        exact_ms, hnsw_ms, truth = [], [], []
        with connection.cursor() as cursor:
            sql, params = nearest_sql(model=MODEL, limit=10, vector=queries[0])
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            uses_index = f"Index Scan using {schema.INDEX}" in plan
            for vector in queries[: args.exact_queries]:
                literal = "[" + ",".join(f"{x:.7g}" for x in vector) + "]"
                with connection.cursor() as exact:
                    exact.execute("BEGIN")
                    exact.execute("SET LOCAL enable_indexscan = off")
                    exact.execute("SET LOCAL enable_bitmapscan = off")
                    tick = time.perf_counter()
                    exact.execute(
                        "SELECT e.incident_id FROM embeddings_incidentembedding e"
                        " JOIN incidents_incident i ON i.incident_id = e.incident_id"
                        " WHERE e.model = %s AND i.is_enabled"
                        " ORDER BY e.embedding <=> %s::vector LIMIT 10",
                        [MODEL, literal],
                    )
                    truth.append([row[0] for row in exact.fetchall()])
                    exact_ms.append((time.perf_counter() - tick) * 1000)
                    exact.execute("COMMIT")
            # After the exact scans, which push the index out of the cache.
            for vector in queries:
                sql, params = nearest_sql(model=MODEL, limit=10, vector=vector)
                cursor.execute("BEGIN")
                tick = time.perf_counter()
                set_scan_options(cursor, limit=10)
                cursor.execute(sql, params)
                cursor.fetchall()
                hnsw_ms.append((time.perf_counter() - tick) * 1000)
                cursor.execute("COMMIT")
        say(f"planner picks the HNSW index unaided: {'yes' if uses_index else 'NO'}")
        say(
            f"exact scan in SQL: p50 {statistics.median(exact_ms):.0f} ms,"
            f" p95 {percentile(exact_ms, 0.95):.0f} ms (n={len(exact_ms)})"
        )
        say(
            f"HNSW statement in SQL: p50 {statistics.median(hnsw_ms):.1f} ms,"
            f" p95 {percentile(hnsw_ms, 0.95):.1f} ms"
        )

        # The API, on a live gunicorn whose Gemini answers the query vectors.
        from django.contrib.auth import get_user_model
        from rest_framework_simplejwt.tokens import RefreshToken

        user, _ = get_user_model().objects.get_or_create(username="bench")
        token = str(RefreshToken.for_user(user).access_token)
        connection.close()
        conn.close()
        gemini = fake_gemini(queries)
        port = live.free_port()
        gunicorn = live.spawn(
            live.gunicorn_command(
                port=port, workers=2, config=False, extra=["--log-level", "warning"]
            ),
            env={**env, "GEMINI_API_URL": gemini.url},
        )
        base = f"http://127.0.0.1:{port}"
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        try:
            live.wait_healthy(base, gunicorn, timeout=60, request_timeout=10)
        except RuntimeError as exc:
            raise SystemExit(str(exc)) from None

        def search(n: int, limit: int = 10) -> tuple[float, dict]:
            tick = time.perf_counter()
            response = session.post(
                f"{base}/api/v1/embeddings/search",
                json={"query": f"bench query {n}", "limit": limit},
                timeout=30,
            )
            elapsed = (time.perf_counter() - tick) * 1000
            response.raise_for_status()
            return elapsed, response.json()

        for n in range(min(20, args.queries)):  # warm both workers
            search(n)
        api_ms, recalls = [], []
        for n in range(args.queries):
            elapsed, body = search(n)
            assert body["model"] == MODEL, body["model"]
            api_ms.append(elapsed)
            if n < len(truth):
                found = {hit["incident_id"] for hit in body["results"]}
                recalls.append(len(found & set(truth[n])) / len(truth[n]))
        _, wide = search(0, limit=100)
        recall = statistics.mean(recalls)
        p95 = percentile(api_ms, 0.95)
        ratio = statistics.median(exact_ms) / statistics.median(hnsw_ms)
        api_ratio = statistics.median(exact_ms) / statistics.median(api_ms)
        say(
            f"API search (limit 10, n={len(api_ms)}): p50"
            f" {statistics.median(api_ms):.1f} ms, p95 {p95:.1f} ms,"
            f" p99 {percentile(api_ms, 0.99):.1f} ms"
        )
        say(f"recall@10 vs exact scan: {recall:.3f} (n={len(recalls)})")
        say(
            f"exact scan is {ratio:.0f}x slower than the HNSW statement"
            f" ({api_ratio:.0f}x slower than the whole API call), by median"
        )
        say(f"API search with limit 100 returns {len(wide['results'])} results")
        checks = [
            ("API p95 under 25 ms", p95 < 25),
            ("recall@10 >= 0.98", recall >= 0.98),
            ("exact scan >= 100x slower than HNSW", ratio >= 100),
            ("limit 100 filled", len(wide["results"]) == 100),
            ("planner uses the index", uses_index),
        ]
        for name, passed in checks:
            say(f"  {'PASS' if passed else 'FAIL'}  {name}")
    finally:
        if gunicorn is not None:
            live.stop(gunicorn, timeout=20)
        if gemini is not None:
            gemini.stop()
        if not (args.keep or args.reuse):
            try:
                from django.db import connection as django_connection

                django_connection.close()
            except Exception:  # noqa: BLE001, S110
                pass
            drop_database(admin_uri)


if __name__ == "__main__":
    main()
