#!/bin/sh
# One image, one role per container: web | worker <pool> | beat | migrate | health <role>.
# `worker replies|sends|housekeeping` serves the queue of that name (CELERY_TASK_ROUTES in
# deploy/settings.py); CELERY_CONCURRENCY overrides the pool's number of processes.
# `health web|worker <pool>|beat` is the container's health check (deploy/probes.py).
# Outside a container (tests/deploy/test_smoke.py) the same roles run from a checkout.
set -eu
role="${1:-web}"
case "$role" in
  web)
    python manage.py collectstatic --noinput >/dev/null
    exec gunicorn deploy.wsgi --config deploy/gunicorn.conf.py
    ;;
  worker)
    # The pools of WORKER_POOLS in deploy/__main__.py (why each is what it is: see there).
    pool="${2:?worker needs a pool: replies, sends or housekeeping}"
    case "$pool" in
      replies) kind=threads concurrency=8 niceness=0 ;;
      sends) kind=prefork concurrency=2 niceness=10 ;;
      housekeeping) kind=prefork concurrency=1 niceness=0 ;;
      *) echo "unknown worker pool: $pool (replies, sends or housekeeping)" >&2; exit 2 ;;
    esac
    exec nice -n "$niceness" celery -A deploy worker --loglevel "${LOG_LEVEL:-INFO}" \
      --queues "$pool" --pool "$kind" --concurrency "${CELERY_CONCURRENCY:-$concurrency}" \
      --hostname "$pool@%h"
    ;;
  beat)
    # The schedule lives in the database (django-celery-beat); the file only holds beat's own
    # state, so a temporary place will do.
    exec celery -A deploy beat --loglevel "${LOG_LEVEL:-INFO}" \
      --schedule "${TMPDIR:-/tmp}/celerybeat-schedule"
    ;;
  migrate)
    exec python manage.py migrate --noinput
    ;;
  health)
    shift
    exec python -m deploy.probes "$@"
    ;;
  *)
    exec "$@"
    ;;
esac
