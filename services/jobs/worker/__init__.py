"""The jobs worker: claims jobs from the SQLite queue and runs the task registered
under each job's task id (services/jobs/tasks/*.py). Run it with `python3 -m worker`."""
