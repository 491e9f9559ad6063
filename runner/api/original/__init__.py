"""The original jeeves-runner's HTTP API at the root paths, for its plugin and its CLI.

A thin shape layer: every route calls the same domain functions as ``/api/`` and
only renames fields and envelopes to what the original answered (its
``packages/service/src/api/``). ``/api/`` stays this runner's own, with OpenAPI.
"""
