#!/bin/sh
# Log in to mysite's admin through nginx as a browser does (the CSRF cookie
# and the form's token, then the credentials) and print the session cookie.
# Env: ADMIN_PASSWORD.
set -eu
jar=$(mktemp)
trap 'rm -f "$jar"' EXIT
curl="curl --silent --show-error --fail --max-time 10 --cookie $jar --cookie-jar $jar --header Host:mysite.test"
token=$($curl http://127.0.0.1/admin/login/ | sed -n 's/.*name="csrfmiddlewaretoken" value="\([^"]*\)".*/\1/p')
status=$($curl --output /dev/null --write-out '%{http_code}' \
  --data-urlencode "csrfmiddlewaretoken=$token" --data-urlencode username=admin \
  --data-urlencode "password=$ADMIN_PASSWORD" --data-urlencode next=/admin/ \
  'http://127.0.0.1/admin/login/?next=/admin/')
[ "$status" = 302 ] || { echo "admin login answered $status, not 302" >&2; exit 1; }
session=$(awk '$6 == "sessionid" { print $7 }' "$jar")
[ -n "$session" ] || { echo "no session cookie after the login" >&2; exit 1; }
echo "sessionid=$session"
