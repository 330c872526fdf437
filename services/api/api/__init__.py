"""The example HTTP JSON API. It only enqueues jobs by task id, signed with
JOBS_SECRET_KEY; it never imports or runs task code. Run it with `python3 -m api`."""
