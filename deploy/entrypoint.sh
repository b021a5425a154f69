#!/bin/sh
# One image, one role per container: web | worker | beat | migrate | fakegraph.
set -eu
role="${1:-web}"
case "$role" in
  web)
    python manage.py collectstatic --noinput >/dev/null
    exec gunicorn deploy.wsgi --config deploy/gunicorn.conf.py
    ;;
  worker)
    exec celery -A deploy worker --loglevel "${LOG_LEVEL:-INFO}" \
      --queues "${CELERY_WORKER_QUEUES:-default}" --concurrency "${CELERY_CONCURRENCY:-2}"
    ;;
  beat)
    exec celery -A deploy beat --loglevel "${LOG_LEVEL:-INFO}" --schedule /tmp/celerybeat-schedule
    ;;
  migrate)
    exec python manage.py migrate --noinput
    ;;
  *)
    exec "$@"
    ;;
esac
