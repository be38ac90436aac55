"""Background work: durable jobs in the database, carried to workers by rq over Redis.

- `queue`     the jobs table: schedule, claim with a lease, finish, retry with backoff, sweep
- `runner`    run jobs by id: claimed together, deliveries as one batch (the same code in an rq worker and in-process)
- `handlers`  what each kind of job other than delivery does (deliveries: `engine.delivery`)
- `dispatch`  how new jobs reach a runner: rq (production) or in-process (demo, tests)
- `worker`    the `changeflow worker` process: rq worker + scheduler + sweep
"""
