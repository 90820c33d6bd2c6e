"""The embedded synthetic data: deterministic, mixed user kinds, and a planted transfer signal."""
import collections

import numpy as np

from components.ingest import synthetic


def test_deterministic_in_seed():
    cfg = synthetic.SyntheticConfig(num_users=200)
    assert synthetic.generate(cfg) == synthetic.generate(cfg)
    assert synthetic.generate(cfg) != synthetic.generate(synthetic.SyntheticConfig(num_users=200, seed=8))


def _users(rows):
    users = collections.defaultdict(lambda: ([], []))
    for user, item, domain, _ in rows:
        users[user]["xy".index(domain)].append(item)
    return users


def test_mixed_users_and_long_tail():
    users = _users(synthetic.generate(synthetic.SyntheticConfig()))
    kinds = collections.Counter((bool(x), bool(y)) for x, y in users.values())
    assert kinds[(True, True)] > 1000 and kinds[(True, False)] > 400 and kinds[(False, True)] > 400
    lengths = [len(x) for x, _ in users.values() if x]
    assert np.median(lengths) <= 5 and max(lengths) >= 20


def test_cross_domain_transfer_beats_popularity_for_cold_start_users():
    """Predict a user's X items from their Y history only (a cold-start user in X).

    A transfer model (X items that co-occur with the user's Y items among other users)
    must rank the held-out X item far better than popularity, which cannot transfer.
    """
    users = _users(synthetic.generate(synthetic.SyntheticConfig()))
    both = [(u, x, y) for u, (x, y) in users.items() if x and y]
    train, test = both[: len(both) // 2], both[len(both) // 2:]
    popularity = collections.Counter(i for _, x, _ in train for i in x)
    co = collections.defaultdict(collections.Counter)
    for _, x, y in train:
        for j in set(y):
            co[j].update(x)
    hits = {"transfer": 0, "popularity": 0}
    top_pop = [i for i, _ in popularity.most_common(10)]
    for _, x, y in test:
        votes = collections.Counter()
        for j in y:
            votes.update(co[j])
        top = [i for i, _ in votes.most_common(10)]
        hits["transfer"] += x[-1] in top
        hits["popularity"] += x[-1] in top_pop
    assert hits["transfer"] > 2 * hits["popularity"], hits
