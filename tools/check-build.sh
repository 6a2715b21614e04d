#!/usr/bin/env bash
# Build the collection and check the tarball: the content is there, no
# development file is (virtualenv, caches, Molecule scenarios, images, CI).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ansible-galaxy collection build --force --output-path "$out" "$root" >/dev/null
tarball=$(ls "$out"/pyweb-stack-*.tar.gz)
listing=$(tar -tzf "$tarball")
status=0
for required in MANIFEST.json FILES.json README.md LICENSE meta/runtime.yml \
                roles/sysctl/tasks/main.yml roles/sysctl/meta/argument_specs.yml \
                plugins/modules/sysctl_plan.py plugins/module_utils/_sysctl.py \
                plugins/modules/capacity_facts.py plugins/filter/worker_sizing.py \
                plugins/filter/worker_plan.py plugins/module_utils/_sizing.py docs/sizing.md \
                plugins/filter/app_layout.py roles/python_app/tasks/main.yml roles/gunicorn/tasks/main.yml \
                roles/nginx/tasks/main.yml playbooks/site.yml playbooks/files/pyweb_demo/pyweb_demo/app.py \
                roles/uwsgi/tasks/main.yml roles/uwsgi/files/uwsgi_env.py roles/uwsgi/meta/argument_specs.yml \
                plugins/modules/uwsgi_status.py plugins/module_utils/_uwsgi.py docs/operations.md; do
  grep -qx "$required" <<<"$listing" || { echo "check-build: missing $required"; status=1; }
done
forbidden=$(grep -E '^(\.venv|\.cache|\.ci|\.config|\.git|\.hypothesis|\.pytest_cache|\.ruff_cache|molecule|tools|tests/unit)(/|$)|(^|/)__pycache__/|^Makefile$|^requirements-dev\.txt$|\.tar\.gz$' <<<"$listing" || true)
if [ -n "$forbidden" ]; then
  echo "check-build: development files in the tarball:"; echo "$forbidden"; status=1
fi
echo "check-build: $(basename "$tarball"), $(wc -l <<<"$listing") entries, $(du -k "$tarball" | cut -f1) KiB"
exit "$status"
