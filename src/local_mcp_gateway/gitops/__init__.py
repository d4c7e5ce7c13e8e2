"""GitOps review of a configuration: `plan`, per-profile lock files enforced at run time, the effective config.

    canonical   RFC 8785 (JSON Canonicalization Scheme) bytes and their SHA-256
    surface     what a profile's clients see (tools, prompts, resource templates) as plain definitions
    lockfile    profiles/<slug>.lock.json: read (with clear errors), write, compare
    enforce     the running gateway's side: which tools to hide or servers to block, and the status flags
    poison      heuristics for definitions that look poisoned
    diff        word diffs of descriptions, JSON-pointer paths of schema changes
    source      a configuration from a folder or a git ref (git archive into a temporary folder); git commit
    plan        base vs head: servers added, removed, restarted; tools added, removed, changed
    plan_render the plan as text or Markdown
    live        connect to a profile's upstreams (like the gateway) and take their listings
    effective   the effective configuration (`config`), like `docker compose config`
    report      `validate --format json|sarif`
    status      what the gateway keeps per generation (lock guards, git commit) and shows in /status

Imported lazily by the commands and by the gateway only where a lock is in use.
"""
