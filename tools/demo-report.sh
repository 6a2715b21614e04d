#!/usr/bin/env bash
# After `make demo`: where the sandbox answers, and a short bounded load test
# run inside the container against its own nginx (loopback only).
set -euo pipefail
name=${1:-pyweb-sandbox}
seconds=${PYWEB_DEMO_LOAD_SECONDS:-5}
docker exec "$name" sh -c 'command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1; }'
ip=$(docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$name")
echo
echo "== pyweb sandbox"
echo "URL:    http://$ip/  (also /io?ms=20, /cpu?n=20000, /static/hello.txt)"
echo "inside: docker exec -it $name bash"
for path in "/" "/io?ms=20"; do
  out=$(docker exec "$name" wrk --threads 2 --connections 16 --duration "${seconds}s" --latency "http://127.0.0.1:80$path")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errors=$(grep -Eo 'Non-2xx or 3xx responses: [0-9]+|Socket errors: .*' <<<"$out" || echo "no errors")
  printf 'load:   %-10s %s req/s, p99 %s, %s (wrk, %ss, 16 connections, inside the container)\n' "$path" "$rps" "$p99" "$errors" "$seconds"
done
