"""The bare pipeline of docs perf-limits §6, as processes of the same kind and number as the
product's, for `bench/send.py` to run side by side with it.

- two sender processes: claim 200 queued deliveries (UPDATE … FOR UPDATE SKIP LOCKED), POST
  each to the fake with the product's HTTP client alone (no limiter, window, tier or ledger),
  write the wamids back in one UPDATE;
- the web: gunicorn with 2 workers serving a minimal Django view (`bench.bare_app`) that
  checks the signature, parses the statuses and stores them (RPUSH to a Redis list);
- one processor: pops up to 500 stored statuses and applies them in one UPDATE … FROM unnest.
Nothing of this is durable or exact: it is the floor the product is compared with.
"""

from __future__ import annotations

SENDER = """
import os, django, psycopg
django.setup()
from channel.graph.client import GraphClient
url, post_id = os.environ["DATABASE_URL"], int(os.environ["BARE_POST"])
client = GraphClient(base_url=os.environ["WHATSAPP_GRAPH_URL"])
# go
with psycopg.connect(url, autocommit=True) as conn:
    while True:
        rows = conn.execute(
            '''UPDATE subscribers_delivery d SET status = 'sending' FROM subscribers_subscriber s
               WHERE d.id IN (SELECT id FROM subscribers_delivery WHERE post_id = %s
                              AND status = 'queued' ORDER BY id LIMIT 200
                              FOR UPDATE SKIP LOCKED)
                 AND s.id = d.subscriber_id
               RETURNING d.id, s.wa_id''', [post_id]).fetchall()
        if not rows:
            break
        results = client.send_paced([
            {"messaging_product": "whatsapp", "to": wa_id, "type": "text",
             "text": {"body": "Benchmark message"}} for _, wa_id in rows])
        done = [(i, r.wamid) for (i, _), r in zip(rows, results) if r.ok]
        conn.execute(
            '''UPDATE subscribers_delivery d SET status = 'sent', wa_message_id = v.w,
                      sent_at = now()
               FROM unnest(%s::bigint[], %s::text[]) v(i, w) WHERE d.id = v.i''',
            [[i for i, _ in done], [w for _, w in done]])
"""

PROCESSOR = """
import os, time, psycopg, redis
url = os.environ["DATABASE_URL"]
queue = redis.Redis.from_url(os.environ["REDIS_URL"])
RANK = "CASE v.s WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 ELSE 0 END"
CURRENT = ("CASE d.status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3 "
           "ELSE 0 END")
with psycopg.connect(url, autocommit=True) as conn:
    while True:
        items = queue.lpop("bare:statuses", 500)
        if not items:
            time.sleep(0.05)
            continue
        pairs = [item.decode().split("|", 1) for item in items]
        conn.execute(
            f'''UPDATE subscribers_delivery d SET status = v.s
                FROM unnest(%s::text[], %s::text[]) v(w, s)
                WHERE d.wa_message_id = v.w AND {RANK} > {CURRENT}''',
            [[w for w, _ in pairs], [s for _, s in pairs]])
"""


def processes(python: str, web_port: int, web_workers: int) -> dict[str, list[str]]:
    """Commands of the bare web and processor (the senders: `SENDER`, one process each)."""
    return {
        "web": [
            python, "-m", "gunicorn", "bench.bare_app", "--bind", f"127.0.0.1:{web_port}",
            "--workers", str(web_workers), "--log-level", "warning",
        ],
        "processor": [python, "-c", PROCESSOR],
    }  # fmt: skip
