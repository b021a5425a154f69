# Sized for a 2-core machine: two processes, a few threads each; webhooks must answer fast.
#
# Slow clients: production puts a buffering proxy in front (the compose file's Caddy), which
# receives whole requests before it forwards them, so these threads only ever see fast reads.
# Without it, a client may dribble its request: gunicorn's gthread worker waits for the first
# bytes of a request in its poller, not in a thread (a thread that gets no data for 5 s hands the
# connection back), and the webhook intake cuts a body off after BANDITORE_WEBHOOK_BODY_SECONDS
# (channel/webhook/body_deadline.py). The limits below keep headers small, so reading them is
# quick once they come.
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
# Threads mostly wait on PostgreSQL, Redis or a client: cheap to have more than cores.
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# Kept-alive connections wait in the poller, not in a thread; short, so idle ones go.
keepalive = 5
timeout = 30
graceful_timeout = 20
# Request line and headers: what a browser, Meta or the API clients send fits well within these.
limit_request_line = 4094
limit_request_fields = 64
limit_request_field_size = 8190
accesslog = "-"
# The path without its query string, and no referer: query strings carry the webhook's verify
# token (the handshake) and phone numbers (admin searches), which must never reach a log.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(L)ss "%(a)s"'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
