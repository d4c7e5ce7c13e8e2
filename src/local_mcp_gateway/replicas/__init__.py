"""What several gateway processes need to run as replicas of one another.

- `gitsync`: a configuration published by a symlink swap (git-sync): which links to watch, which commit is served;
- `keycheck`: every replica sharing `state/` holds the same age key (refuse to start otherwise);
- `lock`: a lock file in `state/` with a lease, so one replica refreshes a token while the others wait and reuse it.
"""
