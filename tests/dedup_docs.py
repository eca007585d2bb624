"""Documents for the dedup tests: TEXT_SCHEMA rows with seeded prose and controlled edits."""

from __future__ import annotations

import hashlib
import random

WORDS = [
    f"{stem}{suffix}"
    for stem in ("river", "cloud", "harbor", "copper", "meadow", "violet", "canyon", "falcon")
    for suffix in ("", "s", "ing", "ed", "er", "ly", "ness")
]


def prose(seed: int, n_words: int = 300) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) + str(rng.randint(0, 50)) for _ in range(n_words))


def edit(text: str, fraction: float, seed: int) -> str:
    """Replace a fraction of the words with new ones, spread evenly (a light edit)."""
    words = text.split()
    rng = random.Random(seed)
    step = max(1, round(1 / fraction)) if fraction else len(words) + 1
    for i in range(0, len(words), step):
        words[i] = f"edited{rng.randint(0, 10**9)}"
    return " ".join(words)


def doc(doc_id: str, text: str, karma: int = 5, created: int = 1000, sub: str = "") -> dict:
    return {
        "id": doc_id,
        "url": f"https://example.com/{doc_id}",
        "canonical_url": f"https://example.com/{doc_id}",
        "domain": "example.com",
        "submissions": [
            {
                "id": sub or f"s_{doc_id}",
                "subreddit": f"r{doc_id}",
                "score": karma,
                "created_utc": created,
            }
        ],
        "karma": karma,
        "created_utc": created,
        "title": None,
        "date": None,
        "text": text,
        "language": "en",
        "n_chars": len(text),
        "n_words": len(text.split()),
        "content_hash": hashlib.sha256(text.encode()).hexdigest(),
        "fetch_time": 0,
        "http_status": 200,
        "source": "live",
        "record": "",
    }
