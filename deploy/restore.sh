#!/bin/sh
# Restore a backup made by deploy/backup.sh into a fresh, empty database and uploads folder.
#
#   deploy/restore.sh BACKUP_DIR
#
# DATABASE_URL names the new database (create it first: `createdb`, or a fresh PostgreSQL
# volume); MEDIA_ROOT (default $BANDITORE_VAR_DIR/media, else var/media) receives the uploads.
# It refuses a database that already has tables: restoring over live data would mix two states.
# Afterwards run `manage.py migrate` (a no-op for a backup of the same release, the schema steps
# for an older one). README, Deploying → Backups.
set -eu
src="${1:?usage: deploy/restore.sh BACKUP_DIR (a folder made by deploy/backup.sh)}"
: "${DATABASE_URL:?DATABASE_URL must name the fresh database to restore into}"
media="${MEDIA_ROOT:-${BANDITORE_VAR_DIR:-var}/media}"
url="${DATABASE_URL%%\?*}"
(cd "$src" && sha256sum --check --quiet SHA256SUMS)
tables=$(psql --no-psqlrc --tuples-only --no-align --dbname "$url" \
  --command "select count(*) from information_schema.tables where table_schema = 'public'")
if [ "$tables" != "0" ]; then
  echo "the database already has $tables tables: restore into a fresh one (createdb)" >&2
  exit 1
fi
# One transaction: a restore that fails half-way leaves the database empty, not half full.
pg_restore --no-owner --no-privileges --exit-on-error --single-transaction \
  --dbname "$url" "$src/database.dump"
mkdir -p "$media"
tar -C "$media" -xzf "$src/media.tar.gz"
echo "restored $src into the database and $media"
