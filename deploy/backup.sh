#!/bin/sh
# Back up Banditore: the database (pg_dump, custom format) and the uploads (a tar of MEDIA_ROOT),
# into a new folder DIR/banditore-<UTC time>/ with their SHA-256 sums. Prints that folder.
#
#   deploy/backup.sh [DIR]          (DIR defaults to ./backups)
#
# Reads DATABASE_URL and MEDIA_ROOT (default $BANDITORE_VAR_DIR/media, else var/media) from the
# environment. With deploy/compose.yaml, run it in the app image, which has the PostgreSQL 15
# client (README, Deploying → Backups):
#   docker compose --env-file deploy/env -f deploy/compose.yaml run --rm --no-deps \
#     -v "$PWD/backups:/backups" --entrypoint deploy/backup.sh web /backups
# The dump holds the consent ledger, the council's proof of each citizen's consent: keep the
# backups somewhere else than this machine, encrypted, for as long as the ledger must be kept.
set -eu
dir="${1:-backups}"
: "${DATABASE_URL:?DATABASE_URL must name the database to back up}"
media="${MEDIA_ROOT:-${BANDITORE_VAR_DIR:-var}/media}"
# libpq reads postgres://user:password@host:port/name itself, but not Banditore's own options
# after '?' (conn_max_age).
url="${DATABASE_URL%%\?*}"
out="$dir/banditore-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
umask 077
pg_dump --format=custom --no-owner --no-privileges --file "$out/database.dump" "$url"
if [ -d "$media" ]; then
  tar -C "$media" -czf "$out/media.tar.gz" .
else
  echo "no uploads folder at $media: media.tar.gz is empty" >&2
  tar -czf "$out/media.tar.gz" -T /dev/null
fi
(cd "$out" && sha256sum database.dump media.tar.gz > SHA256SUMS)
echo "$out"
