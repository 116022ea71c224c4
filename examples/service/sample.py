"""The demo's sample database: deterministic, written by Python's sqlite3.

Three related tables (authors, books, reviews), 100,000+ rows in all, indexes on text and
integer columns, a `WITHOUT ROWID` table, and long texts and blobs that need overflow pages.
The same seed always gives the same rows, so tests and benchmarks can rely on them.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
from pathlib import Path

__all__ = ["DEFAULT_ROWS", "create_sample_database"]

DEFAULT_ROWS = 100_000

_WORDS = (
    "async state machine completion page cursor btree overflow index record varint "
    "header journal frame checksum salt schema column collation rowid keyset export "
    "stream upload cancel timeout backpressure worker loop driver yield"
).split()


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def create_sample_database(
    path: str | os.PathLike[str], *, rows: int = DEFAULT_ROWS, seed: int = 7
) -> Path:
    """Write the sample database at `path` (replacing nothing: raises `FileExistsError` if it
    exists) and return its path. `rows` is the number of books; authors and reviews scale
    with it."""
    target = Path(path)
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    rng = random.Random(seed)
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    conn = sqlite3.connect(tmp)
    try:
        conn.executescript(
            """
            PRAGMA page_size = 4096;
            CREATE TABLE authors (
                id INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                country TEXT,
                born INTEGER
            );
            CREATE TABLE books (
                id INTEGER PRIMARY KEY,
                author_id INTEGER NOT NULL REFERENCES authors(id),
                title TEXT NOT NULL COLLATE NOCASE,
                year INTEGER,
                price REAL,
                summary TEXT
            );
            CREATE INDEX books_title ON books(title);
            CREATE INDEX books_year ON books(year, price);
            CREATE TABLE reviews (
                book_id INTEGER NOT NULL REFERENCES books(id),
                reviewer TEXT NOT NULL,
                stars INTEGER NOT NULL,
                body TEXT,
                cover BLOB,
                PRIMARY KEY (book_id, reviewer)
            ) WITHOUT ROWID;
            CREATE INDEX reviews_stars ON reviews(stars);
            """
        )
        authors = max(1, rows // 50)
        countries = ["NZ", "FI", "JP", "BR", "KE", "DE", "CA", "IN", None]
        conn.executemany(
            "INSERT INTO authors VALUES (?, ?, ?, ?)",
            (
                (i, f"Author {i:05d}", rng.choice(countries), rng.randint(1900, 2005))
                for i in range(1, authors + 1)
            ),
        )

        def books() -> object:
            for i in range(1, rows + 1):
                # Every 500th summary is long enough to spill onto overflow pages.
                long = i % 500 == 0
                yield (
                    i,
                    rng.randint(1, authors),
                    f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS)} {i}",
                    rng.randint(1950, 2026),
                    round(rng.uniform(1, 120), 2),
                    _sentence(rng, 2000 if long else rng.randint(3, 12)),
                )

        conn.executemany("INSERT INTO books VALUES (?, ?, ?, ?, ?, ?)", books())  # type: ignore[arg-type]

        def reviews() -> object:
            for book in range(1, rows + 1, 10):
                for reviewer in rng.sample(["ana", "bo", "chen", "dev", "eve"], 2):
                    cover = rng.randbytes(9000) if book % 1000 == 1 else None
                    yield (book, reviewer, rng.randint(1, 5), _sentence(rng, 8), cover)

        conn.executemany("INSERT INTO reviews VALUES (?, ?, ?, ?, ?)", reviews())  # type: ignore[arg-type]
        conn.commit()
    finally:
        conn.close()
    os.replace(tmp, target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description="Write the demo's sample SQLite database.")
    parser.add_argument("path", help="where to write it (must not exist)")
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="number of books")
    args = parser.parse_args()
    print(create_sample_database(args.path, rows=args.rows))


if __name__ == "__main__":
    main()
