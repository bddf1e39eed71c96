"""``hfdinterp video``: the pure planner, the stage runner (threads, bounded queues) and the executor
that calls the interpolator; sources, sinks and timing are ``hfdinterp.io``'s."""
