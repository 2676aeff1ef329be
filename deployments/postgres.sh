#!/usr/bin/env bash
# The Prefect server's database for many workers: PostgreSQL (Debian: apt-get install -y postgresql).
# SQLite, the default, locks under many workers reporting at once ("database is locked").
#   deployments/postgres.sh start [PORT]   # creates the cluster once, starts it, prints its URL
#   deployments/postgres.sh stop [PORT]
#   deployments/postgres.sh drop [PORT]    # stop it and delete it, runs and all
# Only the Prefect server connects to it: it listens on 127.0.0.1 alone, with a password made at
# creation. Its folder: /var/lib/postgresql/transcribe-all-PORT as root (the server runs as the
# `postgres` user), else ~/.local/state/transcribe-all/postgres-PORT.
set -euo pipefail
action=${1:-} port=${2:-5433}
[[ $action =~ ^(start|stop|drop)$ ]] || { echo "usage: $0 start|stop|drop [PORT]" >&2; exit 2; }
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $bin/initdb ]] || { echo "PostgreSQL is missing: apt-get install -y postgresql" >&2; exit 2; }

if [[ $(id -u) == 0 ]]; then
  dir=/var/lib/postgresql/transcribe-all-$port
  as_owner() { runuser -u postgres -- "$@"; }
else
  dir=${XDG_STATE_HOME:-$HOME/.local/state}/transcribe-all/postgres-$port
  as_owner() { "$@"; }
fi

if [[ $action == stop ]]; then
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  exit 0
elif [[ $action == drop ]]; then
  if [[ -d $dir/data ]] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
  fi
  rm -rf "$dir"
  exit 0
fi

if [[ ! -s $dir/data/PG_VERSION ]]; then
  as_owner mkdir -p -m 700 "$dir"
  as_owner bash -c "umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' > '$dir/password'"
  as_owner "$bin/initdb" -D "$dir/data" -U prefect --auth=scram-sha-256 --pwfile="$dir/password" -E UTF8 \
    >/dev/null
fi
if ! as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null; then
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k '$dir'" start >/dev/null
fi
password=$(as_owner cat "$dir/password")
export PGPASSWORD=$password
if [[ -z $("$bin/psql" -h 127.0.0.1 -p "$port" -U prefect -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'prefect'") ]]; then
  "$bin/createdb" -h 127.0.0.1 -p "$port" -U prefect prefect
fi
echo "postgresql+asyncpg://prefect:$password@127.0.0.1:$port/prefect"
