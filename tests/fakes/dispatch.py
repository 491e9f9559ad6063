"""A recording dispatcher standing in for the broker in scheduler and liveness tests."""


class Dispatched(list):
    """Stands in for the broker: remembers which run ids were dispatched."""

    def __call__(self, run_ids) -> int:
        ids = list(run_ids)
        self.extend(ids)
        return len(ids)
