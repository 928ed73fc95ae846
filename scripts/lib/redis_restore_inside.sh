#!/bin/sh
# Puts an RDB snapshot (standard input) in place as the data a *stopped* Redis loads on start.
# restore.sh runs it inside a one-off container of the redis service
# ('docker compose run --rm --no-deps -T --entrypoint sh redis -c "<this>"'), which mounts the
# service's data volume; plain POSIX sh, for the alpine and debian images alike.
#
# usage: redis_restore_inside.sh DIR DBFILENAME APPENDONLY(yes|no) APPENDDIRNAME APPENDFILENAME STAMP < snapshot.rdb
#
# With appendonly off Redis loads DIR/DBFILENAME. With appendonly on (Redis 7 multi-part AOF)
# it loads only the AOF directory, ignoring DBFILENAME, so a new AOF directory is written whose
# manifest names the snapshot as its base file. The files it replaces are kept beside,
# renamed *.before-restore-STAMP.
set -eu
dir=$1 dbfile=$2 aof=$3 aofdir=$4 aofname=$5 stamp=$6
cd "$dir"
incoming=".restore-$stamp.rdb"
cat >"$incoming"
if [ "$(head -c 5 "$incoming")" != REDIS ]; then
  rm -f "$incoming"
  echo "the snapshot did not arrive intact (no REDIS header)" >&2
  exit 1
fi
if [ -e "$dbfile" ]; then mv "$dbfile" "$dbfile.before-restore-$stamp"; fi
if [ "$aof" = yes ]; then
  if [ -z "$aofdir" ] || [ -z "$aofname" ]; then
    rm -f "$incoming"
    echo "appendonly is on but appenddirname/appendfilename are unknown (Redis older than 7?)" >&2
    exit 1
  fi
  if [ -e "$aofdir" ]; then mv "$aofdir" "$aofdir.before-restore-$stamp"; fi
  mkdir "$aofdir"
  cp "$incoming" "$aofdir/$aofname.1.base.rdb"
  printf 'file %s seq 1 type b\n' "$aofname.1.base.rdb" >"$aofdir/$aofname.manifest"
fi
mv "$incoming" "$dbfile"
if [ "$(id -u)" = 0 ] && id redis >/dev/null 2>&1; then
  chown redis "$dbfile"
  if [ "$aof" = yes ]; then chown -R redis "$aofdir"; fi
fi
echo "placed the snapshot as $dir/$dbfile$([ "$aof" = yes ] && echo " and as the base of $dir/$aofdir"); previous files kept as *.before-restore-$stamp"
