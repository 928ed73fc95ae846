#!/bin/sh
# What the nginx image does at start: each /etc/nginx/templates/NAME.template becomes
# /etc/nginx/conf.d/NAME with the variables of the environment substituted (nginx's own
# lower-case $variables are left alone: only names defined in the environment are replaced).
set -eu
defined=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/${\1}/p' | tr '\n' ' ')
for template in /etc/nginx/templates/*.template; do
  [ -f "$template" ] || continue
  output=/etc/nginx/conf.d/$(basename "$template" .template)
  envsubst "$defined" <"$template" >"$output"
  echo "rendered $template into $output"
done
exec "$@"
